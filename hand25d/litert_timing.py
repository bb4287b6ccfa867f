"""LiteRT interpreters as a deployment runs them, and their invoke times taken in turn.

  interpreter        a LiteRT interpreter as a deployment runs it, with random inputs
  interleaved_times  per-round median and minimum invoke times of several
                     interpreters, timed in turn, round after round
  gflops             the rate of FLOPs done in a time

Used by hand25d.op_profile (one interpreter per operator) and the latency
benchmark (docs/export.md, "Latency"). Built on hand25d.litert (numpy,
ai_edge_litert), so it sits with it under the runtime (docs/design.md); it
never imports TensorFlow.
"""

import dataclasses
import statistics
import time
from typing import Optional, Sequence

from ai_edge_litert import interpreter as litert_interpreter
import numpy as np

from hand25d import litert


def interpreter(model: bytes, seed: int = 0) -> litert_interpreter.Interpreter:
  """A LiteRT interpreter of the model as a deployment runs it, its inputs set at random.

  One thread, the default delegate (XNNPACK), tensors allocated. Float
  inputs are uniform in [0, 1), 8- and 16-bit integer inputs uniform over
  their range, other integer inputs 0.
  """
  runner = litert.LiteRtModel(model, num_threads=1).interpreter
  rng = np.random.default_rng(seed)
  for detail in runner.get_input_details():
    shape, dtype = detail["shape"], np.dtype(detail["dtype"])
    if dtype.kind == "f":
      x = rng.random(shape)
    elif dtype.kind in "iu" and dtype.itemsize <= 2:
      info = np.iinfo(dtype)
      x = rng.integers(info.min, info.max + 1, shape)
    else:
      x = np.zeros(shape)
    runner.set_tensor(detail["index"], x.astype(dtype))
  return runner


@dataclasses.dataclass(frozen=True)
class RoundTimes:
  """Invoke times of several interpreters over rounds, in milliseconds.

  Both arrays are [rounds, interpreters]: the median and the minimum over
  the round's invokes of each interpreter.
  """
  median_ms: np.ndarray
  min_ms: np.ndarray


def interleaved_times(interpreters: Sequence[litert_interpreter.Interpreter], rounds: int,
                      invokes: int, warmup: int) -> RoundTimes:
  """Times `invokes` invokes of every interpreter in each of `rounds` rounds.

  Each interpreter first runs `warmup` untimed invokes. Within a round the
  interpreters take turns, each a block of `invokes` invokes timed one by
  one; the turn order is rotated by one every round. A slow spell of a
  loaded machine then hits every interpreter in some round rather than one
  interpreter throughout, and ratios taken within a round cancel much of it.

  Raises:
    ValueError: rounds or invokes below 1, or warmup below 0.
  """
  if rounds < 1 or invokes < 1 or warmup < 0:
    raise ValueError(f"need rounds >= 1, invokes >= 1, warmup >= 0; got {rounds}, {invokes}, "
                     f"{warmup}")
  for runner in interpreters:
    for _ in range(warmup):
      runner.invoke()
  count = len(interpreters)
  median_ms = np.zeros((rounds, count))
  min_ms = np.zeros((rounds, count))
  times = [0.0] * invokes
  for r in range(rounds):
    for turn in range(count):
      k = (r + turn) % count
      invoke = interpreters[k].invoke
      for i in range(invokes):
        start = time.perf_counter_ns()
        invoke()
        times[i] = (time.perf_counter_ns() - start) / 1e6
      median_ms[r, k] = statistics.median(times)
      min_ms[r, k] = min(times)
  return RoundTimes(median_ms=median_ms, min_ms=min_ms)


def gflops(flops: int, ms: float) -> Optional[float]:
  """GFLOP/s of `flops` done in `ms` milliseconds; None without FLOPs or time."""
  return flops / ms / 1e6 if flops and ms > 0 else None
