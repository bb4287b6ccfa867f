"""The SHAVE deployment blob: a compiled network in one checksummed file.

`write_blob(model, path, dtype)` folds BatchNorm (graph.from_keras), reorders
every kernel into the interleaved kernel-stack layout in fp16 or fp32, plans
a tile per layer for the 128 KB slice (planner.compile_network), checks the
schedule runs inside the slice, and writes the result atomically;
`read_blob(path)` returns the planner.Program the simulator runs, with the
weights taken from the blob, never recomputed from Keras.

Format, version 2 (docs/embedded.md), all integers little-endian; every
section starts at a 16-byte aligned offset (zero padding) so that firmware
can DMA each array straight from the blob:

  header, 32 bytes:
    magic b"H25SHAVE", u16 version, u16 element bits (16: fp16 in 8 lanes,
    32: fp32 in 4 lanes), u32 layer count, u32 slice bytes the schedule is
    planned for, u32 file bytes (checksum included), 8 bytes zero.
  network:
    input name (str), u32 x 3 input (H, W, C), u32 output count, per output:
    key (str), u32 index of the layer holding it, u32 rank, u32 x rank shape.
  per layer, in execution order:
    descriptor, 72 bytes: u32 record bytes (this layer's section, padding
    included), u8 kind (index into graph.KINDS), u8 flags (bit 0 ReLU, bit 1
    SAME padding, bit 2 output stored in fp32: planner.fp32_stored), u8
    input count, u8 zero, u32 x 7 kernel rows, kernel columns, stride,
    dilation, groups, resize scale, fused up-sampling, u32 x 3 output (H, W,
    C), u32 x 2 tile (rows, channel blocks), u32 x 4 kernel stack shape (OB,
    T, N, L; zero without weights);
    i32 x inputs: index of each input's layer, -1 for the network input;
    name (str);
    conv and depthwise only, each array aligned: u16 counts [OB], u16 input
    channel table [OB, N], kernel stack [OB, T, N, L] and bias [OB, L] in
    the element type.
  u32 CRC-32 (zlib.crc32) of every byte before it.

A str is a u16 byte count and UTF-8 bytes. A layer's input shapes are the
output shapes of the layers (or the network input) it names.
"""

import math
import struct
import zlib

import numpy as np
import tf_keras as keras

from export.shave import cost
from export.shave import graph
from export.shave import layout
from export.shave import memory
from export.shave import planner
from export.shave import simulator
from hand25d import atomic

MAGIC = b"H25SHAVE"
VERSION = 2  # 2: flag bit 2, the network outputs an fp16 program stores in fp32.
DTYPES = {"fp16": np.dtype(np.float16), "fp32": np.dtype(np.float32)}
_ALIGN = 16
_HEADER = struct.Struct("<8sHHIII8x")
_DESCRIPTOR = struct.Struct("<IBBBx16I")
_CHECKSUM = struct.Struct("<I")
_RELU, _SAME, _FP32_OUT = 1, 2, 4
_WEIGHTED = (graph.CONV, graph.DEPTHWISE)


class BlobError(ValueError):
  """A blob that cannot be read: not a blob, another version, truncated, corrupt."""

  def __init__(self, source: str, problem: str):
    self.source = source
    super().__init__(f"SHAVE blob {source}: {problem}")


def write_blob(model: keras.Model, path: str, dtype: str = "fp16",
               capacity: int = memory.SLICE_BYTES) -> dict:
  """Compiles a Keras inference model for the SHAVE and writes the blob atomically.

  Args:
    model: the float inference model (hand25d.model.network.inference_model).
    path: the blob file to write.
    dtype: "fp16" or "fp32", the storage type of weights and activations.
    capacity: slice bytes to plan the tiles for.

  Returns:
    {"layers", "bytes", "dtype", "peak_slice_bytes", "slice_bytes",
    "modelled_ms"}: the modelled latency of one SHAVE (cost.estimate).

  Raises:
    ValueError: an unknown dtype, or a layer graph.from_keras refuses.
    memory.SliceOverflowError: a layer that does not fit the slice.
  """
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
  program = planner.compile_network(graph.from_keras(model), DTYPES[dtype],
                                      capacity=capacity)
  result = simulator.run(program, np.zeros(program.network.input_shape, np.float32))
  priced = cost.estimate(result)
  data = to_bytes(program)
  atomic.write_bytes(path, data)
  return {"layers": len(program.network.layers), "bytes": len(data), "dtype": dtype,
          "peak_slice_bytes": result.peak_bytes, "slice_bytes": capacity,
          "modelled_ms": priced.ours_ms}


