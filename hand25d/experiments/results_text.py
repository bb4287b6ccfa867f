"""The words and numbers of docs/results.md: the template's blocks and our figures' format.

The prose is results_template.md (package data): each line `<!-- name -->`
starts a block, filled in with string.Template by `text`. The helpers here
write one of our numbers the way every section of the document does: pixel
errors and fractions to 3 decimals ("n/a" where nothing was measured), every
mean of ours followed by its spread (min–max over seeds), rows without a
summary "not run" and what a summary older than a field lacks "not recorded".
"""

import functools
import os
import re
import string
from typing import Optional

from hand25d.experiments import analysis
from hand25d.experiments import summaries as summaries_lib

NOT_RUN = "not run"
NOT_RECORDED = "not recorded"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_template.md")


@functools.cache
def _blocks() -> dict[str, string.Template]:
  """The named blocks of TEMPLATE (see its first lines)."""
  with open(TEMPLATE, encoding="utf-8") as f:
    parts = re.split(r"^<!-- (\w+) -->\n", f.read(), flags=re.MULTILINE)
  return {name: string.Template(body.rstrip("\n"))
          for name, body in zip(parts[1::2], parts[2::2])}


def text(block: str, **values) -> str:
  """Block `block` of the template with `values` filled in.

  Raises:
    KeyError: the block uses a name `values` lacks.
  """
  return _blocks()[block].substitute(values)


def num(value: Optional[float]) -> str:
  """A pixel error or a fraction, 3 decimals; n/a where nothing was measured."""
  return "n/a" if value is None else f"{value:.3f}"


def span(result: summaries_lib.RowResult) -> str:
  """The row's min–max over seeds, or "one seed"."""
  errors = result.errors
  return f"{min(errors):.3f}–{max(errors):.3f}" if len(errors) > 1 else "one seed"


def mean(name: str, results: analysis.Results) -> str:
  """Row `name`'s mean error with its spread: "30.600 px (30.581–30.619)"."""
  return f"{num(results[name].mean)} px ({span(results[name])})"


def ours_cells(result: Optional[summaries_lib.RowResult]) -> list[str]:
  """[mean, min-max, seeds] cells of a row."""
  if result is None or not result.summaries:
    return [NOT_RUN, "", ""]
  spread = span(result) if result.errors else ""
  return [num(result.mean), spread, ", ".join(str(s) for s in result.seeds)]


def plural(count: int, word: str) -> str:
  return f"{count} {word}" + ("" if count == 1 else "s")


def exponent(value: float) -> str:
  """1e-3 as "1e-3" (one significant digit, no padded exponent)."""
  mantissa, power = f"{value:.0e}".split("e")
  return f"{mantissa}e{int(power)}"


def percent(fraction: float) -> str:
  return f"{100 * fraction:.0f}%"
