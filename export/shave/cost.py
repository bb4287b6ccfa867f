"""Cycle model of one SHAVE for our interleaved kernel and a naive im2col + GEMM.

Nothing here is measured: the figures follow from the counts of the simulated
run (tiles, DMA transfers and bytes) and from the assumptions in `Assumptions`,
each written down below and in docs/embedded.md. The same assumptions price
both implementations, so the ratio says how much the layout, the kernel-stack
reordering, the grouping and the comb save; the absolute figures are as good
as the assumptions.

Our kernel (per layer, from the simulator's report):
  * Convolution: one vector MAC per (output pixel, output block, tap, input
    channel of the block's input set); the inner loop keeps REGISTER_PIXELS
    accumulators (adjacent output pixels of one block), so each weight-vector
    load feeds that many MACs and each input scalar is one load broadcast
    to the lanes. Bias load, fused ReLU (one vector op) and one vector store
    per output vector (two for a network output an fp16 program stores in
    fp32, planner.fp32_stored: its 8 lanes are 256 bits).
  * Depthwise: one lane-wise vector MAC per (output pixel, block, tap), the
    block's kh*kw weight vectors held in registers, one input vector load
    per MAC.
  * A fused nearest up-sampling: a load and a store per vector the core
    writes up-sampling the input tiles (counted by the simulator).
  * Add: a vector add per extra input, ReLU, loads and a store per vector.
    Max pool: k*k loads and k*k - 1 vector max. Resize: a load per input
    vector and a store per output vector. Concat: a load and a store per
    vector (plus a lane permute when a part is not lane-aligned). Global
    pooling: a load and an add per vector.
  * A layer takes max(VAU cycles, LSU cycles): the VLIW bundle issues the
    vector op and the loads/stores of the software-pipelined loop together.
  * DMA runs beside the core (double-buffered tiles): a layer takes
    max(compute, DMA) plus the part that cannot overlap, one tile's share
    min(compute, DMA) / tiles (the first fetch and the last store).

Naive channel-planar im2col + GEMM (a model of the conventional
implementation the paper compares against, not of mvTensor's code), with the
same fused BatchNorm/ReLU:
  * im2col copies every patch element (zero padding included) into a
    [K, N] matrix per group, K = kh*kw*cin/groups, N = output pixels, one
    element per cycle (a scalar load and a scalar store in the two LSU
    slots); skipped for 1x1 stride-1 convolutions.
  * A dilated convolution's kernel is zero-inflated to (k-1)*d+1 taps per
    axis when `naive_inflates_dilation` (paper §3 (d): off-the-shelf
    dilated convolutions carry a large overhead).
  * The GEMM computes each output element as a K-long dot product
    vectorised along K: ceil(K / L) vector MACs (lanes past K wasted,
    paper §3 (c)), log2(L) vector ops for the horizontal sum and a scalar
    store.
  * DMA does not overlap compute (one synchronous call per layer; one
    descriptor per channel plane of each tensor), and an im2col matrix
    larger than half the slice (the rest holds weights and outputs) goes to
    DDR and back.
  * Element-wise layers cost the same vector operations as ours, with their
    DMA not overlapped. A convolution with a fused up-sampling is two calls:
    the resize, then the convolution on the up-sampled map.
"""

import dataclasses
import math

import numpy as np

from export.shave import comb
from export.shave import graph
from export.shave import layout
from export.shave import planner
from export.shave import simulator

# Accumulators (output pixels of one block) the convolution loop keeps in
# registers; 4 of the 32 vector registers.
REGISTER_PIXELS = 4


