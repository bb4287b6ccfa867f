"""A simulated SHAVE slice: 128 KB of working memory, DDR behind a counted DMA.

Every tensor lives in DDR in the interleaved layout (layout.py). A layer runs
as a loop over row tiles: the DMA copies a tile of its input rows (with the
halo rows the kernel needs) from DDR into a buffer of the slice, the kernel
computes the tile's output from slice buffers into a slice buffer, and the
DMA copies that back to DDR. Weights are copied into the slice once per layer.
Input and output tile buffers are double-buffered (two of each, alternating
tile by tile) so the DMA of one tile can overlap the compute of the next.

A dilated convolution runs field by field (comb.py): its DMA gathers a
field's input rows and columns with a stride of d and scatters the field's
output back with a stride of d, so the kernel only ever sees an undilated
convolution. A convolution with a fused nearest up-sampling (Layer.upsample)
fetches the rows of the small map its tile needs and the core up-samples them
into the tile buffer (counted as expand_vectors).

A depthwise layer's channel blocks are independent, so its tiles may also
take a subset of the channel blocks (a wide 64-channel map at 60x80 does not
fit three fp32 rows of all channels in the slice); every other layer's tile
spans all channel blocks.

Buffers are allocated explicitly in the slice (memory.Slice); a layer whose
buffers exceed it raises memory.SliceOverflowError naming the layer, the bytes
needed and the limit. `plan` picks per layer the tile with the most outputs
that fits. What the SHAVE executes is a `Program`: the layers, their weights
reordered into kernel stacks in the storage type, and a tile per layer;
`compile_network` makes one from a network (and a given or planned
schedule), blob.py writes and reads it as a deployment blob, and `run`
executes it. `simulate` is compile_network + run. The DMA (memory.Dma)
counts one descriptor per tile of whole rows (or of every d-th row), one per
row when a comb field strides between pixels. Zero padding outside the image
is written by the core, not transferred.
"""

import dataclasses
from typing import Optional

import numpy as np

from export.shave import comb
from export.shave import conv
from export.shave import graph
from export.shave import layout
from export.shave import memory

# plan() splits a layer into at least this many row tiles (if it has the
# rows), so the DMA of one tile overlaps the compute of another and only
# about 1/MIN_TILES of the shorter of the two stays exposed.
MIN_TILES = 4


@dataclasses.dataclass(frozen=True)
class Tile:
  """A layer's tile: output rows (per comb field for dilated convolutions,
  input rows for global pooling) and output channel blocks (all but for
  depthwise layers)."""
  rows: int
  blocks: int


@dataclasses.dataclass(frozen=True)
class LayerReport:
  """What one layer did in the simulated slice.

  Attributes:
    name, kind: the layer.
    tile: the Tile it ran with.
    tiles: tiles executed.
    peak_bytes: slice bytes allocated while the layer ran.
    dma_transfers, dma_bytes: DMA descriptors and bytes, both directions.
    dma_in_bytes, dma_out_bytes: bytes into and out of the slice.
    expand_vectors: vectors the core wrote up-sampling fused resize tiles.
  """
  name: str
  kind: str
  tile: Tile
  tiles: int
  peak_bytes: int
  dma_transfers: int
  dma_bytes: int
  dma_in_bytes: int
  dma_out_bytes: int
  expand_vectors: int


@dataclasses.dataclass(frozen=True)
class SimulationResult:
  """Outputs (Keras shapes without batch, float32) and per-layer reports."""
  outputs: dict[str, np.ndarray]
  reports: tuple[LayerReport, ...]

  @property
  def peak_bytes(self) -> int:
    return max(r.peak_bytes for r in self.reports)


def tensor_lanes(channels: int, dtype) -> int:
  """Lanes a tensor is stored with: one for a single channel (no padding), else L."""
  return 1 if channels == 1 else layout.lanes_for(dtype)


