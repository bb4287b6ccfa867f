"""Executing a planned Program in a simulated SHAVE slice: 128 KB, DDR behind a counted DMA.

`run(program, image)` executes the layers of a Program (planner.py) in order.
Each layer's buffers are allocated in the slice (memory.Slice, as
planner.buffers lays them out) and the layer runs tile by tile: the DMA
copies a tile of its input rows (with the halo rows the kernel needs) from
DDR into one of two alternating input buffers, the kernel (conv.py) computes
the tile's output into one of two output buffers, and the DMA copies that
back to DDR. Weights are copied into the slice once per layer.

A dilated convolution runs field by field (comb.py): its DMA gathers a
field's input rows and columns with a stride of d and scatters the field's
output back with a stride of d, so the kernel only ever sees an undilated
convolution. A convolution with a fused nearest up-sampling fetches the rows
of the small map its tile needs and the core up-samples them into the tile
buffer (counted as expand_vectors). The DMA (memory.Dma) counts one
descriptor per tile of whole rows (or of every d-th row), one per row when a
comb field strides between pixels. Zero padding outside the image is written
by the core, not transferred. `simulate` is planner.compile_network + run.
"""

import dataclasses
from typing import Optional

import numpy as np

from export.shave import conv
from export.shave import graph
from export.shave import layout
from export.shave import memory
from export.shave import planner


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
  tile: planner.Tile
  tiles: int
  peak_bytes: int
  dma_transfers: int
  dma_bytes: int
  dma_in_bytes: int
  dma_out_bytes: int
  expand_vectors: int


@dataclasses.dataclass(frozen=True)
class SimulationResult:
  """Outputs (Keras shapes without batch, float32), per-layer reports and the program run."""
  outputs: dict[str, np.ndarray]
  reports: tuple[LayerReport, ...]
  program: planner.Program

  @property
  def peak_bytes(self) -> int:
    return max(r.peak_bytes for r in self.reports)


def _conv_tiles(layer: graph.Layer, tile: planner.Tile, dtype):
  """(field, first field row, rows, block range) of each tile, in run order."""
  all_blocks = planner.output_blocks(layer, dtype)
  for field in planner.conv_geometry(layer).fields:
    for b0 in range(0, all_blocks, tile.blocks):
      for r0 in range(0, field[2], tile.rows):
        yield field, r0, min(tile.rows, field[2] - r0), slice(b0, b0 + tile.blocks)


def _run_conv(layer, stack, views, ddr, dma, tile, dtype, out_dtype) -> tuple[int, int]:
  """Convolution tiles; returns (tiles, vectors written up-sampling fused input)."""
  geometry = planner.conv_geometry(layer)
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
    buffer = buffer[:planner.tile_rows_needed(layer, n), :in_cols,
                    :source[0, 0, in_blocks].shape[0]]
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
    out[...] = run(buffer, kernel, s, layer.relu, out_dtype)
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
  for r0 in range(0, planner.max_rows(layer), rows):
    r1, slot = min(r0 + rows, planner.max_rows(layer)), tiles % 2
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


def run(program: planner.Program, image: np.ndarray) -> SimulationResult:
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
                                                   planner.tensor_lanes(image.shape[-1], dtype))}
  reports, out_dtypes = [], program.out_dtypes
  for layer in network.layers:
    tile, out_dtype = program.schedule[layer.name], out_dtypes[layer.name]
    views, used = working.allocate(layer.name, planner.buffers(layer, tile, dtype, out_dtype))
    ddr[layer.name] = np.zeros(planner.interleaved_shape(layer.out_shape, dtype), out_dtype)
    dma = memory.Dma()
    if layer.kind in (graph.CONV, graph.DEPTHWISE):
      tiles, expanded = _run_conv(layer, program.stacks[layer.name], views, ddr, dma, tile,
                                  dtype, out_dtype)
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
  return SimulationResult(outputs, tuple(reports), program)


def simulate(network: graph.Network, image: np.ndarray, dtype=np.float16,
             schedule: Optional[dict[str, planner.Tile]] = None,
             capacity: int = memory.SLICE_BYTES, fp32_outputs: bool = True) -> SimulationResult:
  """Runs the network on one image inside the simulated slice.

  planner.compile_network(network, dtype, schedule, capacity, fp32_outputs), then run.

  Args:
    network: from graph.from_keras.
    image: [H, W, C] input (float; converted to the storage type).
    dtype: storage type, np.float16 (8 lanes) or np.float32 (4 lanes).
    schedule: layer name -> Tile; missing layers, or all if None, get
      planner.plan_layer's choice.
    capacity: slice bytes.

  Returns:
    The outputs and a report per layer.

  Raises:
    memory.SliceOverflowError: if a layer's schedule needs more than `capacity`.
    ValueError: if the image does not match the network input, or a
      schedule splits the channel blocks of a layer other than depthwise.
  """
  return run(planner.compile_network(network, dtype, schedule, capacity, fp32_outputs), image)
