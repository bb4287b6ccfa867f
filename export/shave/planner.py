"""Planning a network for the simulated SHAVE slice: tiles, buffers, the compiled Program.

Every tensor lives in DDR in the interleaved layout (layout.py). A layer runs
as a loop over row tiles (simulator.py executes it): its input rows, with the
halo rows the kernel needs, are copied into slice buffers, the kernel computes
the tile's output into a slice buffer, and that is copied back. Weights sit in
the slice for the whole layer. Input and output tile buffers are
double-buffered (two of each), so the DMA of one tile can overlap the compute
of the next. A dilated convolution runs comb field by comb field (comb.py); a
convolution with a fused nearest up-sampling (Layer.upsample) also holds the
small rows its tile covers.

A depthwise layer's channel blocks are independent, so its tiles may also
take a subset of the channel blocks (a wide 64-channel map at 60x80 does not
fit three fp32 rows of all channels in the slice); every other layer's tile
spans all channel blocks.

`buffers` gives the slice buffers (name -> (shape, dtype)) of a layer run in
a given tile; `plan_layer` picks the tile with the most outputs whose buffers
fit the slice, `check_tile` refuses one that does not fit (a
memory.SliceOverflowError naming the layer, the bytes needed and the limit).
What the SHAVE executes is a `Program`: the layers, their weights reordered
into kernel stacks in the storage type, and a tile per layer;
an fp16 program stores the network's outputs from its fp32 accumulators in
fp32 (`fp32_stored`): rounding a flat score map to fp16 would make ties of
its near-equal cells and move their arg-max.
`compile_network` makes one from a network (and a given or planned schedule)
and blob.py writes and reads it as a deployment blob.
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


def tensor_lanes(channels: int, dtype) -> int:
  """Lanes a tensor is stored with: one for a single channel (no padding), else L."""
  return 1 if channels == 1 else layout.lanes_for(dtype)


def interleaved_shape(shape, dtype) -> tuple[int, int, int, int]:
  """[H, W, C] as stored interleaved: [H, W, channel blocks, lanes]."""
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
class ConvGeometry:
  """Where a convolution's comb fields and tiles read and write."""
  pads: tuple[int, int]  # (top, left)
  fields: tuple[tuple[int, int, int, int], ...]  # (p, q, field rows, field cols) out
  in_cols: int  # padded input columns of the widest field


def conv_geometry(layer: graph.Layer) -> ConvGeometry:
  (h, w, _), (kh, kw) = layer.conv_input_shape, layer.kernel_size
  d, s = layer.dilation, layer.strides
  top, _, out_h = conv.padding_amounts(h, kh, s, d, layer.padding)
  left, _, out_w = conv.padding_amounts(w, kw, s, d, layer.padding)
  fields = tuple((p, q, comb.field_size(out_h, p, d), comb.field_size(out_w, q, d))
                 for p, q in comb.fields(d))
  fields = tuple(f for f in fields if f[2] and f[3])
  return ConvGeometry((top, left), fields, (fields[0][3] - 1) * s + kw)


def tile_rows_needed(layer: graph.Layer, rows: int) -> int:
  """Input rows a conv tile of `rows` field-output rows reads (halo included)."""
  return (rows - 1) * layer.strides + layer.kernel_size[0]


def fp32_stored(network: graph.Network) -> frozenset[str]:
  """The layers an fp16 program stores in fp32: the convolutions (conv or
  depthwise) whose output is a network output and that no layer reads.

  They write their fp32 accumulators unrounded, in the lanes of the
  program's type (8 per block: two 128-bit stores). The host reads these
  outputs; rounded to fp16 (2^-11 of a value), the near-equal cells at a
  score map's peak become ties and its arg-max moves (docs/embedded.md,
  "Outputs in fp32").
  """
  read = {name for layer in network.layers for name in layer.inputs}
  outputs = set(network.outputs.values())
  return frozenset(layer.name for layer in network.layers
                   if layer.name in outputs and layer.name not in read
                   and layer.kind in (graph.CONV, graph.DEPTHWISE))


