r"""Inference latency of the exported hand25d models against MediaPipe Hands (not a test).

One run, one thread, ai-edge-litert with its default delegate (XNNPACK):
median and minimum latency of one invoke (at least 200 timed invokes after a
warm-up) for hand25d float32 and int8, and for the peers
hand_landmark_lite.tflite and hand_landmark_full.tflite (MediaPipe Hands,
224x224x3). Also the GFLOP/s hand25d achieves against a single-core peak
measured in the same run (a large float32 matrix product, one BLAS thread).
Prints a table and writes JSON.

  .venv/bin/python benchmarks/latency_bench.py [--model_dir=runs/export] \
      [--out=benchmarks/results/latency.json]

Without --model_dir it exports fresh-weight float32 and int8 (PTQ) models
itself: latency does not depend on the trained weights.
"""

import os

# One BLAS thread for the peak measurement: set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ[_var] = "1"

import platform  # pylint: disable=g-import-not-at-top,wrong-import-position
import statistics
import time

from absl import app
from absl import flags

from export import convert
from export import exporter
from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.data import pipeline
from hand25d.model import config as config_lib
from hand25d.model import flops
from hand25d.model import network

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import tf_keras as keras

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Directory with hand25d_float32.tflite and hand25d_int8_*.tflite "
    "(export.tflite_main --out); default: export fresh-weight models.")
_PEERS = flags.DEFINE_string("peers", os.path.join(_ROOT, "..", "shared", "peers"),
                             "Directory with the MediaPipe peer models.")
_OUT = flags.DEFINE_string("out", os.path.join(_ROOT, "benchmarks", "results", "latency.json"),
                           "Where to write the JSON.")
_INVOKES = flags.DEFINE_integer("invokes", 300, "Timed invokes per model (at least 200).")
_WARMUP = flags.DEFINE_integer("warmup", 30, "Untimed invokes per model.")

_PEER_FILES = ("hand_landmark_lite.tflite", "hand_landmark_full.tflite")
# Calibration frames of the fresh int8 model: the repository's fixture.
_FIXTURE = os.path.join(_ROOT, "testdata", "tof_tiny")
_MATMUL_N = 1024


def _fresh_models() -> dict[str, bytes]:
  """Fresh-weight float32 and PTQ int8 models of the default network."""
  keras.utils.set_random_seed(0)
  config = config_lib.ModelConfig()
  model = network.inference_model(config)

  def representative():
    for features, _ in pipeline.make_dataset(_FIXTURE, "train", 1, training=False):
      yield [features["image"].numpy()]

  return {"hand25d float32": convert.strip(convert.to_tflite(model, "float32")),
          "hand25d int8 (PTQ)": convert.strip(convert.to_tflite(model, "int8_ptq",
                                                                representative))}


def _exported_models(model_dir: str) -> dict[str, bytes]:
  models = {}
  for quant, label in (("float32", "hand25d float32"), ("int8_qat", "hand25d int8 (QAT)"),
                       ("int8_ptq", "hand25d int8 (PTQ)")):
    path = os.path.join(model_dir, f"{exporter.model_name(quant)}.tflite")
    if os.path.exists(path):
      with open(path, "rb") as f:
        models[label] = f.read()
  if not models:
    raise app.UsageError(f"no hand25d_*.tflite in {model_dir}")
  return models


def _latency_ms(model: bytes, invokes: int, warmup: int) -> dict:
  """Median and minimum milliseconds of one invoke, one thread, default delegate."""
  interpreter = Interpreter(model_content=model, num_threads=1)
  interpreter.allocate_tensors()
  rng = np.random.default_rng(0)
  for detail in interpreter.get_input_details():
    shape, dtype = detail["shape"], detail["dtype"]
    x = (rng.integers(-128, 128, shape) if dtype == np.int8 else rng.random(shape))
    interpreter.set_tensor(detail["index"], x.astype(dtype))
  for _ in range(warmup):
    interpreter.invoke()
  times = []
  for _ in range(invokes):
    start = time.perf_counter_ns()
    interpreter.invoke()
    times.append((time.perf_counter_ns() - start) / 1e6)
  return {"median_ms": statistics.median(times), "min_ms": min(times), "invokes": invokes,
          "input_shape": [int(d) for d in interpreter.get_input_details()[0]["shape"]],
          "input_dtype": np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
          "bytes": len(model)}


def _peak_gflops(repeats: int = 10) -> float:
  """Single-core float32 GFLOP/s of an N x N matrix product (best of `repeats`)."""
  rng = np.random.default_rng(0)
  a = rng.random((_MATMUL_N, _MATMUL_N), np.float32)
  b = rng.random((_MATMUL_N, _MATMUL_N), np.float32)
  a @ b  # pylint: disable=pointless-statement  # Warm-up.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b  # pylint: disable=pointless-statement
    best = min(best, time.perf_counter() - start)
  return 2 * _MATMUL_N ** 3 / best / 1e9


def main(argv):
  del argv
  if _INVOKES.value < 200:
    raise app.UsageError("--invokes must be at least 200")
  fresh = _MODEL_DIR.value is None
  models = _fresh_models() if fresh else _exported_models(_MODEL_DIR.value)
  for name in _PEER_FILES:
    with open(os.path.join(_PEERS.value, name), "rb") as f:
      models[f"MediaPipe {name}"] = f.read()
  model_flops = flops.total_flops(network.inference_model(config_lib.ModelConfig()))
  results = {name: _latency_ms(m, _INVOKES.value, _WARMUP.value) for name, m in models.items()}
  peak = _peak_gflops()
  lite = results["MediaPipe hand_landmark_lite.tflite"]["median_ms"]
  for name, r in results.items():
    r["speedup_vs_hand_landmark_lite"] = lite / r["median_ms"]
    if name.startswith("hand25d"):
      r["flops"] = model_flops
      r["achieved_gflops"] = model_flops / (r["median_ms"] / 1e3) / 1e9
      r["fraction_of_peak"] = r["achieved_gflops"] / peak
  report = {
      "models": results,
      "weights": "fresh (untrained) weights: latency does not depend on them" if fresh
                 else f"exported models from {os.path.abspath(_MODEL_DIR.value)}",
      "peak_gflops_single_core": peak,
      "peak_measure": f"float32 {_MATMUL_N}x{_MATMUL_N} matmul, numpy, 1 BLAS thread, best of 10",
      "runtime": "ai-edge-litert, default delegate (XNNPACK), num_threads=1",
      "machine": {"processor": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
  }
  print(f"{report['weights']}; {report['runtime']}; {_INVOKES.value} invokes each\n")
  print("| model | bytes | median ms | min ms | x lite | GFLOP/s (% of peak) |")
  print("| --- | ---: | ---: | ---: | ---: | ---: |")
  for name, r in results.items():
    rate = (f"{r['achieved_gflops']:.2f} ({100 * r['fraction_of_peak']:.1f}%)"
            if "achieved_gflops" in r else "")
    print(f"| {name} | {r['bytes']:,} | {r['median_ms']:.3f} | {r['min_ms']:.3f} | "
          f"{r['speedup_vs_hand_landmark_lite']:.2f} | {rate} |")
  print(f"\nsingle-core peak: {peak:.1f} GFLOP/s ({report['peak_measure']}); hand25d "
        f"{model_flops / 1e6:.2f} MFLOPs per frame (int8 rates count the same ops); "
        f"1-min load average {report['machine']['load_average_1min']:.2f}")
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
