"""What each operator of a .tflite model costs in LiteRT: time, FLOPs, share.

ai-edge-litert's Python API has no op profiler (its Interpreter cannot read
one out), so this module times each operator as a model of its own: the
model is split into single-operator models (hand25d.tflite_ops), each is
timed with the settings of a deployment (hand25d.litert_timing: one thread,
the default XNNPACK delegate) and the per-invoke overhead, timed on a
trivial model in the same rounds, is taken off.

  profile            the time of every operator and of the whole model
  by_type            a profile's times summed per operator type (grouped
                     convolutions apart)
  markdown           a profile as a Markdown table

Flatbuffer-only (numpy, ai_edge_litert), so it sits with hand25d.litert
under the runtime (docs/design.md); it never imports TensorFlow.

An operator that computes constants only (`tflite_ops.Operator.folded`, the
DEQUANTIZE of MediaPipe's float16 weights) is done once when XNNPACK
prepares the model, not per invoke: it gets no time, and it goes into the
model of every operator that reads its output.

What a split cannot show: the cost of the boundaries between XNNPACK's
partitions in the whole model (copies to and from the delegate when an
operator is not delegated), what XNNPACK fuses across operators, and the
cache: an operator timed alone, invoke after invoke, finds its weights and
inputs in cache, which in the whole model other operators have evicted (a
model with megabytes of weights, as MediaPipe's, runs slower than the sum
of its operators). The difference between the whole model's time and the
sum of the operators' (`Profile.whole_net_ms - Profile.sum_ms`) is what
all of these cost together.
"""

import dataclasses
from typing import Optional

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils
import numpy as np

from hand25d import litert
from hand25d import litert_timing
from hand25d import tflite_ops

# The op name LiteRT gives a node that a delegate runs.
_DELEGATE = "DELEGATE"


def _trivial_model() -> bytes:
  """A model of one ADD of two 1-element float32 tensors: what every invoke costs."""
  add = schema.BuiltinOperator.ADD
  tensors = [schema.TensorT(shape=[1], type=schema.TensorType.FLOAT32, buffer=0, name=name)
             for name in (b"x", b"y")]
  op = schema.OperatorT(opcodeIndex=0, inputs=[0, 0], outputs=[1],
                        builtinOptionsType=schema.BuiltinOptions.AddOptions,
                        builtinOptions=schema.AddOptionsT())
  flat = schema.ModelT(
      version=3, buffers=[schema.BufferT()],
      operatorCodes=[schema.OperatorCodeT(deprecatedBuiltinCode=add, builtinCode=add)],
      subgraphs=[schema.SubGraphT(tensors=tensors, inputs=[0], outputs=[1], operators=[op])])
  return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


@dataclasses.dataclass(frozen=True)
class OpTime:
  """One operator's row of a profile (the fields of tflite_ops.Operator, and its time)."""
  index: int
  op_type: str
  kind: str  # tflite_ops.Operator.kind.
  output_name: str
  output_shape: tuple[int, ...]
  weights_shape: tuple[int, ...]
  flops: int
  ms: float  # Median over rounds of its per-invoke time less the overhead (>= 0).
  share: float  # ms / Profile.sum_ms.
  gflops: Optional[float]  # flops / ms; None without either.
  folded: bool  # Done once at load (tflite_ops.Operator.folded): ms is 0.
  delegated: bool  # XNNPACK runs it (else LiteRT's builtin kernel); False when folded.


@dataclasses.dataclass(frozen=True)
class Profile:
  """Per-operator times of a model, one thread, default delegate (XNNPACK).

  Attributes:
    rows: every operator, in execution order.
    overhead_ms: median per-invoke time of the trivial model (one ADD of
      1-element tensors): what a Python invoke costs without work, taken off
      every single-operator time.
    whole_ms: median per-invoke time of the whole model (as a latency
      benchmark reports it).
    whole_net_ms: whole_ms less the overhead, to compare with sum_ms.
    sum_ms: the sum of the rows' ms.
    flops: the whole model's FLOPs.
    rounds, invokes: as timed (litert_timing.interleaved_times).
  """
  rows: list[OpTime]
  overhead_ms: float
  whole_ms: float
  whole_net_ms: float
  sum_ms: float
  flops: int
  rounds: int
  invokes: int


