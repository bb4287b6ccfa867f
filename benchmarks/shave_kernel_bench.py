r"""Measured, not modelled: the SHAVE C kernel against a naive im2col + GEMM (not a test).

  .venv/bin/python benchmarks/shave_kernel_bench.py [--dtypes=fp32,fp16] [--repeats=20] \
      [--out=benchmarks/results/shave_kernel.json]

The hand25d inference network at 120x160 (fresh weights: the time does not
depend on them), compiled for the 128 KB slice, run on this CPU, single
thread, by two implementations in the same C library, built by
export/shave/cbuild.py with the same compiler and flags, in the same process:

  * ours: native.Runner, every layer tile by tile through the slice with the
    blob's schedule (the DMA is a memcpy here), interleaved layout, kernel
    stacks, comb fields;
  * naive: the channel-planar im2col + GEMM of export/shave/kernel/shave_naive.h
    on the same layers with the same folded weights in the same storage
    type, each fused up-sampling undone (a resize, then the convolution on
    the large map) and the dilation read by the im2col; and "naive,
    inflated": the same with dilated kernels zero-inflated to
    (k - 1) * d + 1 taps, the baseline cost.py prices by default.

The naive outputs are checked against ours before anything is timed. Per
layer: the median of --repeats runs, ours and the naive forms alternating so
that load from other processes spreads over both; the network: the median of
--repeats runs of all layers in order. Every layer is one C call through
ctypes with its arguments bound, for both. Printed beside the measured
speed-ups are the cost model's (cost.estimate on the simulated run of the
same program, with and without the inflated dilation): absolute x86 times
say nothing about a SHAVE; the ratios and where they differ do
(docs/embedded.md, "Measured on x86").
"""

import ctypes
import os
import platform
import statistics
import time

from absl import app
from absl import flags
import numpy as np

from export.shave import blob
from export.shave import cbuild
from export.shave import conv
from export.shave import cost
from export.shave import graph
from export.shave import native
from export.shave import planner
from export.shave import simulator
from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.model import config as config_lib
from hand25d.model import network as network_lib

_DTYPES = flags.DEFINE_list("dtypes", ["fp32", "fp16"], "Storage types to measure.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed runs per layer and of the network.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed runs before timing.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/shave_kernel.json",
                           "Where to write the JSON.")


def _conv_call(lib, layer: graph.Layer, src: np.ndarray, dtype, inflate: bool, keep: list):
  """(function, args, output, im2col elements) of a naive convolution on planar `src`."""
  code = native.DTYPE_CODES[np.dtype(dtype)]
  channels, height, width = src.shape
  kernel = layer.kernel.astype(np.float32)
  if layer.kind == graph.DEPTHWISE:
    weights, groups = kernel[..., 0].transpose(2, 0, 1)[:, None], channels
  else:
    weights, groups = kernel.transpose(3, 2, 0, 1), layer.groups  # [cout, cin/g, kh, kw]
  d, k = layer.dilation, layer.kernel_size[0]
  if inflate and d > 1:
    span = (k - 1) * d + 1
    inflated = np.zeros(weights.shape[:2] + (span, span), np.float32)
    inflated[:, :, ::d, ::d] = weights
    weights, d, k = inflated, 1, span
  cout, per_group = weights.shape[:2]
  patch = lib.shv_naive_patch(per_group * k * k, code)
  matrix = np.zeros((cout, patch), dtype)
  matrix[:, :per_group * k * k] = weights.reshape(cout, -1)
  bias = layer.bias.astype(dtype)
  top, _, out_h = conv.padding_amounts(height, k, layer.strides, d, layer.padding)
  left, _, out_w = conv.padding_amounts(width, k, layer.strides, d, layer.padding)
  out = np.zeros((cout, out_h, out_w), dtype)
  keep += [matrix, bias]
  args = [code, native.pointer(src), channels, height, width, native.pointer(matrix),
          native.pointer(bias), cout, groups, k, k, layer.strides, d, top, left, out_h, out_w,
          int(layer.relu), None, native.pointer(out)]
  return lib.shv_naive_conv, args, out, out_h * out_w * patch


