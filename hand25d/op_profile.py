"""What each operator of a .tflite model costs in LiteRT: FLOPs and time.

ai-edge-litert's Python API has no op profiler (its Interpreter cannot read
one out), so this module times each operator as a model of its own: the
model is split into single-operator models (the flatbuffer object API of
ai_edge_litert's schema), each is timed with the settings of a deployment
(one thread, the default XNNPACK delegate) and the per-invoke overhead,
timed on a trivial model in the same rounds, is taken off.

  operators          every operator of a model: type, output, FLOPs
  model_flops        FLOPs of a model (2 x MACs of its convolutions and dense layers)
  single_op_models   the model split into one runnable model per operator
  interpreter        a LiteRT interpreter as a deployment runs it, with random inputs
  interleaved_times  per-round median and minimum invoke times of several
                     interpreters, timed in turn, round after round
  profile            the time of every operator and of the whole model
  by_type            a profile's times summed per operator type (grouped
                     convolutions apart)
  markdown           a profile as a Markdown table

Flatbuffer-only (numpy, ai_edge_litert), so it sits with hand25d.litert
under the runtime (docs/design.md); it never imports TensorFlow.

Constant folding: an operator whose inputs are all constants (the DEQUANTIZE
of MediaPipe's float16 weights) is done once when XNNPACK prepares the model,
not per invoke. Such an operator is `folded`: it gets no model of its own and
no time, and it goes into the model of every operator that reads its output,
so that that operator sees constant weights as it does in the whole model.

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

import copy
import dataclasses
import statistics
import time
from typing import Optional, Sequence

from ai_edge_litert import interpreter as litert_interpreter
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils
import numpy as np

from hand25d import litert

# Operators whose multiply-accumulates FLOPs count; everything else is "other".
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
# The op name LiteRT gives a node that a delegate runs.
_DELEGATE = "DELEGATE"


def op_macs(op_type: str, weights_shape: Sequence[int], output_shape: Sequence[int]) -> int:
  """Multiply-accumulates of one TFLite operator (batch included), 0 unless in MAC_OPS.

  Args:
    op_type: the builtin operator's name, e.g. "CONV_2D".
    weights_shape: its second input (the filter): [cout, kh, kw, cin / groups]
      for CONV_2D, [1, kh, kw, cout] for DEPTHWISE_CONV_2D, [out, in] for
      FULLY_CONNECTED.
    output_shape: its first output, e.g. [batch, h, w, cout].
  """
  if op_type == "CONV_2D":
    return int(np.prod(output_shape) * np.prod(weights_shape[1:]))
  if op_type == "DEPTHWISE_CONV_2D":
    return int(np.prod(output_shape) * weights_shape[1] * weights_shape[2])
  if op_type == "FULLY_CONNECTED":
    return int(np.prod(output_shape[:-1]) * np.prod(weights_shape))
  return 0


@dataclasses.dataclass(frozen=True)
class Operator:
  """One operator of a model's (first) subgraph."""
  index: int  # Position in the subgraph's operator list (execution order).
  op_type: str  # Builtin name, e.g. "CONV_2D"; a custom op's custom code.
  output_name: str  # Its first output tensor's name ("" in a stripped model).
  output_shape: tuple[int, ...]
  weights_shape: tuple[int, ...]  # Its filter's (MAC_OPS), else ().
  groups: int  # A CONV_2D's input channels / its filter's depth; 1 for other ops.
  macs: int  # Multiply-accumulates (op_macs).
  folded: bool  # Computes constants only: done once at load, not per invoke.

  @property
  def flops(self) -> int:
    return 2 * self.macs

  @property
  def kind(self) -> str:
    """The op type, "CONV_2D grouped" for a grouped convolution (XNNPACK runs it per group)."""
    return f"{self.op_type} grouped" if self.groups > 1 else self.op_type


def _read(model: bytes) -> schema.ModelT:
  """The model as flatbuffer objects; refuses models with more than one subgraph."""
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  if len(flat.subgraphs) != 1:
    raise ValueError(f"the model has {len(flat.subgraphs)} subgraphs; only single-subgraph "
                     "models can be split into operators")
  return flat