def buffers(layer: graph.Layer, tile: Tile, dtype, out_dtype=None) -> dict:
  """The slice buffers of `layer` run in tiles of `tile`.

  dtype is the storage type (and the lanes); out_dtype, the output's type
  if it differs (fp32 for a layer in `fp32_stored`), sets the output tiles'.
  """
  out_dtype = dtype if out_dtype is None else out_dtype
  rows = tile.rows
  out = interleaved_shape(layer.out_shape, dtype)
  ins = [interleaved_shape(s, dtype) for s in layer.in_shapes]
  buffers = {}
  if layer.kind in (graph.CONV, graph.DEPTHWISE):
    geometry = conv_geometry(layer)
    stack_shape, bias_shape = weight_shapes(layer, dtype)
    buffers["weights"] = (stack_shape, dtype)
    buffers["bias"] = (bias_shape, dtype)
    in_blocks = tile.blocks if layer.kind == graph.DEPTHWISE else ins[0][2]
    in_tile = (tile_rows_needed(layer, rows), geometry.in_cols, in_blocks, ins[0][3])
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
      buffers[f"out_{slot}"] = (out_tile, out_dtype)
  return buffers


def max_rows(layer: graph.Layer) -> int:
  """Rows of the full loop dimension the layer tiles."""
  if layer.kind in (graph.CONV, graph.DEPTHWISE):
    return conv_geometry(layer).fields[0][2]
  if layer.kind == graph.GLOBAL_AVG_POOL:
    return layer.in_shapes[0][0]
  return layer.out_shape[0]


def output_blocks(layer: graph.Layer, dtype) -> int:
  """Channel blocks of the layer's output."""
  return interleaved_shape(layer.out_shape, dtype)[2]


