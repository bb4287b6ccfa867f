"""The reproduction's run summaries, loaded and checked against the plan.

`runner.run` writes one summary per finished (row, seed) as
`<results_dir>/<row>_seed<k>.json`; `load` reads them back, grouped by row,
for the analysis (analysis.py) and the document (results.py).
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from hand25d.experiments import plan
from hand25d.experiments import runner


@dataclasses.dataclass(frozen=True)
class RowResult:
  """The finished runs (one per seed) of one row."""
  row: plan.Row
  summaries: tuple[dict, ...]  # Sorted by seed.

  @property
  def seeds(self) -> list[int]:
    return [s["seed"] for s in self.summaries]

  @property
  def errors(self) -> list[float]:
    """Test mean px error of each seed (seeds without visible test keypoints left out)."""
    return [s["test"]["mean_px_error"] for s in self.summaries
            if s["test"]["mean_px_error"] is not None]

  @property
  def mean(self) -> Optional[float]:
    return float(np.mean(self.errors)) if self.errors else None

  @property
  def spread(self) -> Optional[float]:
    """max - min over seeds; None with fewer than two seeds."""
    return max(self.errors) - min(self.errors) if len(self.errors) > 1 else None


class SummaryError(ValueError):
  """A results directory or run summary that cannot be read or does not fit the plan."""


def _read(path: str) -> dict:
  """One summary file, checked for the fields `load` reads."""
  summary = runner.read_json_object(path, SummaryError)
  missing = [key for key in ("seed", "row") if key not in summary]
  if missing:
    raise SummaryError(f"{path}: not a run summary: no {' or '.join(map(repr, missing))} "
                       "(written by reproduce_main)")
  return summary


def load(results_dir: str) -> dict[str, RowResult]:
  """The summaries in `results_dir`, by row name (rows without any are absent).

  Raises:
    SummaryError (a ValueError): no directory `results_dir`; a summary that
      is not JSON or lacks its seed or row, names an unknown row, holds
      another seed than its file name, or was made with another definition
      of its row than plan.ROWS. Each names the file.
  """
  if not os.path.isdir(results_dir):
    raise SummaryError(f"no results directory {results_dir!r} (reproduce_main's --results_dir)")
  found: dict[str, list[dict]] = {}
  for name in sorted(os.listdir(results_dir)):
    match = runner.SUMMARY_PATTERN.match(name)
    if not match:
      continue
    path = os.path.join(results_dir, name)
    row = plan.ROWS_BY_NAME.get(match["row"])
    if row is None:
      raise SummaryError(f"{path}: no row named {match['row']!r} in plan.ROWS")
    summary = _read(path)
    if summary["seed"] != int(match["seed"]):
      raise SummaryError(f"{path} holds seed {summary['seed']}, its name says {match['seed']}")
    if summary["row"] != json.loads(json.dumps(row.to_dict())):
      raise SummaryError(f"{path} was made with another definition of row {row.name!r} "
                         f"({summary['row']}); rerun the row or delete the file")
    found.setdefault(row.name, []).append(summary)
  return {name: RowResult(plan.ROWS_BY_NAME[name], tuple(sorted(s, key=lambda x: x["seed"])))
          for name, s in found.items()}