def _op_type(flat: schema.ModelT, op: schema.OperatorT) -> str:
  code = flat.operatorCodes[op.opcodeIndex]
  builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
  if builtin == schema.BuiltinOperator.CUSTOM:
    return (code.customCode or b"CUSTOM").decode()
  return _OP_NAMES.get(builtin, str(builtin))


def _constant(flat: schema.ModelT, tensor: schema.TensorT) -> bool:
  data = flat.buffers[tensor.buffer].data
  return data is not None and len(data) > 0


def _folded(flat: schema.ModelT) -> list[bool]:
  """Per operator: whether all its inputs are constants or outputs of such operators."""
  graph = flat.subgraphs[0]
  constant = {i for i, t in enumerate(graph.tensors) if _constant(flat, t)}
  folded = []
  for op in graph.operators:
    inputs = [i for i in op.inputs if i >= 0]
    folded.append(bool(inputs) and all(i in constant for i in inputs))
    if folded[-1]:
      constant.update(op.outputs)
  return folded


def _operators(flat: schema.ModelT) -> list[Operator]:
  graph = flat.subgraphs[0]
  ops = []
  for index, (op, folded) in enumerate(zip(graph.operators, _folded(flat))):
    op_type = _op_type(flat, op)
    output = graph.tensors[op.outputs[0]]
    output_shape = tuple(int(d) for d in output.shape)
    weights_shape = (tuple(int(d) for d in graph.tensors[op.inputs[1]].shape)
                     if op_type in MAC_OPS else ())
    groups = (int(graph.tensors[op.inputs[0]].shape[-1]) // weights_shape[-1]
              if op_type == "CONV_2D" else 1)
    ops.append(Operator(index=index, op_type=op_type,
                        output_name=(output.name or b"").decode("utf-8", "replace"),
                        output_shape=output_shape, weights_shape=weights_shape, groups=groups,
                        macs=op_macs(op_type, weights_shape, output_shape), folded=folded))
  return ops


def operators(model: bytes) -> list[Operator]:
  """Every operator of the model, in execution order.

  Raises:
    ValueError: the model has more than one subgraph.
  """
  return _operators(_read(model))


def model_flops(model: bytes) -> int:
  """FLOPs of one invoke: 2 x the MACs of its CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED.

  Counted from the tensor shapes of the .tflite, so it holds for any model
  (a float32 or int8 export, MediaPipe's), batch included.
  """
  return sum(op.flops for op in operators(model))


@dataclasses.dataclass(frozen=True)
class SingleOpModel:
  """One operator of a model as a model of its own.

  Its inputs are the operator's non-constant inputs and its outputs the
  operator's outputs; `inputs` and `outputs` give their tensor indices in the
  full model, in the order of the single-operator model's inputs and outputs.
  """
  op: Operator
  model: bytes
  inputs: tuple[int, ...]
  outputs: tuple[int, ...]


def _submodel(flat: schema.ModelT, op_indices: list[int]) -> tuple[bytes, list[int], list[int]]:
  """A model of the operators `op_indices` (in order) of `flat`'s subgraph.

  Keeps only the tensors they use and the buffers of those; the subgraph's
  outputs are the last operator's outputs, its inputs every non-constant
  tensor the operators read but do not write.

  Returns:
    (model, inputs, outputs): the flatbuffer and the full model's indices of
    its input and output tensors.
  """
  graph = flat.subgraphs[0]
  ops = [graph.operators[i] for i in op_indices]
  used = list(dict.fromkeys(t for op in ops for t in [*op.inputs, *op.outputs, *(
      op.intermediates or [])] if t >= 0))
  written = {t for op in ops for t in op.outputs}
  inputs = [t for t in used if t not in written and not _constant(flat, graph.tensors[t])]
  outputs = list(ops[-1].outputs)
  new_index = {t: i for i, t in enumerate(used)}
  buffers = [schema.BufferT()]  # Buffer 0: the empty buffer of every non-constant tensor.
  tensors = []
  for t in used:
    tensor = copy.copy(graph.tensors[t])
    if _constant(flat, tensor):
      buffers.append(flat.buffers[tensor.buffer])
      tensor.buffer = len(buffers) - 1
    else:
      tensor.buffer = 0
    tensors.append(tensor)

  def remap(indices):
    return None if indices is None else [new_index[t] if t >= 0 else t for t in indices]

  new_ops = []
  for op in ops:
    op = copy.copy(op)
    op.inputs, op.outputs, op.intermediates = (remap(op.inputs), remap(op.outputs),
                                               remap(op.intermediates))
    new_ops.append(op)
  sub = schema.ModelT(
      version=flat.version, operatorCodes=flat.operatorCodes, buffers=buffers,
      description=flat.description,
      subgraphs=[schema.SubGraphT(tensors=tensors, inputs=remap(inputs),
                                  outputs=remap(outputs), operators=new_ops, name=graph.name)])
  return bytes(flatbuffer_utils.convert_object_to_bytearray(sub)), inputs, outputs