def _naive_network(network: graph.Network, dtype, inflate: bool):
  """Per layer, the naive C calls [(function, args)], and the planar output tensors."""
  lib = native.library()
  code = native.DTYPE_CODES[np.dtype(dtype)]
  h, w, c = network.input_shape
  tensors = {network.input_name: np.zeros((c, h, w), dtype)}
  keep, layers, columns = [], [], []  # `keep`: arrays the bound pointers point into
  for layer in network.layers:
    sources = [tensors[name] for name in layer.inputs]
    c, h, w = sources[0].shape
    calls = []
    if layer.kind in (graph.CONV, graph.DEPTHWISE):
      src = sources[0]
      if layer.upsample > 1:
        up = layer.upsample
        src = np.zeros((c, h * up, w * up), dtype)
        keep.append(src)
        calls.append((lib.shv_naive_resize,
                      [code, native.pointer(sources[0]), c, h, w, up, native.pointer(src)]))
      function, args, out, scratch = _conv_call(lib, layer, src, dtype, inflate, keep)
      calls.append((function, args))
      columns.append((args, scratch))
    else:
      oh, ow, oc = layer.out_shape
      out = np.zeros((oc, oh, ow), dtype)
      pointers = (ctypes.c_void_p * len(sources))(*(native.pointer(s) for s in sources))
      keep.append(pointers)
      if layer.kind == graph.ADD:
        args = [code, pointers, len(sources), out.size, int(layer.relu)]
        calls.append((lib.shv_naive_add, args + [native.pointer(out)]))
      elif layer.kind == graph.CONCAT:
        counts = (ctypes.c_int * len(sources))(*(s.shape[0] for s in sources))
        keep.append(counts)
        calls.append((lib.shv_naive_concat, [code, pointers, counts, len(sources), h * w,
                                             native.pointer(out)]))
      elif layer.kind == graph.CHANNEL_SHUFFLE:
        calls.append((lib.shv_naive_shuffle, [code, pointers[0], c, layer.groups, h * w,
                                              native.pointer(out)]))
      elif layer.kind == graph.RESIZE_NEAREST:
        calls.append((lib.shv_naive_resize, [code, pointers[0], c, h, w, layer.scale,
                                             native.pointer(out)]))
      elif layer.kind == graph.MAX_POOL:
        calls.append((lib.shv_naive_max_pool, [code, pointers[0], c, h, w, layer.strides,
                                               native.pointer(out)]))
      else:
        calls.append((lib.shv_naive_global_avg_pool, [code, pointers[0], c, h, w,
                                                      native.pointer(out)]))
    tensors[layer.name] = out
    layers.append(calls)
  scratch = np.zeros(max(n for _, n in columns), dtype)
  for args, _ in columns:
    args[-2] = native.pointer(scratch)
  keep.append(scratch)
  return layers, tensors, keep


def _run_all(calls) -> None:
  for function, args in calls:
    function(*args)


