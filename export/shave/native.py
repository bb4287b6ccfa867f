"""The SHAVE C kernel from Python: a deployment blob run end to end in a 128 KB slice.

`Runner(blob_bytes)` parses a blob (blob.py's format) with the C kernel
(export/shave/kernel/net.c) and owns the two memories the kernel works in:
the slice, a 16-byte aligned arena of at most memory.SLICE_BYTES, and "DDR",
one array holding the network input and every layer's output in the
interleaved layout. `run(image)` executes every layer in the C kernel, tile
by tile through the slice with the schedule stored in the blob, and returns
the outputs with the per-layer figures the simulator reports
(simulator.LayerReport): slice bytes, tiles, DMA transfers and bytes.

The library is built on first use (cbuild.py) and loaded with ctypes;
`library()` also declares the naive im2col + GEMM baseline
(kernel/shave_naive.h) that benchmarks/shave_kernel_bench.py times.
"""

import ctypes
import dataclasses
import functools
from typing import Callable

import numpy as np

from export.shave import blob as blob_lib
from export.shave import cbuild
from export.shave import memory

DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}
# shv_layer_stats, in order: all uint64.
STATS_FIELDS = ("peak_bytes", "tiles", "dma_transfers", "dma_in_bytes", "dma_out_bytes",
                "expand_vectors")
_ERROR_BYTES = 1024


class KernelError(RuntimeError):
  """The C kernel refused a blob or a run; the message is the kernel's."""


class Tensor(ctypes.Structure):
  """shv_tensor: an interleaved [h][w][blocks][lanes] tensor."""
  _fields_ = [("data", ctypes.c_void_p), ("h", ctypes.c_int), ("w", ctypes.c_int),
              ("c", ctypes.c_int), ("blocks", ctypes.c_int), ("lanes", ctypes.c_int)]


def _declare(lib: ctypes.CDLL) -> None:
  p, i, size, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_float
  signatures = {
      "shv_native_fp16": ([], i),
      "shv_net_struct_bytes": ([], size),
      "shv_net_parse": ([p, p, size, p, size], i),
      "shv_net_ddr_bytes": ([p], size),
      "shv_net_tensor": ([p, p, i], Tensor),
      "shv_net_set_input": ([p, p, p], None),
      "shv_net_run_layer": ([p, i, p, size, p, size, p, p, size], i),
      "shv_net_run": ([p, p, size, p, size, p, p, p, size], i),
      "shv_net_output": ([p, p, i, p, size, p, size], i),
      "shv_naive_patch": ([i, i], i),
      "shv_naive_conv": ([i, p, i, i, i, p, p, i, i, i, i, i, i, i, i, i, i, i, p, p], None),
      "shv_naive_add": ([i, p, i, size, i, p], None),
      "shv_naive_concat": ([i, p, p, i, size, p], None),
      "shv_naive_shuffle": ([i, p, i, i, size, p], None),
      "shv_naive_resize": ([i, p, i, i, i, i, p], None),
      "shv_naive_max_pool": ([i, p, i, i, i, i, p], None),
      "shv_naive_global_avg_pool": ([i, p, i, i, i, p], None),
      "shv_half_to_float_soft": ([ctypes.c_uint16], f32),
      "shv_float_to_half_soft": ([f32], ctypes.c_uint16),
  }
  for name, (args, result) in signatures.items():
    function = getattr(lib, name)
    function.argtypes, function.restype = args, result


def library_path() -> str:
  """The C kernel library's file, built if needed (cbuild.shared_library).

  Raises:
    cbuild.BuildError: no C compiler, or it failed.
  """
  return cbuild.shared_library("shave_kernel")


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL:
  """The C kernel library, loaded (and built on first use).

  Raises:
    cbuild.BuildError: no C compiler, or it failed.
  """
  lib = ctypes.CDLL(library_path())
  _declare(lib)
  return lib


def pointer(array: np.ndarray) -> int:
  """Address of a C-contiguous array's data."""
  if not array.flags.c_contiguous:
    raise ValueError("the C kernel needs C-contiguous arrays")
  return array.ctypes.data


@dataclasses.dataclass(frozen=True)
class LayerStats:
  """What one layer did in the C kernel; the fields of simulator.LayerReport."""
  name: str
  peak_bytes: int
  tiles: int
  dma_transfers: int
  dma_in_bytes: int
  dma_out_bytes: int
  expand_vectors: int

  @property
  def dma_bytes(self) -> int:
    return self.dma_in_bytes + self.dma_out_bytes


@dataclasses.dataclass(frozen=True)
class RunResult:
  """Outputs (Keras shapes without batch, float32) and per-layer figures."""
  outputs: dict[str, np.ndarray]
  layers: tuple[LayerStats, ...]

  @property
  def peak_bytes(self) -> int:
    """The most slice bytes any layer used."""
    return max(s.peak_bytes for s in self.layers)

  @property
  def dma_bytes(self) -> int:
    """DMA bytes of the whole run, both directions."""
    return sum(s.dma_bytes for s in self.layers)