def single_op_models(model: bytes) -> list[SingleOpModel]:
  """One model per operator that runs per invoke (not `folded`), in execution order.

  A folded operator whose output the operator reads (a DEQUANTIZE of its
  weights) is part of its model, as constants it reads are.

  Raises:
    ValueError: the model has more than one subgraph.
  """
  flat = _read(model)
  ops = _operators(flat)
  producer = {t: op.index for op in ops if op.folded
              for t in flat.subgraphs[0].operators[op.index].outputs}
  singles = []
  for op in ops:
    if op.folded:
      continue
    needed, stack = set(), [op.index]
    while stack:  # The folded operators it depends on, transitively.
      for t in flat.subgraphs[0].operators[stack.pop()].inputs:
        if t in producer and producer[t] not in needed:
          needed.add(producer[t])
          stack.append(producer[t])
    sub, inputs, outputs = _submodel(flat, sorted(needed) + [op.index])
    singles.append(SingleOpModel(op=op, model=sub, inputs=tuple(inputs), outputs=tuple(outputs)))
  return singles


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


@dataclasses.dataclass(frozen=True)
class OpTime:
  """One operator's row of a profile (the fields of Operator, and its time)."""
  index: int
  op_type: str
  kind: str  # Operator.kind.
  output_name: str
  output_shape: tuple[int, ...]
  weights_shape: tuple[int, ...]
  flops: int
  ms: float  # Median over rounds of its per-invoke time less the overhead (>= 0).
  share: float  # ms / Profile.sum_ms.
  gflops: Optional[float]  # flops / ms; None without either.
  folded: bool  # Done once at load (Operator.folded): ms is 0.
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
    rounds, invokes: as timed (interleaved_times).
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
  (single_op_models) are timed by interleaved_times. An operator's time is
  the median over rounds of its round's median less that round's overhead
  (the trivial model's median), at least 0. Times under load are noisy;
  shares of one profile are steadier than absolute times.

  Raises:
    ValueError: the model has more than one subgraph, or as interleaved_times.
  """
  singles = single_op_models(model)
  runners = [interpreter(_trivial_model()), interpreter(model)]
  runners += [interpreter(s.model) for s in singles]
  delegated = {s.op.index: _DELEGATE in [op["op_name"] for op in litert.op_details(runner)]
               for s, runner in zip(singles, runners[2:])}
  times = interleaved_times(runners, rounds, invokes, warmup).median_ms
  overhead = times[:, :1]
  net = np.median(np.maximum(times[:, 2:] - overhead, 0.0), axis=0)
  op_ms = {s.op.index: float(ms) for s, ms in zip(singles, net)}
  sum_ms = float(sum(op_ms.values()))
  rows = []
  for op in operators(model):
    ms = op_ms.get(op.index, 0.0)
    rows.append(OpTime(index=op.index, op_type=op.op_type, kind=op.kind,
                       output_name=op.output_name, output_shape=op.output_shape,
                       weights_shape=op.weights_shape, flops=op.flops, ms=ms,
                       share=ms / sum_ms if sum_ms else 0.0, gflops=gflops(op.flops, ms),
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
                        gflops=gflops(flops, ms)))
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