def _interleaved_shape(shape, dtype) -> tuple[int, int, int, int]:
  h, w, c = shape
  lanes = tensor_lanes(c, dtype)
  return (h, w, layout.channel_blocks(c, lanes), lanes)


def kernel_stack(layer: graph.Layer, dtype) -> layout.KernelStack:
  """The layer's weights reordered for the kernel, in the storage type."""
  lanes = tensor_lanes(layer.out_shape[-1], dtype)
  if layer.kind == graph.DEPTHWISE:
    return layout.reorder_depthwise(layer.kernel, layer.bias, lanes, dtype)
  return layout.reorder_kernel(layer.kernel, layer.bias, layer.groups, lanes, dtype)


def weight_shapes(layer: graph.Layer, dtype) -> tuple[tuple[int, ...], tuple[int, int]]:
  """Shapes of a convolution's kernel stack [OB, T, N, L] and bias [OB, L].

  The same shapes kernel_stack produces, from the descriptor alone.
  """
  channels = layer.out_shape[-1]
  lanes = tensor_lanes(channels, dtype)
  blocks = layout.channel_blocks(channels, lanes)
  width = 1
  if layer.kind == graph.CONV:
    sets = layout.block_input_sets(layer.inputs_per_filter, channels, layer.groups, lanes)
    width = max(len(s) for s in sets)
  taps = layer.kernel_size[0] * layer.kernel_size[1]
  return (blocks, taps, width, lanes), (blocks, lanes)


@dataclasses.dataclass(frozen=True)
class _ConvGeometry:
  """Where a convolution's comb fields and tiles read and write."""
  pads: tuple[int, int]  # (top, left)
  fields: tuple[tuple[int, int, int, int], ...]  # (p, q, field rows, field cols) out
  in_cols: int  # padded input columns of the widest field


def _conv_geometry(layer: graph.Layer) -> _ConvGeometry:
  (h, w, _), (kh, kw) = layer.conv_input_shape, layer.kernel_size
  d, s = layer.dilation, layer.strides
  top, _, out_h = conv.padding_amounts(h, kh, s, d, layer.padding)
  left, _, out_w = conv.padding_amounts(w, kw, s, d, layer.padding)
  fields = tuple((p, q, comb.field_size(out_h, p, d), comb.field_size(out_w, q, d))
                 for p, q in comb.fields(d))
  fields = tuple(f for f in fields if f[2] and f[3])
  return _ConvGeometry((top, left), fields, (fields[0][3] - 1) * s + kw)


def _tile_rows_needed(layer: graph.Layer, rows: int) -> int:
  """Input rows a conv tile of `rows` field-output rows reads (halo included)."""
  return (rows - 1) * layer.strides + layer.kernel_size[0]