@dataclasses.dataclass(frozen=True)
class Assumptions:
  """The machine the cycle counts assume (one SHAVE of a Myriad2).

  Attributes:
    clock_hz: SHAVE clock.
    vau_ops_per_cycle: 128-bit vector-unit operations (MAC, add, max,
      permute) issued per cycle.
    lsu_ops_per_cycle: load/store slots per cycle, each up to 128 bits.
    dma_bytes_per_cycle: DDR <-> slice DMA bandwidth available to one
      SHAVE, in bytes per SHAVE cycle (2.0 = 1.2 GB/s).
    dma_setup_cycles: cycles to program and start one DMA descriptor.
    tile_overhead_cycles: per tile: loop set-up, pointer updates, waiting
      on the DMA semaphore.
    layer_overhead_cycles: per layer call: argument set-up, weight pointers,
      cache/pipeline warm-up.
    im2col_elements_per_cycle: elements the naive im2col copies per cycle.
    naive_inflates_dilation: the naive kernel runs a dilated convolution
      with a zero-inflated kernel.
  """
  clock_hz: float = 600e6
  vau_ops_per_cycle: int = 1
  lsu_ops_per_cycle: int = 2
  dma_bytes_per_cycle: float = 2.0
  dma_setup_cycles: int = 50
  tile_overhead_cycles: int = 100
  layer_overhead_cycles: int = 500
  im2col_elements_per_cycle: float = 1.0
  naive_inflates_dilation: bool = True


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """Modelled cycles of one layer.

  Attributes:
    name, kind: the layer.
    macs: multiply-accumulates as defined (no padding).
    vector_macs: our kernel's vector MACs (with lane padding/regrouping).
    ours_compute, ours_dma, ours: our kernel's compute, DMA and total cycles.
    naive_compute, naive_dma, naive: the naive implementation's cycles.
    peak_bytes: our slice usage (from the simulator).
    dma_bytes: our DMA traffic (from the simulator).
  """
  name: str
  kind: str
  macs: int
  vector_macs: int
  ours_compute: int
  ours_dma: int
  ours: int
  naive_compute: int
  naive_dma: int
  naive: int
  peak_bytes: int
  dma_bytes: int


@dataclasses.dataclass(frozen=True)
class NetworkCost:
  """Per-layer costs and totals for one storage type and slice size."""
  dtype: str
  capacity: int
  layers: tuple[LayerCost, ...]
  assumptions: Assumptions

  def _ms(self, cycles: int) -> float:
    return 1e3 * cycles / self.assumptions.clock_hz

  @property
  def ours_ms(self) -> float:
    return self._ms(sum(c.ours for c in self.layers))

  @property
  def naive_ms(self) -> float:
    return self._ms(sum(c.naive for c in self.layers))

  @property
  def speedup(self) -> float:
    return self.naive_ms / self.ours_ms

  @property
  def peak_bytes(self) -> int:
    return max(c.peak_bytes for c in self.layers)

  @property
  def mac_floor_ms(self) -> float:
    """Our kernel's vector MACs alone, the vector unit issuing one every slot.

    No schedule of these vector MACs runs faster under `assumptions`, so
    `naive_ms / mac_floor_ms` bounds the speed-up any kernel of this
    network's layout could reach over the same baseline.
    """
    return self._ms(sum(c.vector_macs for c in self.layers) / self.assumptions.vau_ops_per_cycle)


def _vectors(shape, lanes: int) -> int:
  h, w, c = shape
  return h * w * layout.channel_blocks(c, lanes)


def _issue(vau: float, lsu: float, a: Assumptions) -> int:
  return math.ceil(max(vau / a.vau_ops_per_cycle, lsu / a.lsu_ops_per_cycle))


