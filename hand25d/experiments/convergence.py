"""Whether a run's validation error was flat at its end: the evidence that its budget suffices.

A run is *flat* when its validation mean px error fell by less than
FLAT_MAX_FALL (relative) over the last FLAT_WINDOW of its steps. Exactly:
with the run's evaluations as (step, error) pairs, e_end is the error at the
last evaluation (the loop always evaluates at the last step) and e80 the
error at the evaluation nearest to (1 - FLAT_WINDOW) x the last step, chosen
among the earlier evaluations (on a tie, the earlier one); the fall is
(e80 - e_end) / e80, negative if the error rose, and the run is flat if the
fall is below FLAT_MAX_FALL. With evaluations only every epoch the
evaluation used may be some way from 80%: its step is recorded with the
result.

runner.py records the evaluations and the result in every run's summary;
analysis.py reads them back for docs/results.md.
"""

import dataclasses
from typing import Optional, Sequence

FLAT_WINDOW = 0.2  # The last 20% of a run's steps.
FLAT_MAX_FALL = 0.02  # Flat: the error fell by less than 2% over them.


@dataclasses.dataclass(frozen=True)
class Flatness:
  """The two evaluations a run's flatness compares (errors in px of the 120x160 input)."""
  start_step: int
  start_px: float
  end_step: int
  end_px: float

  @property
  def fall(self) -> float:
    """(start - end) / start: the relative fall of the error (0 if the start error is 0)."""
    return (self.start_px - self.end_px) / self.start_px if self.start_px else 0.0

  @property
  def flat(self) -> bool:
    return self.fall < FLAT_MAX_FALL

  def to_dict(self) -> dict:
    """The record in a run's summary: the definition's constants, both evaluations, the result."""
    return {"window": FLAT_WINDOW, "max_fall": FLAT_MAX_FALL,
            "start": {"step": self.start_step, "mean_px_error": self.start_px},
            "end": {"step": self.end_step, "mean_px_error": self.end_px},
            "fall": self.fall, "flat": self.flat}


def flatness(history: Sequence[tuple[int, Optional[float]]]) -> Optional[Flatness]:
  """The Flatness of a run from its validation evaluations.

  Args:
    history: (step, mean px error) of every evaluation, in any order; an
      error of None (no visible keypoints) is left out.

  Returns:
    None with fewer than two evaluations that have an error.

  Raises:
    ValueError: two evaluations at one step, or a negative step or error.
  """
  points = sorted((int(step), float(error)) for step, error in history if error is not None)
  steps = [step for step, _ in points]
  if len(set(steps)) != len(steps):
    raise ValueError(f"two evaluations at one step in {points}: keep one per step")
  if points and (steps[0] < 0 or min(error for _, error in points) < 0):
    raise ValueError(f"negative step or error in {points}")
  if len(points) < 2:
    return None
  end_step, end_px = points[-1]
  target = (1.0 - FLAT_WINDOW) * end_step
  start_step, start_px = min(points[:-1], key=lambda p: (abs(p[0] - target), p[0]))
  return Flatness(start_step, start_px, end_step, end_px)