def profile(model: bytes, rounds: int = 10, invokes: int = 30, warmup: int = 5) -> Profile:
  """Times every operator of the model alone, and the whole model, in the same rounds.

  The trivial model, the whole model and every single-operator model
  (tflite_ops.single_op_models) are timed by litert_timing.interleaved_times.
  An operator's time is the median over rounds of its round's median less
  that round's overhead (the trivial model's median), at least 0. Times
  under load are noisy; shares of one profile are steadier than absolute
  times.

  Raises:
    ValueError: the model has more than one subgraph, or as
      litert_timing.interleaved_times.
  """
  singles = tflite_ops.single_op_models(model)
  runners = [litert_timing.interpreter(_trivial_model()), litert_timing.interpreter(model)]
  runners += [litert_timing.interpreter(s.model) for s in singles]
  delegated = {s.op.index: _DELEGATE in [op["op_name"] for op in litert.op_details(runner)]
               for s, runner in zip(singles, runners[2:])}
  times = litert_timing.interleaved_times(runners, rounds, invokes, warmup).median_ms
  overhead = times[:, :1]
  net = np.median(np.maximum(times[:, 2:] - overhead, 0.0), axis=0)
  op_ms = {s.op.index: float(ms) for s, ms in zip(singles, net)}
  sum_ms = float(sum(op_ms.values()))
  rows = []
  for op in tflite_ops.operators(model):
    ms = op_ms.get(op.index, 0.0)
    rows.append(OpTime(index=op.index, op_type=op.op_type, kind=op.kind,
                       output_name=op.output_name, output_shape=op.output_shape,
                       weights_shape=op.weights_shape, flops=op.flops, ms=ms,
                       share=ms / sum_ms if sum_ms else 0.0,
                       gflops=litert_timing.gflops(op.flops, ms),
                       folded=op.folded, delegated=delegated.get(op.index, False)))
  return Profile(rows=rows, overhead_ms=float(np.median(overhead)),
                 whole_ms=float(np.median(times[:, 1])),
                 whole_net_ms=float(np.median(times[:, 1] - overhead[:, 0])),
                 sum_ms=sum_ms, flops=sum(r.flops for r in rows), rounds=rounds, invokes=invokes)


@dataclasses.dataclass(frozen=True)
class TypeTime:
  """A profile's operators of one kind (OpTime.kind: the op type, grouped apart), summed."""
  kind: str
  count: int  # Operators of the kind (folded ones included).
  flops: int
  ms: float
  share: float
  gflops: Optional[float]


def by_type(result: Profile) -> list[TypeTime]:
  """The profile's times and FLOPs summed per operator kind, most time first.

  The kind is the op type, with grouped convolutions ("CONV_2D grouped") apart.
  """
  groups: dict[str, list[OpTime]] = {}
  for row in result.rows:
    groups.setdefault(row.kind, []).append(row)
  out = []
  for kind, rows in groups.items():
    ms = sum(r.ms for r in rows)
    flops = sum(r.flops for r in rows)
    out.append(TypeTime(kind=kind, count=len(rows), flops=flops, ms=ms,
                        share=ms / result.sum_ms if result.sum_ms else 0.0,
                        gflops=litert_timing.gflops(flops, ms)))
  return sorted(out, key=lambda t: (-t.ms, t.kind))


def _rate(value: Optional[float]) -> str:
  return "" if value is None else f"{value:.2f}"


def _short(name: str, width: int = 40) -> str:
  """A converter's tensor name shortened for a table: up to its first ";", at most `width`."""
  name = name.split(";")[0]
  return name if len(name) <= width else "..." + name[-(width - 3):]


def markdown(result: Profile, top: Optional[int] = None) -> str:
  """The profile as Markdown: its totals, the operators (the `top` slowest, or all
  in execution order) and the operator types.
  """
  rows = [r for r in result.rows if not r.folded]
  if top is not None:
    rows = sorted(rows, key=lambda r: -r.ms)[:top]
  folded = sum(r.folded for r in result.rows)
  lines = [
      f"whole model {result.whole_ms:.3f} ms per invoke, {result.whole_net_ms:.3f} ms without "
      f"the {result.overhead_ms * 1e3:.1f} us invoke overhead; sum of the operators alone "
      f"{result.sum_ms:.3f} ms; {result.flops / 1e6:.2f} MFLOPs"
      + (f"; {folded} folded operators (constants, done at load) not listed" if folded else ""),
      "",
      "| # | op | filter | output | shape | MFLOPs | ms | share | GFLOP/s | XNNPACK |",
      "| ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
  for r in rows:
    lines.append(f"| {r.index} | {r.kind} | {'x'.join(map(str, r.weights_shape))} | "
                 f"{_short(r.output_name)} | {'x'.join(map(str, r.output_shape))} | "
                 f"{r.flops / 1e6:.3f} | {r.ms:.4f} | "
                 f"{100 * r.share:.1f}% | {_rate(r.gflops)} | {'yes' if r.delegated else 'no'} |")
  lines += ["", "| op kind | count | MFLOPs | ms | share | GFLOP/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
  for t in by_type(result):
    lines.append(f"| {t.kind} | {t.count} | {t.flops / 1e6:.3f} | {t.ms:.4f} | "
                 f"{100 * t.share:.1f}% | {_rate(t.gflops)} |")
  return "\n".join(lines)