class Runner:
  """A SHAVE blob's network in the C kernel, with its slice and DDR.

  Attributes:
    program: the same blob read by blob.from_bytes (names, shapes, schedule).
    slice: the working memory, uint8 [slice_bytes].
    ddr: every tensor of the network, uint8.
  """

  def __init__(self, data: bytes, source: str = "<bytes>", slice_bytes: int | None = None):
    """Parses the blob in C (and in Python, for names and shapes).

    Args:
      data: the blob.
      source: names the blob in errors.
      slice_bytes: size of the slice, at most memory.SLICE_BYTES; by default the
        slice the blob's schedule is planned for.

    Raises:
      blob.BlobError: the Python reader refuses the blob.
      KernelError: the C parser refuses it (message from C).
      ValueError: slice_bytes above memory.SLICE_BYTES.
    """
    self.program = blob_lib.from_bytes(data, source)
    slice_bytes = slice_bytes or self.program.capacity
    if not 0 < slice_bytes <= memory.SLICE_BYTES:
      raise ValueError(f"the slice holds at most {memory.SLICE_BYTES} bytes, not {slice_bytes}")
    self._lib = library()
    self._blob = np.frombuffer(data, np.uint8).copy()  # aligned, alive as long as the net
    self._net = np.zeros(self._lib.shv_net_struct_bytes(), np.uint8)
    self._error = ctypes.create_string_buffer(_ERROR_BYTES)
    status = self._lib.shv_net_parse(pointer(self._net), pointer(self._blob), self._blob.size,
                                      self._error, _ERROR_BYTES)
    self._check(status, source)
    self.ddr = np.zeros(self._lib.shv_net_ddr_bytes(pointer(self._net)), np.uint8)
    self.slice = np.zeros(slice_bytes, np.uint8)
    self._source = source

  def _check(self, status: int, source: str) -> None:
    if status:
      raise KernelError(f"{source}: {self._error.value.decode('utf-8', 'replace')}")

  def tensor(self, index: int) -> np.ndarray:
    """Tensor `index` in DDR (0: the input, i + 1: layer i's output), [H, W, CB, L] view
    in the type it is stored in (planner.out_dtypes)."""
    t = self._lib.shv_net_tensor(pointer(self._net), pointer(self.ddr), index)
    offset = t.data - pointer(self.ddr)
    count = t.h * t.w * t.blocks * t.lanes
    dtype = (self.program.dtype if index == 0 else
             self.program.out_dtypes[self.program.network.layers[index - 1].name])
    view = self.ddr[offset:offset + count * dtype.itemsize]
    return view.view(dtype).reshape(t.h, t.w, t.blocks, t.lanes)

  def set_input(self, image: np.ndarray) -> None:
    """Writes the [H, W, C] image (converted to float32) into DDR."""
    image = np.ascontiguousarray(image, np.float32)
    if image.shape != self.program.network.input_shape:
      raise ValueError(f"image shape {image.shape} != network input "
                       f"{self.program.network.input_shape}")
    self._lib.shv_net_set_input(pointer(self._net), pointer(self.ddr), pointer(image))

  def run_layer(self, index: int) -> LayerStats:
    """Runs layer `index` on the tensors in DDR (its inputs computed before)."""
    stats = np.zeros(len(STATS_FIELDS), np.uint64)
    status = self._lib.shv_net_run_layer(pointer(self._net), index, pointer(self.slice),
                                         self.slice.size, pointer(self.ddr), self.ddr.size,
                                         pointer(stats), self._error, _ERROR_BYTES)
    self._check(status, self._source)
    return LayerStats(self.program.network.layers[index].name,
                      *(int(v) for v in stats))

  def layer_function(self, index: int) -> Callable[[], int]:
    """Layer `index` as one C call with its arguments bound, returning the status.

    For timing (benchmarks/shave_kernel_bench.py): no Python work per call;
    run_layer is the checked form.
    """
    return functools.partial(self._lib.shv_net_run_layer, pointer(self._net), index,
                             pointer(self.slice), self.slice.size, pointer(self.ddr),
                             self.ddr.size, None, self._error, _ERROR_BYTES)

  def outputs(self) -> dict[str, np.ndarray]:
    """The network outputs now in DDR, float32 in the Keras output shapes."""
    result = {}
    for k, (key, shape) in enumerate(self.program.network.output_shapes.items()):
      values = np.zeros(shape, np.float32)
      status = self._lib.shv_net_output(pointer(self._net), pointer(self.ddr), k,
                                        pointer(values), values.size, self._error, _ERROR_BYTES)
      self._check(status, self._source)
      result[key] = values
    return result

  def run(self, image: np.ndarray) -> RunResult:
    """Runs the whole network on one [H, W, C] image.

    Raises:
      ValueError: the image does not match the network input.
      KernelError: a layer does not fit the slice.
    """
    self.set_input(image)
    stats = np.zeros((len(self.program.network.layers), len(STATS_FIELDS)), np.uint64)
    status = self._lib.shv_net_run(pointer(self._net), pointer(self.slice), self.slice.size,
                                   pointer(self.ddr), self.ddr.size, pointer(stats), None,
                                   self._error, _ERROR_BYTES)
    self._check(status, self._source)
    layers = tuple(LayerStats(layer.name, *(int(v) for v in row))
                   for layer, row in zip(self.program.network.layers, stats))
    return RunResult(self.outputs(), layers)