def read_blob(path: str) -> planner.Program:
  """Reads a blob written by write_blob.

  Raises:
    BlobError: naming the file and the problem (it cannot be read, bad
      magic, other version, truncated, checksum mismatch, inconsistent layer
      records).
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise BlobError(path, f"cannot be read: {e.strerror or e}") from e
  return from_bytes(data, path)


class _Writer:
  """Appends packed values and aligned arrays to a byte buffer."""

  def __init__(self):
    self.data = bytearray()

  def pack(self, fmt: str, *values) -> None:
    self.data += struct.pack("<" + fmt, *values)

  def string(self, text: str) -> None:
    encoded = text.encode("utf-8")
    self.pack("H", len(encoded))
    self.data += encoded

  def align(self) -> None:
    self.data += bytes(-len(self.data) % _ALIGN)

  def array(self, values: np.ndarray, dtype, what: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind == "u" and values.size and values.max() > np.iinfo(dtype).max:
      raise ValueError(f"{what}: value {values.max()} does not fit the blob's {dtype}")
    self.data += np.ascontiguousarray(values, dtype.newbyteorder("<")).tobytes()
    self.align()


def to_bytes(program: planner.Program) -> bytes:
  """The blob of a compiled program (format in the module docstring)."""
  network, out = program.network, _Writer()
  out.data += bytes(_HEADER.size)
  out.string(network.input_name)
  out.pack("3I", *network.input_shape)
  index = {layer.name: i for i, layer in enumerate(network.layers)}
  index[network.input_name] = -1
  stored = program.out_dtypes
  out.pack("I", len(network.outputs))
  for key, tensor in network.outputs.items():
    shape = network.output_shapes[key]
    out.string(key)
    out.pack(f"II{len(shape)}I", index[tensor], len(shape), *shape)
  out.align()
  for layer in network.layers:
    start = len(out.data)
    stack = program.stacks.get(layer.name)
    stack_shape = stack.stack.shape if stack is not None else (0, 0, 0, 0)
    tile = program.schedule[layer.name]
    flags = ((_RELU if layer.relu else 0) | (_SAME if layer.padding == "SAME" else 0)
             | (_FP32_OUT if stored[layer.name] != program.dtype else 0))
    out.data += bytes(_DESCRIPTOR.size)  # record bytes are known at the end
    out.pack(f"{len(layer.inputs)}i", *(index[name] for name in layer.inputs))
    out.string(layer.name)
    out.align()
    if stack is not None:
      out.array(stack.counts, np.uint16, f"layer {layer.name!r} counts")
      out.array(stack.inputs, np.uint16, f"layer {layer.name!r} input table")
      out.array(stack.stack, program.dtype, f"layer {layer.name!r} kernel stack")
      out.array(stack.bias, program.dtype, f"layer {layer.name!r} bias")
    _DESCRIPTOR.pack_into(
        out.data, start, len(out.data) - start, graph.KINDS.index(layer.kind), flags,
        len(layer.inputs), *layer.kernel_size, layer.strides, layer.dilation, layer.groups,
        layer.scale, layer.upsample, *layer.out_shape, tile.rows, tile.blocks, *stack_shape)
  total = len(out.data) + _CHECKSUM.size
  _HEADER.pack_into(out.data, 0, MAGIC, VERSION, program.dtype.itemsize * 8,
                    len(network.layers), program.capacity, total)
  out.data += _CHECKSUM.pack(zlib.crc32(out.data))
  return bytes(out.data)


class _Reader:
  """Reads packed values and aligned arrays; running off the end is a BlobError."""

  def __init__(self, data: bytes, source: str, offset: int):
    self.data, self.source, self.offset = data, source, offset
    self.end = len(data) - _CHECKSUM.size

  def take(self, size: int, what: str) -> bytes:
    if self.offset + size > self.end:
      raise BlobError(self.source, f"{what} at byte {self.offset} runs past the end of the "
                      f"layer data ({self.end} bytes)")
    self.offset += size
    return self.data[self.offset - size:self.offset]

  def unpack(self, fmt: str, what: str) -> tuple:
    fmt = "<" + fmt
    return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

  def string(self, what: str) -> str:
    (size,) = self.unpack("H", what)
    try:
      return self.take(size, what).decode("utf-8")
    except UnicodeDecodeError as e:
      raise BlobError(self.source, f"{what} is not UTF-8: {e}") from e

  def align(self) -> None:
    self.offset += -self.offset % _ALIGN

  def array(self, dtype, shape, what: str) -> np.ndarray:
    dtype = np.dtype(dtype).newbyteorder("<")
    data = self.take(math.prod(shape) * dtype.itemsize, what)
    self.align()
    return np.frombuffer(data, dtype).reshape(shape)


def _check_envelope(data: bytes, source: str) -> tuple:
  """Header fields after checking magic, version, length and checksum, in that order."""
  if len(data) < _HEADER.size + _CHECKSUM.size:
    raise BlobError(source, f"truncated: {len(data)} bytes, shorter than the "
                    f"{_HEADER.size}-byte header and checksum")
  magic, version, bits, layers, capacity, total = _HEADER.unpack_from(data)
  if magic != MAGIC:
    raise BlobError(source, f"not a SHAVE deployment blob: magic {magic!r}, expected {MAGIC!r}")
  if version != VERSION:
    raise BlobError(source, f"format version {version}; this reader reads version {VERSION}: "
                    "write the blob again with this hand25d")
  if total > len(data):
    raise BlobError(source, f"truncated: the header declares {total} bytes, the file has "
                    f"{len(data)}")
  if total < len(data):
    raise BlobError(source, f"{len(data) - total} bytes after the {total} bytes the header "
                    "declares")
  (stored,) = _CHECKSUM.unpack_from(data, total - _CHECKSUM.size)
  computed = zlib.crc32(data[:total - _CHECKSUM.size])
  if stored != computed:
    raise BlobError(source, f"checksum mismatch (stored 0x{stored:08x}, computed "
                    f"0x{computed:08x}): the file is corrupt")
  dtypes = {d.itemsize * 8: d for d in DTYPES.values()}
  if bits not in dtypes:
    raise BlobError(source, f"element type of {bits} bits; expected 16 (fp16) or 32 (fp32)")
  return dtypes[bits], layers, capacity


def _read_layer(reader: _Reader, position: int, dtype, tensors: dict
                ) -> tuple[graph.Layer, planner.Tile, layout.KernelStack | None, bool]:
  """One layer record: its descriptor, tile, (for convolutions) kernel stack and
  whether its flags say its output is stored in fp32 in an fp16 blob.

  tensors: index (-1: the network input) -> (name, shape) of the tensors so far.
  """
  start, what = reader.offset, f"layer {position}"
  (record, kind, flags, count, kh, kw, strides, dilation, groups, scale, upsample,
   *rest) = _DESCRIPTOR.unpack(reader.take(_DESCRIPTOR.size, f"{what} descriptor"))
  out_shape, (rows, blocks), stack_shape = tuple(rest[:3]), rest[3:5], tuple(rest[5:])
  if kind >= len(graph.KINDS):
    raise BlobError(reader.source, f"{what}: kind {kind} is not one of 0..{len(graph.KINDS) - 1}")
  sources = reader.unpack(f"{count}i", f"{what} inputs")
  if not count or any(not -1 <= s < position for s in sources):
    raise BlobError(reader.source, f"{what}: inputs {sources} must name the network input "
                    f"(-1) or earlier layers (0..{position - 1})")
  name = reader.string(f"{what} name")
  reader.align()
  layer = graph.Layer(
      name=name, kind=graph.KINDS[kind],
      inputs=tuple(tensors[s][0] for s in sources),
      in_shapes=tuple(tensors[s][1] for s in sources),
      out_shape=out_shape, kernel_size=(kh, kw), strides=strides, dilation=dilation,
      groups=groups, padding="SAME" if flags & _SAME else "VALID", scale=scale,
      upsample=upsample, relu=bool(flags & _RELU))
  stack = None
  if layer.kind in _WEIGHTED:
    expected, bias_shape = planner.weight_shapes(layer, dtype)
    if stack_shape != expected:
      raise BlobError(reader.source, f"layer {name!r}: kernel stack {stack_shape}, but its "
                      f"descriptor needs {expected}")
    blocks_out, _, width, _ = stack_shape
    counts = reader.array(np.uint16, (blocks_out,), f"layer {name!r} counts")
    table = reader.array(np.uint16, (blocks_out, width), f"layer {name!r} input table")
    stack = layout.KernelStack(
        stack=reader.array(dtype, stack_shape, f"layer {name!r} kernel stack"),
        inputs=table.astype(np.int64), counts=counts.astype(np.int64),
        bias=reader.array(dtype, bias_shape, f"layer {name!r} bias"),
        kernel_size=(kh, kw), out_channels=out_shape[-1])
  elif any(stack_shape):
    raise BlobError(reader.source, f"layer {name!r} ({layer.kind}) has a kernel stack")
  if reader.offset - start != record:
    raise BlobError(reader.source, f"layer {name!r}: record of {reader.offset - start} bytes, "
                    f"its descriptor says {record}")
  return layer, planner.Tile(rows, blocks), stack, bool(flags & _FP32_OUT)


def from_bytes(data: bytes, source: str = "<bytes>") -> planner.Program:
  """The program in a blob; `source` names it in errors (read_blob passes the path).

  Raises:
    BlobError: see read_blob.
  """
  dtype, count, capacity = _check_envelope(data, source)
  reader = _Reader(data, source, _HEADER.size)
  input_name = reader.string("input name")
  input_shape = reader.unpack("3I", "input shape")
  (outputs_count,) = reader.unpack("I", "output count")
  outputs = []
  for i in range(outputs_count):
    key = reader.string(f"output {i} name")
    tensor, rank = reader.unpack("II", f"output {key!r}")
    outputs.append((key, tensor, reader.unpack(f"{rank}I", f"output {key!r} shape")))
  reader.align()
  layers, schedule, stacks, flagged = [], {}, {}, set()
  tensors = {-1: (input_name, input_shape)}
  for position in range(count):
    layer, tile, stack, fp32_out = _read_layer(reader, position, dtype, tensors)
    if fp32_out:
      flagged.add(layer.name)
    layers.append(layer)
    tensors[position] = (layer.name, layer.out_shape)
    schedule[layer.name] = tile
    if stack is not None:
      stacks[layer.name] = stack
  if reader.offset != reader.end:
    raise BlobError(source, f"{reader.end - reader.offset} bytes after the {count} layers "
                    "the header declares")
  if any(not 0 <= tensor < count for _, tensor, _ in outputs):
    raise BlobError(source, f"outputs {outputs} name layers outside 0..{count - 1}")
  network = graph.Network(
      input_name=input_name, input_shape=input_shape, layers=tuple(layers),
      outputs={key: tensors[tensor][0] for key, tensor, _ in outputs},
      output_shapes={key: shape for key, _, shape in outputs})
  program = planner.Program(network, dtype, stacks, schedule, capacity,
                            fp32_outputs=bool(flagged))
  stored = program.out_dtypes
  expected = {name for name, out_dtype in stored.items() if out_dtype != dtype}
  if flagged != expected:
    raise BlobError(source, f"layers {sorted(flagged - expected)} flagged as stored in fp32 "
                    f"and {sorted(expected - flagged)} not; a {dtype.name} program stores "
                    f"exactly {sorted(expected)} in fp32, or none (planner.fp32_stored)")
  for layer in layers:
    try:
      planner.check_tile(layer, schedule[layer.name], dtype, capacity, stored[layer.name])
    except (ValueError, memory.SliceOverflowError) as e:
      raise BlobError(source, f"schedule: {e}") from e
  return program

