"""The SHAVE's working memory and its DMA: explicit buffers, counted transfers.

`Slice` is one byte array of the slice size (128 KB on a Myriad2 SHAVE) in
which a layer's buffers are placed one after the other, 16-byte aligned;
buffers that do not fit raise SliceOverflowError naming the layer, the bytes
needed and the limit. `Dma` copies between DDR arrays and slice buffers and
counts descriptors and bytes: a transfer is one 2-D descriptor, a number of
equal contiguous lines at a constant stride, so a block of whole rows (or of
every d-th whole row) is one transfer and a gather of every d-th pixel takes
one per row.
"""

import math

import numpy as np

SLICE_BYTES = 128 * 1024
ALIGNMENT = 16


class SliceOverflowError(RuntimeError):
  """A layer's buffers do not fit in the slice."""

  def __init__(self, layer: str, needed: int, limit: int, detail: str = ""):
    self.layer, self.needed, self.limit = layer, needed, limit
    super().__init__(f"layer {layer!r} needs {needed} bytes of slice memory but the slice "
                     f"holds {limit} bytes{detail}; use smaller row tiles (a schedule from "
                     "planner.plan) or a smaller layer")


class Slice:
  """The working memory: one byte array, buffers allocated per layer."""

  def __init__(self, capacity: int = SLICE_BYTES):
    self.capacity = capacity
    self.memory = np.zeros(capacity, np.uint8)

  def allocate(self, layer: str, buffers: dict[str, tuple[tuple[int, ...], np.dtype]]
               ) -> tuple[dict[str, np.ndarray], int]:
    """Places all of a layer's buffers; returns their views and the bytes used."""
    offsets, top = placement(buffers)
    if top > self.capacity:
      sizes = ", ".join(f"{n} {math.prod(s) * np.dtype(d).itemsize}"
                        for n, (s, d) in buffers.items())
      raise SliceOverflowError(layer, top, self.capacity, f" (buffers: {sizes})")
    views = {}
    for name, (shape, dtype) in buffers.items():
      size = math.prod(shape) * np.dtype(dtype).itemsize
      start = offsets[name]
      views[name] = self.memory[start:start + size].view(dtype).reshape(shape)
    return views, top


class Dma:
  """Copies between DDR and the slice, counting descriptors and bytes."""

  def __init__(self):
    self.transfers = self.bytes_in = self.bytes_out = 0

  def _copy(self, dst: np.ndarray, src: np.ndarray, lines_strided: bool) -> int:
    if not src.size:
      return 0
    dst[...] = src
    self.transfers += src.shape[0] if lines_strided else 1
    return src.nbytes

  def fetch(self, dst: np.ndarray, src: np.ndarray, pixel_stride: int = 1) -> None:
    """DDR -> slice; pixel_stride > 1 gathers every n-th pixel (one descriptor per row)."""
    self.bytes_in += self._copy(dst, src, pixel_stride > 1)

  def store(self, dst: np.ndarray, src: np.ndarray, pixel_stride: int = 1) -> None:
    """Slice -> DDR; pixel_stride > 1 scatters to every n-th pixel."""
    self.bytes_out += self._copy(dst, src, pixel_stride > 1)


def placement(buffers: dict) -> tuple[dict[str, int], int]:
  """Aligned byte offset of each buffer, one after the other, and the end."""
  offsets, top = {}, 0
  for name, (shape, dtype) in buffers.items():
    offsets[name] = -(-top // ALIGNMENT) * ALIGNMENT
    top = offsets[name] + math.prod(shape) * np.dtype(dtype).itemsize
  return offsets, top


def buffer_bytes(buffers: dict) -> int:
  """Slice bytes the buffers take, alignment included."""
  return placement(buffers)[1]
