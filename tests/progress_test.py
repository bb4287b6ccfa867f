"""The progress reporter: its lines at given times, the ETA arithmetic, quiet short jobs."""

from hand25d import progress

import pytest


class _Clock:
  """A clock that moves only when told to."""

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def _make(clock, lines, **kwargs):
  return progress.Progress(clock=clock, log=lambda fmt, *args: lines.append(fmt % args),
                           **kwargs)


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.4, "0:00:59"), (61, "0:01:01"),
                                           (3600 * 27 + 62, "27:01:02"), (None, "?"),
                                           (float("inf"), "?"), (-1, "?")])
def test_format_duration(seconds, text):
  assert progress.format_duration(seconds) == text


def test_lines_at_most_every_interval_and_a_final_line():
  clock, lines = _Clock(), []
  with _make(clock, lines, what="resize", total=100, unit="frames", interval=10) as p:
    for _ in range(40):  # 40 frames at 4 frames/s: 10 s.
      clock.now += 0.25
      p.update()
    assert lines == ["resize: 40/100 frames (40.0%), 4.00 frames/s, elapsed 0:00:10, "
                     "ETA 0:00:15"]
    for _ in range(60):
      clock.now += 0.25
      p.update()
  assert lines[1:] == ["resize: 80/100 frames (80.0%), 4.00 frames/s, elapsed 0:00:20, "
                       "ETA 0:00:05",
                       "resize: 100/100 frames (100.0%), 4.00 frames/s, done in 0:00:25"]


def test_a_short_job_logs_nothing():
  clock, lines = _Clock(), []
  with _make(clock, lines, what="eval", total=10, interval=10) as p:
    for _ in range(10):
      clock.now += 0.9
      p.update()
  assert lines == []


def test_unknown_total_has_no_percentage_and_no_eta():
  clock, lines = _Clock(), []
  with _make(clock, lines, what="import", unit="frames", interval=5) as p:
    clock.now += 6
    p.update(30)
  assert lines == ["import: 30 frames, 5.00 frames/s, elapsed 0:00:06, ETA ?",
                   "import: 30 frames, 5.00 frames/s, done in 0:00:06"]


def test_steady_rate_leaves_out_the_first_units_and_the_pauses():
  """A resumed run from step 100: a slow first step, then 2 steps/s with an evaluation."""
  clock, lines = _Clock(), []
  p = _make(clock, lines, what="train", total=1100, unit="steps", done=100, skip=1, interval=0)
  clock.now += 30  # Tracing the step function.
  p.update()
  assert p.rate() is None and p.eta() is None
  assert lines == ["train: 101/1100 steps (9.2%), ? steps/s, elapsed 0:00:30, ETA ?"]
  for _ in range(99):
    clock.now += 0.5
    p.update()
  with p.paused():  # An evaluation and a checkpoint.
    clock.now += 100
  assert p.rate() == pytest.approx(2.0)
  assert p.eta() == pytest.approx(900 / 2.0)  # 900 steps left at 2 steps/s.
  assert lines[-1] == "train: 200/1100 steps (18.2%), 2.00 steps/s, elapsed 0:01:20, ETA 0:07:30"
  p.finish()
  assert lines[-1] == "train: 200/1100 steps (18.2%), 2.00 steps/s, stopped after 0:03:00"


def test_an_infinite_interval_logs_nothing():
  clock, lines = _Clock(), []
  with _make(clock, lines, what="train", total=10, interval=float("inf")) as p:
    clock.now += 1e6
    p.update(5)
  assert lines == []


def test_the_default_interval_is_read_when_a_job_starts(monkeypatch):
  clock, lines = _Clock(), []
  monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
  p = _make(clock, lines, what="x", total=2)
  p.update()
  assert len(lines) == 1


def test_skip_counts_updates_not_units():
  """An evaluation in batches of 4 frames: the first batch (tracing) is left out."""
  clock, lines = _Clock(), []
  p = _make(clock, lines, what="eval", total=12, unit="frames", skip=1, interval=0)
  clock.now += 20
  p.update(4)
  clock.now += 2
  p.update(4)
  assert p.rate() == pytest.approx(2.0) and p.eta() == pytest.approx(2.0)
  assert lines[-1] == "eval: 8/12 frames (66.7%), 2.00 frames/s, elapsed 0:00:22, ETA 0:00:02"
