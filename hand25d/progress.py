"""Progress of a long job as log lines: done/total, rate, elapsed time and ETA.

    with progress.Progress("eval val", total=640, unit="frames") as p:
      for batch in batches:
        ...
        p.update(len(batch))

logs, through absl logging, at most every INTERVAL_S seconds and once at
the end:

    eval val: 320/640 frames (50.0%), 41.2 frames/s, elapsed 0:00:12, ETA 0:00:08
    eval val: 640/640 frames (100.0%), 41.0 frames/s, done in 0:00:20

A job that ends within INTERVAL_S logs nothing. Without a total the lines
have no percentage and no ETA. The lines are ordinary log records, so they
never interleave with other log lines and read the same in a log file
(under nohup) as on a terminal; no carriage returns, no bars.

The rate is the steady rate: the first `skip` updates (tracing a
tf.function, filling a pipeline) and the time spent inside `paused()` (a training loop's
evaluations and checkpoints) are left out of it. The ETA is the work left at
that rate; `elapsed` is wall time, pauses included.
"""

import contextlib
import time
from typing import Callable, Optional

from absl import logging

# Seconds between two progress lines of one job; a job shorter than this logs none.
INTERVAL_S = 10.0


def format_duration(seconds: float) -> str:
  """h:mm:ss (hours unbounded), or '?' for an unknown or infinite duration."""
  if seconds is None or not 0 <= seconds < float("inf"):
    return "?"
  minutes, secs = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"


def _format_rate(rate: Optional[float]) -> str:
  if rate is None:
    return "?"
  return f"{rate:.1f}" if rate >= 10 else f"{rate:#.3g}"


class Progress:
  """Counts the units of a job done and logs its progress (see the module doc)."""

  def __init__(self, what: str, total: Optional[int] = None, unit: str = "items", *,
               done: int = 0, skip: int = 0, interval: Optional[float] = None,
               clock: Callable[[], float] = time.monotonic,
               log: Callable[..., None] = logging.info):
    """Starts the clock.

    Args:
      what: the job, first on every line ("train", "eval val", "resize").
      total: units the job ends at, None if unknown.
      unit: the name of a unit ("frames", "steps").
      done: units done before this process started (a resumed job); they
        count towards `total`, not towards the rate.
      skip: calls of update() left out of the rate (a slow first step or batch).
      interval: seconds between lines; default INTERVAL_S (read now). An
        infinite interval logs nothing.
      clock: seconds, monotonic; tests pass a fake one.
      log: takes (format, *args) as absl's logging.info does.
    """
    self.what, self.total, self.unit = what, total, unit
    self.done = done
    self._interval = INTERVAL_S if interval is None else interval
    self._clock, self._log = clock, log
    self._start = self._last_line = clock()
    self._paused = 0.0  # Seconds spent in paused() so far.
    self._skip = skip  # Updates still to leave out of the rate.
    self._steady_at = None if skip > 0 else (done, 0.0)  # Where the rate starts: (units, active s).

  def _active(self, now: float) -> float:
    """Seconds since the start, pauses excluded."""
    return now - self._start - self._paused

  def rate(self, now: Optional[float] = None) -> Optional[float]:
    """Units per second of active time since the steady part began; None before."""
    if self._steady_at is None:
      return None
    now = self._clock() if now is None else now
    units, seconds = self.done - self._steady_at[0], self._active(now) - self._steady_at[1]
    return units / seconds if units > 0 and seconds > 0 else None

  def eta(self, now: Optional[float] = None) -> Optional[float]:
    """Seconds left at the steady rate; None without a total or a rate."""
    rate = self.rate(now)
    if self.total is None or rate is None:
      return None
    return max(self.total - self.done, 0) / rate

  def line(self, now: Optional[float] = None, final: bool = False) -> str:
    """The progress line at `now` (the final form: 'done in' or 'stopped after')."""
    now = self._clock() if now is None else now
    if self.total:
      count = f"{self.done}/{self.total} {self.unit} ({100.0 * self.done / self.total:.1f}%)"
    else:
      count = f"{self.done} {self.unit}"
    text = f"{self.what}: {count}, {_format_rate(self.rate(now))} {self.unit}/s, "
    elapsed = format_duration(now - self._start)
    if not final:
      return text + f"elapsed {elapsed}, ETA {format_duration(self.eta(now))}"
    finished = self.total is None or self.done >= self.total
    return text + ("done in " if finished else "stopped after ") + elapsed

  def update(self, n: int = 1) -> None:
    """Adds n units done; logs a line if INTERVAL_S has passed since the last."""
    self.done += n
    now = self._clock()
    if self._steady_at is None:
      self._skip -= 1
      if self._skip <= 0:
        self._steady_at = (self.done, self._active(now))
    if self.total is not None and self.done >= self.total:
      return  # The end is finish()'s line.
    if now - self._last_line >= self._interval:
      self._log("%s", self.line(now))
      self._last_line = now

  @contextlib.contextmanager
  def paused(self):
    """Time inside is left out of the rate (still counted in `elapsed`)."""
    t0 = self._clock()
    try:
      yield self
    finally:
      self._paused += self._clock() - t0

  def finish(self) -> None:
    """Logs the final line, if the job lasted at least the interval."""
    now = self._clock()
    if now - self._start >= self._interval:
      self._log("%s", self.line(now, final=True))

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.finish()
