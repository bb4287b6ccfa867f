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


def load(results_dir: str) -> dict[str, RowResult]:
  """The summaries in `results_dir`, by row name (rows without any are absent).

  Raises:
    ValueError: a summary names an unknown row, another seed than its file
      name, or was made with another definition of its row than plan.ROWS.
  """
  found: dict[str, list[dict]] = {}
  names = sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []
  for name in names:
    match = runner.SUMMARY_PATTERN.match(name)
    if not match:
      continue
    path = os.path.join(results_dir, name)
    row = plan.ROWS_BY_NAME.get(match["row"])
    if row is None:
      raise ValueError(f"{path}: no row named {match['row']!r} in plan.ROWS")
    with open(path) as f:
      summary = json.load(f)
    if summary["seed"] != int(match["seed"]):
      raise ValueError(f"{path} holds seed {summary['seed']}, its name says {match['seed']}")
    if summary["row"] != json.loads(json.dumps(row.to_dict())):
      raise ValueError(f"{path} was made with another definition of row {row.name!r} "
                       f"({summary['row']}); rerun the row or delete the file")
    found.setdefault(row.name, []).append(summary)
  return {name: RowResult(plan.ROWS_BY_NAME[name], tuple(sorted(s, key=lambda x: x["seed"])))
          for name, s in found.items()}