def _median_ms(function, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def _measure(dtype_name: str, network: graph.Network, repeats: int, warmup: int) -> dict:
  dtype = blob.DTYPES[dtype_name]
  program = planner.compile_network(network, dtype)
  image = np.random.default_rng(0).uniform(0, 1, network.input_shape).astype(np.float32)
  runner = native.Runner(blob.to_bytes(program), f"hand25d {dtype_name}")
  ours_out = runner.run(image).outputs
  ours = [runner.layer_function(i) for i in range(len(network.layers))]
  forms = {}
  for name, inflate in (("naive", False), ("naive_inflated", True)):
    calls, tensors, keep = _naive_network(network, dtype, inflate)
    tensors[network.input_name][...] = image.transpose(2, 0, 1).astype(dtype)
    for layer_calls in calls:
      _run_all(layer_calls)
    for key, expected in ours_out.items():  # same results before timing anything
      got = tensors[network.outputs[key]].transpose(1, 2, 0).reshape(expected.shape)
      tolerance = 1e-4 if dtype_name == "fp32" else 1e-2
      error = float(np.abs(got.astype(np.float32) - expected).max())
      if error > tolerance * float(expected.max() - expected.min()):
        raise RuntimeError(f"{name} {dtype_name}: output {key!r} differs from ours by {error}")
    forms[name] = (calls, (keep, tensors))
  for _ in range(warmup):
    for function in ours:
      assert function() == 0
    for calls, _ in forms.values():
      for layer_calls in calls:
        _run_all(layer_calls)
  # Per layer: ours and the naive forms alternate, run by run.
  samples = {form: [[] for _ in network.layers] for form in ("ours", *forms)}
  for _ in range(repeats):
    for i in range(len(network.layers)):
      for form in samples:
        run = ours[i] if form == "ours" else (lambda c=forms[form][0][i]: _run_all(c))
        start = time.perf_counter()
        run()
        samples[form][i].append(time.perf_counter() - start)
  whole = {"ours": lambda: [f() for f in ours]}
  for form, (calls, _) in forms.items():
    whole[form] = lambda c=calls: [_run_all(layer_calls) for layer_calls in c]
  totals = {form: _median_ms(function, repeats) for form, function in whole.items()}
  result = simulator.run(program, image)
  modelled = {
      "naive_inflated": cost.estimate(result),
      "naive": cost.estimate(result, cost.Assumptions(naive_inflates_dilation=False))}
  ms = lambda cycles: 1e3 * cycles / cost.Assumptions().clock_hz  # noqa: E731
  layers = []
  for i, layer in enumerate(network.layers):
    row = {"name": layer.name, "kind": layer.kind, "dilation": layer.dilation,
           "upsample": layer.upsample}
    for form in samples:
      row[f"{form}_ms"] = 1e3 * statistics.median(samples[form][i])
    for form, priced in modelled.items():
      c = priced.layers[i]
      row[f"modelled_{form}_speedup"] = c.naive / c.ours
    row["modelled_ours_ms"] = ms(modelled["naive"].layers[i].ours)
    layers.append(row)
  summary = {f"{form}_ms": totals[form] for form in totals}
  for form in forms:
    summary[f"{form}_speedup"] = totals[form] / totals["ours"]
    summary[f"modelled_{form}_speedup"] = modelled[form].speedup
  summary["modelled_ours_ms"] = modelled["naive"].ours_ms
  return {"network": summary, "layers": layers}


def _print(dtype_name: str, measured: dict) -> None:
  print(f"\n== {dtype_name}: measured on this CPU (ms, median) and speed-ups, "
        "measured vs modelled (cost.py)")
  print(f"{'layer':<34}{'kind':<16}{'ours':>8}{'naive':>8}{'infl.':>8}"
        f"{'x naive':>9}{'model':>7}{'x infl.':>9}{'model':>7}")
  for row in measured["layers"]:
    kind = row["kind"] + (f" d{row['dilation']}" if row["dilation"] > 1 else "") + (
        f" up{row['upsample']}" if row["upsample"] > 1 else "")
    print(f"{row['name'][:33]:<34}{kind:<16}{row['ours_ms']:>8.3f}{row['naive_ms']:>8.3f}"
          f"{row['naive_inflated_ms']:>8.3f}{row['naive_ms'] / row['ours_ms']:>8.1f}x"
          f"{row['modelled_naive_speedup']:>6.1f}x"
          f"{row['naive_inflated_ms'] / row['ours_ms']:>8.1f}x"
          f"{row['modelled_naive_inflated_speedup']:>6.1f}x")
  n = measured["network"]
  print(f"{'network':<50}{n['ours_ms']:>8.2f}{n['naive_ms']:>8.2f}{n['naive_inflated_ms']:>8.2f}"
        f"{n['naive_speedup']:>8.1f}x{n['modelled_naive_speedup']:>6.1f}x"
        f"{n['naive_inflated_speedup']:>8.1f}x{n['modelled_naive_inflated_speedup']:>6.1f}x")


def _cpu() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _load(values):
  return ", ".join(f"{v:.2f}" for v in values)


def main(argv):
  del argv
  load_before = os.getloadavg()
  network = graph.from_keras(network_lib.inference_model(config_lib.ModelConfig()))
  report = {"cpu": _cpu(), "compiler": cbuild.compiler("c"), "flags": list(cbuild.c_flags()),
            "fp16_conversion": "_Float16" if native.library().shv_native_fp16() else "software",
            "repeats": _REPEATS.value, "threads": 1, "types": {}}
  for dtype_name in _DTYPES.value:
    measured = _measure(dtype_name, network, _REPEATS.value, _WARMUP.value)
    _print(dtype_name, measured)
    report["types"][dtype_name] = measured
  report["load_average_before"] = load_before
  report["load_average_after"] = os.getloadavg()
  print(f"\nload average (1, 5, 15 min): before {_load(load_before)}, after {_load(os.getloadavg())}")
  atomic.write_json(_OUT.value, report)
  print(f"\nwrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