def _buffers(layer: graph.Layer, tile: Tile, dtype) -> dict:
  """The slice buffers of `layer` run in tiles of `tile`."""
  rows = tile.rows
  out = _interleaved_shape(layer.out_shape, dtype)
  ins = [_interleaved_shape(s, dtype) for s in layer.in_shapes]
  buffers = {}
  if layer.kind in (graph.CONV, graph.DEPTHWISE):
    geometry = _conv_geometry(layer)
    stack_shape, bias_shape = weight_shapes(layer, dtype)
    buffers["weights"] = (stack_shape, dtype)
    buffers["bias"] = (bias_shape, dtype)
    in_blocks = tile.blocks if layer.kind == graph.DEPTHWISE else ins[0][2]
    in_tile = (_tile_rows_needed(layer, rows), geometry.in_cols, in_blocks, ins[0][3])
    out_tile = (rows, geometry.fields[0][3], tile.blocks, out[3])
    tiles = [in_tile]
    if layer.upsample > 1:
      # The small rows and columns the up-sampled tile (spacing d) covers.
      span_rows, span_cols = ((n - 1) * layer.dilation for n in in_tile[:2])
      small = (min(ins[0][0], span_rows // layer.upsample + 2),
               min(ins[0][1], span_cols // layer.upsample + 2))
      for slot in (0, 1):
        buffers[f"small_{slot}"] = (small + in_tile[2:], dtype)
  elif layer.kind == graph.GLOBAL_AVG_POOL:
    buffers["sum"] = (out[2:], np.float32)
    buffers["mean"] = (out[2:], dtype)
    tiles = [(rows,) + ins[0][1:]]
    out_tile = None
  else:
    in_rows = {graph.MAX_POOL: rows * layer.strides,
               graph.RESIZE_NEAREST: -(-rows // layer.scale) + 1}.get(layer.kind, rows)
    tiles = [(in_rows,) + shape[1:] for shape in ins]
    out_tile = (rows,) + out[1:]
  for i, shape in enumerate(tiles):
    for slot in (0, 1):
      buffers[f"in{i}_{slot}"] = (shape, dtype)
  if out_tile is not None:
    for slot in (0, 1):
      buffers[f"out_{slot}"] = (out_tile, dtype)
  return buffers


def _max_rows(layer: graph.Layer) -> int:
  """Rows of the full loop dimension the layer tiles."""
  if layer.kind in (graph.CONV, graph.DEPTHWISE):
    return _conv_geometry(layer).fields[0][2]
  if layer.kind == graph.GLOBAL_AVG_POOL:
    return layer.in_shapes[0][0]
  return layer.out_shape[0]


def _all_blocks(layer: graph.Layer, dtype) -> int:
  return _interleaved_shape(layer.out_shape, dtype)[2]


def plan_layer(layer: graph.Layer, dtype=np.float16,
               capacity: int = memory.SLICE_BYTES) -> Tile:
  """The tile with the most output rows x blocks that fits (more rows on a tie).

  Rows are capped at 1/MIN_TILES of the layer's rows (see MIN_TILES).

  Raises:
    memory.SliceOverflowError: if the layer does not fit even with one-row tiles.
  """
  all_blocks = _all_blocks(layer, dtype)
  choices = range(1, all_blocks + 1) if layer.kind == graph.DEPTHWISE else (all_blocks,)
  best = None
  for blocks in choices:
    rows = -(-_max_rows(layer) // MIN_TILES)
    while (rows > 1
           and memory.buffer_bytes(_buffers(layer, Tile(rows, blocks), dtype)) > capacity):
      rows -= 1
    tile = Tile(rows, blocks)
    fits = memory.buffer_bytes(_buffers(layer, tile, dtype)) <= capacity
    if fits and (best is None or rows * blocks > best.rows * best.blocks):
      best = tile
  if best is None:
    smallest = Tile(1, 1 if layer.kind == graph.DEPTHWISE else all_blocks)
    needed = memory.buffer_bytes(_buffers(layer, smallest, dtype))
    raise memory.SliceOverflowError(layer.name, needed, capacity, " even with one-row tiles")
  return best


def plan(network: graph.Network, dtype=np.float16,
         capacity: int = memory.SLICE_BYTES) -> dict[str, Tile]:
  """plan_layer for every layer: layer name -> Tile."""
  return {layer.name: plan_layer(layer, dtype, capacity) for layer in network.layers}


def check_tile(layer: graph.Layer, tile: Tile, dtype, capacity: int) -> None:
  """Checks that `layer` can run in tiles of `tile` inside `capacity` bytes.

  Raises:
    ValueError: rows below 1, channel blocks outside 1 .. all blocks, or a
      layer other than depthwise whose tile does not span all blocks.
    memory.SliceOverflowError: the layer's buffers exceed the slice.
  """
  all_blocks = _all_blocks(layer, dtype)
  if tile.rows < 1 or not 1 <= tile.blocks <= all_blocks:
    raise ValueError(f"layer {layer.name!r}: tile {tile} needs rows >= 1 and 1 <= blocks "
                     f"<= {all_blocks}")
  if layer.kind != graph.DEPTHWISE and tile.blocks != all_blocks:
    raise ValueError(f"layer {layer.name!r} ({layer.kind}) needs all {all_blocks} channel "
                     f"blocks per tile, not {tile.blocks}")
  needed = memory.buffer_bytes(_buffers(layer, tile, dtype))
  if needed > capacity:
    raise memory.SliceOverflowError(layer.name, needed, capacity, f" with tiles of {tile}")


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
  """What the SHAVE executes: layers, reordered weights and a tile per layer.

  Attributes:
    network: the layers in execution order; `run` reads only their
      descriptors, never their `kernel`/`bias`.
    dtype: storage type, float16 (8 lanes) or float32 (4 lanes).
    stacks: layer name -> kernel stack (weights and bias in `dtype`) of every
      conv and depthwise layer.
    schedule: layer name -> Tile, for every layer.
    capacity: slice bytes the schedule runs in.
  """
  network: graph.Network
  dtype: np.dtype
  stacks: dict[str, layout.KernelStack]
  schedule: dict[str, Tile]
  capacity: int = memory.SLICE_BYTES


def compile_network(network: graph.Network, dtype=np.float16,
                    schedule: Optional[dict[str, Tile]] = None,
                    capacity: int = memory.SLICE_BYTES) -> Program:
  """Reorders the network's weights and fixes its schedule.

  Args:
    network: from graph.from_keras (with weights).
    dtype: storage type, np.float16 (8 lanes) or np.float32 (4 lanes).
    schedule: layer name -> Tile; missing layers, or all if None, get
      plan_layer()'s choice.
    capacity: slice bytes.

  Raises:
    memory.SliceOverflowError: naming the first layer, in execution order,
      that does not fit (its given tile, or even one-row tiles).
    ValueError: a tile check_tile refuses.
  """
  dtype = np.dtype(dtype)
  layout.lanes_for(dtype)  # refuses types other than fp16 and fp32
  schedule = schedule or {}
  tiles, stacks = {}, {}
  for layer in network.layers:
    tiles[layer.name] = schedule.get(layer.name) or plan_layer(layer, dtype, capacity)
    check_tile(layer, tiles[layer.name], dtype, capacity)
    if layer.kind in (graph.CONV, graph.DEPTHWISE):
      stacks[layer.name] = kernel_stack(layer, dtype)
  return Program(network, dtype, stacks, tiles, capacity)


def _conv_tiles(layer: graph.Layer, tile: Tile, dtype):
  """(field, first field row, rows, block range) of each tile, in run order."""
  all_blocks = _all_blocks(layer, dtype)
  for field in _conv_geometry(layer).fields:
    for b0 in range(0, all_blocks, tile.blocks):
      for r0 in range(0, field[2], tile.rows):
        yield field, r0, min(tile.rows, field[2] - r0), slice(b0, b0 + tile.blocks)


def _run_conv(layer, stack, views, ddr, dma, tile, dtype) -> tuple[int, int]:
  """Convolution tiles; returns (tiles, vectors written up-sampling fused input)."""
  geometry = _conv_geometry(layer)
  dma.fetch(views["weights"], stack.stack)
  dma.fetch(views["bias"], stack.bias)
  depthwise = layer.kind == graph.DEPTHWISE
  run = conv.depthwise_tile if depthwise else conv.conv_tile
  source, target = ddr[layer.inputs[0]], ddr[layer.name]
  d, s = layer.dilation, layer.strides
  (top, left), tiles, expanded = geometry.pads, 0, 0
  height, width, _ = layer.conv_input_shape
  for (p, q, _, field_cols), r0, n, blocks in _conv_tiles(layer, tile, dtype):
    kernel = dataclasses.replace(stack, stack=views["weights"][blocks],
                                 bias=views["bias"][blocks])
    in_blocks = blocks if depthwise else slice(None)
    in_cols = (field_cols - 1) * s + layer.kernel_size[1]
    cols = q - left + d * np.arange(in_cols)
    col_ok = np.flatnonzero((cols >= 0) & (cols < width))
    slot = tiles % 2
    buffer = views[f"in0_{slot}"]
    buffer = buffer[:_tile_rows_needed(layer, n), :in_cols, :source[0, 0, in_blocks].shape[0]]
    buffer[...] = 0
    ddr_rows = p - top + d * (r0 * s + np.arange(buffer.shape[0]))
    row_ok = np.flatnonzero((ddr_rows >= 0) & (ddr_rows < height))
    if row_ok.size and col_ok.size:
      rows_in, cols_in = ddr_rows[row_ok[0]:row_ok[-1] + 1], cols[col_ok[0]:col_ok[-1] + 1]
      part = buffer[row_ok[0]:row_ok[-1] + 1, col_ok[0]:col_ok[-1] + 1]
      if layer.upsample == 1:
        dma.fetch(part, source[rows_in[0]:rows_in[-1] + 1:d, cols_in[0]:cols_in[-1] + 1:d,
                               in_blocks], d)
      else:
        rows_in, cols_in = rows_in // layer.upsample, cols_in // layer.upsample
        small = views[f"small_{slot}"][:rows_in[-1] - rows_in[0] + 1,
                                       :cols_in[-1] - cols_in[0] + 1, :part.shape[2]]
        dma.fetch(small, source[rows_in[0]:rows_in[-1] + 1, cols_in[0]:cols_in[-1] + 1,
                                in_blocks])
        part[...] = small[(rows_in - rows_in[0])[:, None], (cols_in - cols_in[0])[None, :]]
        expanded += part.shape[0] * part.shape[1] * part.shape[2]
    out = views[f"out_{slot}"][:n, :field_cols, :kernel.bias.shape[0]]
    out[...] = run(buffer, kernel, s, layer.relu)
    dma.store(target[p + d * r0:p + d * (r0 + n - 1) + 1:d, q::d, blocks], out, d)
    tiles += 1
  return tiles, expanded


def _fetch_rows(views, ddr, dma, layer, slot, start, stop) -> list[np.ndarray]:
  """DMA of rows [start, stop) of every input into the slot's input buffers."""
  buffers = []
  for i, name in enumerate(layer.inputs):
    buffers.append(views[f"in{i}_{slot}"][:stop - start])
    dma.fetch(buffers[-1], ddr[name][start:stop])
  return buffers


def _run_rows(layer, views, ddr, dma, tile) -> int:
  """Add, concat, channel shuffle, resize, max-pool and global pooling: row tiles, no halo."""
  target, tiles, rows = ddr[layer.name], 0, tile.rows
  if layer.kind == graph.GLOBAL_AVG_POOL:
    views["sum"][...] = 0
  for r0 in range(0, _max_rows(layer), rows):
    r1, slot = min(r0 + rows, _max_rows(layer)), tiles % 2
    out = None if layer.kind == graph.GLOBAL_AVG_POOL else views[f"out_{slot}"][:r1 - r0]
    if layer.kind == graph.ADD:
      acc = sum(t.astype(np.float32) for t in _fetch_rows(views, ddr, dma, layer, slot, r0, r1))
      out[...] = np.maximum(acc, 0) if layer.relu else acc
    elif layer.kind == graph.CONCAT:
      parts = _fetch_rows(views, ddr, dma, layer, slot, r0, r1)
      channels = [layout.from_interleaved(t, s[-1]) for t, s in zip(parts, layer.in_shapes)]
      out[...] = layout.to_interleaved(np.concatenate(channels, -1), out.shape[-1])
    elif layer.kind == graph.CHANNEL_SHUFFLE:
      (source,) = _fetch_rows(views, ddr, dma, layer, slot, r0, r1)
      channels = layout.from_interleaved(source, layer.in_shapes[0][-1])
      out[...] = layout.to_interleaved(graph.shuffle_channels(channels, layer.groups),
                                       out.shape[-1])
    elif layer.kind == graph.RESIZE_NEAREST:
      k = layer.scale
      (source,) = _fetch_rows(views, ddr, dma, layer, slot, r0 // k, (r1 - 1) // k + 1)
      rows_of = np.arange(r0, r1) // k - r0 // k
      out[...] = np.repeat(source[rows_of], k, axis=1)
    elif layer.kind == graph.MAX_POOL:
      k = layer.strides
      (source,) = _fetch_rows(views, ddr, dma, layer, slot, r0 * k, r1 * k)
      h, w = r1 - r0, out.shape[1]
      out[...] = source[:, :w * k].reshape(h, k, w, k, *source.shape[2:]).max(axis=(1, 3))
    else:
      (source,) = _fetch_rows(views, ddr, dma, layer, slot, r0, r1)
      views["sum"][...] += source.astype(np.float32).sum(axis=(0, 1))
    if out is not None:
      dma.store(target[r0:r1], out)
    tiles += 1
  if layer.kind == graph.GLOBAL_AVG_POOL:
    h, w, _ = layer.in_shapes[0]
    views["mean"][...] = views["sum"] / (h * w)
    dma.store(target[0, 0], views["mean"])
  return tiles


def run(program: Program, image: np.ndarray) -> SimulationResult:
  """Executes a program on one image inside its simulated slice.

  Args:
    program: from compile_network or blob.read_blob.
    image: [H, W, C] input (float; converted to the storage type).

  Returns:
    The outputs and a report per layer.

  Raises:
    ValueError: if the image does not match the network input.
    memory.SliceOverflowError: if a layer's tiles need more than the slice.
  """
  network, dtype = program.network, program.dtype
  if tuple(image.shape) != network.input_shape:
    raise ValueError(f"image shape {image.shape} != network input {network.input_shape}")
  working = memory.Slice(program.capacity)
  ddr = {network.input_name: layout.to_interleaved(image.astype(dtype),
                                                   tensor_lanes(image.shape[-1], dtype))}
  reports = []
  for layer in network.layers:
    tile = program.schedule[layer.name]
    views, used = working.allocate(layer.name, _buffers(layer, tile, dtype))
    ddr[layer.name] = np.zeros(_interleaved_shape(layer.out_shape, dtype), dtype)
    dma = memory.Dma()
    if layer.kind in (graph.CONV, graph.DEPTHWISE):
      tiles, expanded = _run_conv(layer, program.stacks[layer.name], views, ddr, dma, tile,
                                  dtype)
    else:
      tiles, expanded = _run_rows(layer, views, ddr, dma, tile), 0
    reports.append(LayerReport(layer.name, layer.kind, tile, tiles, used, dma.transfers,
                               dma.bytes_in + dma.bytes_out, dma.bytes_in, dma.bytes_out,
                               expanded))
  outputs = {}
  for key, tensor in network.outputs.items():
    channels = network.output_shapes[key][-1]
    values = layout.from_interleaved(ddr[tensor], channels).astype(np.float32)
    outputs[key] = values.reshape(network.output_shapes[key])
  return SimulationResult(outputs, tuple(reports))


def simulate(network: graph.Network, image: np.ndarray, dtype=np.float16,
             schedule: Optional[dict[str, Tile]] = None,
             capacity: int = memory.SLICE_BYTES) -> SimulationResult:
  """Runs the network on one image inside the simulated slice.

  compile_network(network, dtype, schedule, capacity), then run.

  Args:
    network: from graph.from_keras.
    image: [H, W, C] input (float; converted to the storage type).
    dtype: storage type, np.float16 (8 lanes) or np.float32 (4 lanes).
    schedule: layer name -> Tile; missing layers, or all if None, get
      plan_layer()'s choice.
    capacity: slice bytes.

  Returns:
    The outputs and a report per layer.

  Raises:
    memory.SliceOverflowError: if a layer's schedule needs more than `capacity`.
    ValueError: if the image does not match the network input, or a
      schedule splits the channel blocks of a layer other than depthwise.
  """
  return run(compile_network(network, dtype, schedule, capacity), image)
