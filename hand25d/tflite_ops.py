"""The operators of a .tflite model: type, shapes, FLOPs; the split into single-operator models.

  operators          every operator of a model: type, output, FLOPs
  model_flops        FLOPs of a model (2 x MACs of its convolutions and dense layers)
  single_op_models   the model split into one runnable model per operator

Read from the flatbuffer (the object API of ai_edge_litert's schema), so it
holds for any model, a float32 or int8 export or MediaPipe's. Flatbuffer-only
(numpy, ai_edge_litert), so it sits with hand25d.litert under the runtime
(docs/design.md); it never imports TensorFlow. hand25d.op_profile times the
single-operator models.

Constant folding: an operator whose inputs are all constants (the DEQUANTIZE
of MediaPipe's float16 weights) is done once when XNNPACK prepares the model,
not per invoke. Such an operator is `folded`: it gets no model of its own,
and it goes into the model of every operator that reads its output, so that
that operator sees constant weights as it does in the whole model.
"""

import copy
import dataclasses
from typing import Sequence

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils
import numpy as np

# Operators whose multiply-accumulates FLOPs count; everything else is "other".
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}


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