def plan_layer(layer: graph.Layer, dtype=np.float16,
               capacity: int = memory.SLICE_BYTES, out_dtype=None) -> Tile:
  """The tile with the most output rows x blocks that fits (more rows on a tie).

  Rows are capped at 1/MIN_TILES of the layer's rows (see MIN_TILES);
  out_dtype as in `buffers`.

  Raises:
    memory.SliceOverflowError: if the layer does not fit even with one-row tiles.
  """
  all_blocks = output_blocks(layer, dtype)
  choices = range(1, all_blocks + 1) if layer.kind == graph.DEPTHWISE else (all_blocks,)
  best = None
  for blocks in choices:
    rows = -(-max_rows(layer) // MIN_TILES)
    while (rows > 1
           and memory.buffer_bytes(buffers(layer, Tile(rows, blocks), dtype, out_dtype))
           > capacity):
      rows -= 1
    tile = Tile(rows, blocks)
    fits = memory.buffer_bytes(buffers(layer, tile, dtype, out_dtype)) <= capacity
    if fits and (best is None or rows * blocks > best.rows * best.blocks):
      best = tile
  if best is None:
    smallest = Tile(1, 1 if layer.kind == graph.DEPTHWISE else all_blocks)
    needed = memory.buffer_bytes(buffers(layer, smallest, dtype, out_dtype))
    raise memory.SliceOverflowError(layer.name, needed, capacity, " even with one-row tiles")
  return best


def plan(network: graph.Network, dtype=np.float16, capacity: int = memory.SLICE_BYTES,
         fp32_outputs: bool = True) -> dict[str, Tile]:
  """plan_layer for every layer, as compile_network stores them: layer name -> Tile."""
  stored = out_dtypes(network, dtype, fp32_outputs)
  return {layer.name: plan_layer(layer, dtype, capacity, stored[layer.name])
          for layer in network.layers}


def out_dtypes(network: graph.Network, dtype, fp32_outputs: bool = True
               ) -> dict[str, np.dtype]:
  """Layer name -> the type its output is stored in: `dtype`, or fp32 for the
  layers of `fp32_stored` if `fp32_outputs`."""
  dtype = np.dtype(dtype)
  fp32 = fp32_stored(network) if fp32_outputs else frozenset()
  return {layer.name: np.dtype(np.float32) if layer.name in fp32 else dtype
          for layer in network.layers}


def check_tile(layer: graph.Layer, tile: Tile, dtype, capacity: int, out_dtype=None) -> None:
  """Checks that `layer` can run in tiles of `tile` inside `capacity` bytes.

  out_dtype as in `buffers`.

  Raises:
    ValueError: rows below 1, channel blocks outside 1 .. all blocks, or a
      layer other than depthwise whose tile does not span all blocks.
    memory.SliceOverflowError: the layer's buffers exceed the slice.
  """
  all_blocks = output_blocks(layer, dtype)
  if tile.rows < 1 or not 1 <= tile.blocks <= all_blocks:
    raise ValueError(f"layer {layer.name!r}: tile {tile} needs rows >= 1 and 1 <= blocks "
                     f"<= {all_blocks}")
  if layer.kind != graph.DEPTHWISE and tile.blocks != all_blocks:
    raise ValueError(f"layer {layer.name!r} ({layer.kind}) needs all {all_blocks} channel "
                     f"blocks per tile, not {tile.blocks}")
  needed = memory.buffer_bytes(buffers(layer, tile, dtype, out_dtype))
  if needed > capacity:
    raise memory.SliceOverflowError(layer.name, needed, capacity, f" with tiles of {tile}")


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
  """What the SHAVE executes: layers, reordered weights and a tile per layer.

  Attributes:
    network: the layers in execution order; simulator.run reads only their
      descriptors, never their `kernel`/`bias`.
    dtype: storage type, float16 (8 lanes) or float32 (4 lanes).
    stacks: layer name -> kernel stack (weights and bias in `dtype`) of every
      conv and depthwise layer.
    schedule: layer name -> Tile, for every layer.
    capacity: slice bytes the schedule runs in.
    fp32_outputs: the layers of `fp32_stored` store their outputs in fp32
      (what a deployed network does; a single layer standing for one of a
      larger graph, as export/shave/tf_op.py runs, does not).
  """
  network: graph.Network
  dtype: np.dtype
  stacks: dict[str, layout.KernelStack]
  schedule: dict[str, Tile]
  capacity: int = memory.SLICE_BYTES
  fp32_outputs: bool = True

  @property
  def out_dtypes(self) -> dict[str, np.dtype]:
    """Layer name -> the type its output is stored in (`out_dtypes`)."""
    return out_dtypes(self.network, self.dtype, self.fp32_outputs)


def compile_network(network: graph.Network, dtype=np.float16,
                    schedule: Optional[dict[str, Tile]] = None,
                    capacity: int = memory.SLICE_BYTES, fp32_outputs: bool = True) -> Program:
  """Reorders the network's weights and fixes its schedule.

  Args:
    network: from graph.from_keras (with weights).
    dtype: storage type, np.float16 (8 lanes) or np.float32 (4 lanes).
    schedule: layer name -> Tile; missing layers, or all if None, get
      plan_layer()'s choice.
    capacity: slice bytes.
    fp32_outputs: store the outputs of `fp32_stored` in fp32 (Program).

  Raises:
    memory.SliceOverflowError: naming the first layer, in execution order,
      that does not fit (its given tile, or even one-row tiles).
    ValueError: a tile check_tile refuses.
  """
  dtype = np.dtype(dtype)
  layout.lanes_for(dtype)  # refuses types other than fp16 and fp32
  schedule = schedule or {}
  tiles, stacks, stored = {}, {}, out_dtypes(network, dtype, fp32_outputs)
  for layer in network.layers:
    out_dtype = stored[layer.name]
    tiles[layer.name] = (schedule.get(layer.name)
                         or plan_layer(layer, dtype, capacity, out_dtype))
    check_tile(layer, tiles[layer.name], dtype, capacity, out_dtype)
    if layer.kind in (graph.CONV, graph.DEPTHWISE):
      stacks[layer.name] = kernel_stack(layer, dtype)
  return Program(network, dtype, stacks, tiles, capacity, fp32_outputs)