def _ours_compute(layer: graph.Layer, dtype, a: Assumptions,
                  expand_vectors: int = 0, out_dtype=None) -> tuple[int, int]:
  """(compute cycles without overheads, vector MACs) of our kernel.

  expand_vectors: vectors written up-sampling a fused resize's input tiles.
  out_dtype: the type the output is stored in, if not `dtype` (conv and
    depthwise only: planner.fp32_stored).
  """
  lanes = planner.tensor_lanes(layer.out_shape[-1], dtype)
  out_vectors = _vectors(layer.out_shape, lanes)
  # 128-bit stores per output vector: 2 for fp16 lanes stored in fp32.
  stores = out_vectors * (np.dtype(out_dtype or dtype).itemsize // np.dtype(dtype).itemsize)
  relu = out_vectors if layer.relu else 0
  h, w, _ = layer.out_shape
  if layer.kind == graph.CONV:
    sets = layout.block_input_sets(layer.inputs_per_filter, layer.out_shape[-1], layer.groups,
                                   lanes)
    taps = layer.kernel_size[0] * layer.kernel_size[1]
    macs = h * w * taps * sum(len(s) for s in sets)
    lsu = macs * (1 + 1 / REGISTER_PIXELS) + out_vectors + stores + 2 * expand_vectors
    return _issue(macs + relu, lsu, a), macs
  if layer.kind == graph.DEPTHWISE:
    macs = out_vectors * layer.kernel_size[0] * layer.kernel_size[1]
    lsu = macs + out_vectors + stores + 2 * expand_vectors
    return _issue(macs + relu, lsu, a), macs
  in_vectors = sum(_vectors(s, planner.tensor_lanes(s[-1], dtype)) for s in layer.in_shapes)
  if layer.kind == graph.ADD:
    vau = out_vectors * (len(layer.inputs) - 1) + relu
    return _issue(vau, in_vectors + out_vectors, a), 0
  if layer.kind == graph.MAX_POOL:
    window = layer.kernel_size[0] * layer.kernel_size[1]
    return _issue(out_vectors * (window - 1), out_vectors * (window + 1), a), 0
  if layer.kind == graph.CONCAT:
    aligned = all(s[-1] % lanes == 0 for s in layer.in_shapes[:-1])
    return _issue(0 if aligned else out_vectors, in_vectors + out_vectors, a), 0
  if layer.kind == graph.RESIZE_NEAREST:
    return _issue(0, in_vectors + out_vectors, a), 0
  if layer.kind == graph.CHANNEL_SHUFFLE:  # A lane permutation per output vector.
    return _issue(out_vectors, in_vectors + out_vectors, a), 0
  return _issue(in_vectors, in_vectors + out_vectors, a), 0  # global average pool


def _dma_cycles(transfers: int, nbytes: int, a: Assumptions) -> int:
  return math.ceil(transfers * a.dma_setup_cycles + nbytes / a.dma_bytes_per_cycle)


def _naive(layer: graph.Layer, dtype, capacity: int, a: Assumptions) -> tuple[int, int]:
  """(compute, DMA) cycles of the naive channel-planar implementation."""
  if layer.upsample > 1:
    resize = graph.Layer(name=layer.name, kind=graph.RESIZE_NEAREST, inputs=layer.inputs,
                         in_shapes=layer.in_shapes, out_shape=layer.conv_input_shape,
                         scale=layer.upsample)
    unfused = dataclasses.replace(layer, in_shapes=(layer.conv_input_shape,), upsample=1)
    (c1, d1), (c2, d2) = (_naive(part, dtype, capacity, a) for part in (resize, unfused))
    return c1 + c2 + a.layer_overhead_cycles + a.tile_overhead_cycles, d1 + d2
  itemsize = np.dtype(dtype).itemsize
  lanes = layout.lanes_for(dtype)
  in_elements = sum(math.prod(s) for s in layer.in_shapes)
  out_elements = math.prod(layer.out_shape)
  weights = layer.parameters()
  transfers = sum(s[-1] for s in layer.in_shapes) + layer.out_shape[-1] + 2 * (weights > 0)
  dma_bytes = (in_elements + out_elements + weights) * itemsize
  if layer.kind not in (graph.CONV, graph.DEPTHWISE):
    compute, _ = _ours_compute(layer, dtype, a)
    return compute, _dma_cycles(transfers, dma_bytes, a)
  kh, kw = layer.kernel_size
  if a.naive_inflates_dilation:
    kh, kw = ((kh - 1) * layer.dilation + 1, (kw - 1) * layer.dilation + 1)
  cin_g = layer.inputs_per_filter
  groups = layer.out_shape[-1] if layer.kind == graph.DEPTHWISE else layer.groups
  k, n = kh * kw * cin_g, layer.out_shape[0] * layer.out_shape[1]
  pointwise = (kh, kw, layer.strides) == (1, 1, 1)
  im2col = 0 if pointwise else math.ceil(groups * k * n / a.im2col_elements_per_cycle)
  if not pointwise and k * n * itemsize > capacity // 2:
    dma_bytes += 2 * groups * k * n * itemsize
    transfers += 2 * groups
  dot = math.ceil(k / lanes)
  vau = out_elements * (dot + int(math.log2(lanes)) + (1 if layer.relu else 0))
  lsu = out_elements * (2 * dot + 1)
  return im2col + _issue(vau, lsu, a), _dma_cycles(transfers, dma_bytes, a)


def estimate(result: simulator.SimulationResult,
             assumptions: Assumptions = Assumptions()) -> NetworkCost:
  """Prices every layer of a simulated run for both implementations.

  Args:
    result: a simulated run (simulator.run or simulate): its tiles and DMA
      counts, and the program it ran, whose network, storage type, slice
      capacity (the naive im2col spills above half of it) and fp32-stored
      outputs (planner.Program.fp32_outputs) it prices.
    assumptions: the machine.
  """
  a = assumptions
  program = result.program
  network, dtype, capacity = program.network, program.dtype, program.capacity
  reports = {r.name: r for r in result.reports}
  stored = program.out_dtypes
  costs = []
  for layer in network.layers:
    report = reports[layer.name]
    compute, vector_macs = _ours_compute(layer, dtype, a, report.expand_vectors,
                                         stored[layer.name])
    compute += a.tile_overhead_cycles * report.tiles
    dma = _dma_cycles(report.dma_transfers, report.dma_bytes, a)
    ours = (a.layer_overhead_cycles + max(compute, dma)
            + math.ceil(min(compute, dma) / report.tiles))
    naive_compute, naive_dma = _naive(layer, dtype, capacity, a)
    naive_compute += a.tile_overhead_cycles
    costs.append(LayerCost(
        name=layer.name, kind=layer.kind, macs=layer.macs(), vector_macs=vector_macs,
        ours_compute=compute, ours_dma=dma, ours=ours, naive_compute=naive_compute,
        naive_dma=naive_dma, naive=a.layer_overhead_cycles + naive_compute + naive_dma,
        peak_bytes=report.peak_bytes, dma_bytes=report.dma_bytes))
  return NetworkCost(np.dtype(dtype).name, capacity, tuple(costs), a)


def comb_fields_of(layer: graph.Layer) -> int:
  """Comb fields a convolution runs as (1 when undilated)."""
  return len(comb.fields(layer.dilation)) if layer.kind in (graph.CONV, graph.DEPTHWISE) else 0


def format_table(network: graph.Network, cost: NetworkCost) -> str:
  """A Table-3-style comparison and the per-layer breakdown, as text."""
  a = cost.assumptions
  ms = lambda cycles: 1e3 * cycles / a.clock_hz  # noqa: E731
  lines = [
      f"SHAVE x1 @ {a.clock_hz / 1e6:.0f} MHz, {cost.dtype}, "
      f"{network.macs() / 1e6:.2f} M MACs, slice peak {cost.peak_bytes} B of "
      f"{cost.capacity} B",
      "",
      f"{'implementation':<34}{'ms':>9}",
      f"{'naive planar im2col + GEMM':<34}{cost.naive_ms:>9.2f}",
      f"{'ours (interleaved, comb)':<34}{cost.ours_ms:>9.2f}",
      f"{'speed-up':<34}{cost.speedup:>8.1f}x",
      f"{'vector-MAC floor (bound)':<34}{cost.mac_floor_ms:>9.2f}"
      f"  (speed-up at most {cost.naive_ms / cost.mac_floor_ms:.1f}x)",
      "",
      f"{'layer':<34}{'kind':<15}{'fields':>6}{'MACs':>10}{'vMACs':>9}"
      f"{'ours ms':>9}{'naive ms':>9}{'peak B':>8}{'DMA B':>9}",
  ]
  for layer, c in zip(network.layers, cost.layers):
    kind = c.kind + (f"+up{layer.upsample}" if layer.upsample > 1 else "")
    lines.append(f"{c.name[:33]:<34}{kind:<15}{comb_fields_of(layer):>6}{c.macs:>10}"
                 f"{c.vector_macs:>9}{ms(c.ours):>9.3f}{ms(c.naive):>9.3f}"
                 f"{c.peak_bytes:>8}{c.dma_bytes:>9}")
  return "\n".join(lines)


def report(program: planner.Program, assumptions: Assumptions = Assumptions(),
           seed: int = 0) -> str:
  """Simulates (on a seeded random image) and prices a program.

  The cycle counts do not depend on the image or the weights; the image only
  makes the simulator execute the schedule whose tiles and DMA it counts.

  Returns:
    format_table of the run.
  """
  network = program.network
  image = np.random.default_rng(seed).uniform(0.0, 1.0, network.input_shape)
  result = simulator.run(program, image.astype(np.float32))
  return format_table(network, estimate(result, assumptions))
