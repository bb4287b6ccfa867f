r"""Inference latency of the exported hand25d models against MediaPipe Hands (not a test).

One thread, ai-edge-litert with its default delegate (XNNPACK), hand25d
float32 and int8 against the peers hand_landmark_lite.tflite and
hand_landmark_full.tflite (MediaPipe Hands, 224x224x3). Every model's
interpreter is made first; then in each of --rounds rounds every model runs
a block of --invokes invokes timed one by one, the models taking turns in an
order rotated each round (hand25d.litert_timing.interleaved_times), so that a
slow spell of a shared machine hits every model. Per model: the median over
rounds of the round's median invoke time, the minimum of all its invokes,
and its speed-up over hand_landmark_lite taken within each round, then
medianed. FLOPs (2 x MACs of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)
are counted from each .tflite (hand25d.tflite_ops.model_flops), so every
model's GFLOP/s is given, also against a single-core peak measured in the
same run (a large float32 matrix product, one BLAS thread).

With --profile, also the time of every operator alone
(hand25d.op_profile.profile: the model split into single-operator models)
of hand25d float32 and hand_landmark_lite, per operator and per operator
type, and the sum of the operators' times against the whole model's.

Prints tables and writes JSON.

  .venv/bin/python benchmarks/latency_bench.py [--model_dir=runs/export] \
      [--config='{"score_stride": 4}'] [--profile] [--out=benchmarks/results/latency.json]

Without --model_dir it exports fresh-weight float32 and int8 (PTQ) models of
the default network, or of --config's: latency does not depend on the
trained weights, only on the network's structure.
"""

import os

# One BLAS thread for the peak measurement: set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ[_var] = "1"

import dataclasses  # pylint: disable=g-import-not-at-top,wrong-import-position
import json
import platform
import time
from typing import Optional

from absl import app
from absl import flags

from export import config as export_config
from export import convert
from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import litert_timing
from hand25d import op_profile
from hand25d import tflite_ops
from hand25d.data import pipeline
from hand25d.model import config as config_lib
from hand25d.model import network
from hand25d.training import config as train_config

import numpy as np
import tf_keras as keras

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Directory with hand25d_float32.tflite and hand25d_int8_*.tflite "
    "(export.tflite_main --out); default: export fresh-weight models.")
_CONFIG = flags.DEFINE_string(
    "config", None, "The network of the fresh-weight models: a JSON object of ModelConfig "
    "fields (hand25d/model/config.py), inline ('{\"score_stride\": 4}') or a file holding "
    "one; default: the default network. Not with --model_dir.")
_PEERS = flags.DEFINE_string("peers", os.path.join(_ROOT, "..", "shared", "peers"),
                             "Directory with the MediaPipe peer models.")
_OUT = flags.DEFINE_string("out", os.path.join(_ROOT, "benchmarks", "results", "latency.json"),
                           "Where to write the JSON.")
_ROUNDS = flags.DEFINE_integer("rounds", 15, "Rounds; in each, every model runs in turn.")
_INVOKES = flags.DEFINE_integer("invokes", 40, "Timed invokes per model and round "
                                "(rounds x invokes at least 200).")
_WARMUP = flags.DEFINE_integer("warmup", 30, "Untimed invokes per model before the rounds.")
_PROFILE = flags.DEFINE_bool("profile", False, "Also time every operator of hand25d float32 and "
                             "hand_landmark_lite alone (same rounds and invokes).")

_PEER_FILES = ("hand_landmark_lite.tflite", "hand_landmark_full.tflite")
_LITE = "MediaPipe hand_landmark_lite.tflite"
_FLOAT32 = "hand25d float32"
# The profiles' slowest operators printed (the JSON has them all).
_PROFILE_TOP = 20
# Calibration frames of the fresh int8 model: the repository's fixture.
_FIXTURE = os.path.join(_ROOT, "testdata", "tof_tiny")
_MATMUL_N = 1024


def _model_config(value: Optional[str]) -> config_lib.ModelConfig:
  """--config as a ModelConfig: inline JSON or a file of it; None is the default network."""
  if value is None:
    return config_lib.ModelConfig()
  text = value
  if not value.lstrip().startswith("{"):
    with open(value) as f:
      text = f.read()
  try:
    fields = json.loads(text)
    if not isinstance(fields, dict):
      raise ValueError(f"expected a JSON object of ModelConfig fields, got {fields!r}")
    return train_config.model_from_dict(fields)
  except ValueError as e:
    raise app.UsageError(f"--config: {e}") from e


def _fresh_models(config: config_lib.ModelConfig) -> dict[str, bytes]:
  """Fresh-weight float32 and PTQ int8 models of the network of `config`."""
  keras.utils.set_random_seed(0)
  model = network.inference_model(config)

  def representative():
    for features, _ in pipeline.make_dataset(_FIXTURE, "train", 1, training=False):
      yield [features["image"].numpy()]

  return {_FLOAT32: convert.strip(convert.to_tflite(model, "float32")),
          "hand25d int8 (PTQ)": convert.strip(convert.to_tflite(model, "int8_ptq",
                                                                representative))}


def _exported_models(model_dir: str) -> dict[str, bytes]:
  models = {}
  for quant, label in (("float32", _FLOAT32), ("int8_qat", "hand25d int8 (QAT)"),
                       ("int8_ptq", "hand25d int8 (PTQ)")):
    path = os.path.join(model_dir, f"{export_config.model_name(quant)}.tflite")
    if os.path.exists(path):
      with open(path, "rb") as f:
        models[label] = f.read()
  if not models:
    raise app.UsageError(f"no hand25d_*.tflite in {model_dir}")
  return models


def _latencies(models: dict[str, bytes], peak: float) -> dict[str, dict]:
  """Interleaved timing of every model (module docstring): per model, its figures."""
  names = list(models)
  runners = [litert_timing.interpreter(models[name]) for name in names]
  times = litert_timing.interleaved_times(runners, _ROUNDS.value, _INVOKES.value,
                                         _WARMUP.value)
  lite = times.median_ms[:, names.index(_LITE)]
  results = {}
  for k, (name, runner) in enumerate(zip(names, runners)):
    per_round = times.median_ms[:, k]
    median = float(np.median(per_round))
    flops = tflite_ops.model_flops(models[name])
    detail = runner.get_input_details()[0]
    results[name] = {
        "median_ms": median, "min_ms": float(times.min_ms[:, k].min()),
        "round_medians_ms": per_round.tolist(),
        "invokes": _ROUNDS.value * _INVOKES.value, "rounds": _ROUNDS.value,
        "invokes_per_round": _INVOKES.value,
        "speedup_vs_hand_landmark_lite": float(np.median(lite / per_round)),
        "flops": flops, "achieved_gflops": litert_timing.gflops(flops, median),
        "fraction_of_peak": litert_timing.gflops(flops, median) / peak,
        "input_shape": [int(d) for d in detail["shape"]],
        "input_dtype": np.dtype(detail["dtype"]).name, "bytes": len(models[name])}
  return results


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


def _profiles(models: dict[str, bytes]) -> dict[str, dict]:
  """Per-operator profiles of hand25d float32 and hand_landmark_lite, printed and as JSON."""
  out = {}
  for name in (_FLOAT32, _LITE):
    if name not in models:
      continue
    result = op_profile.profile(models[name], _ROUNDS.value, _INVOKES.value, _WARMUP.value)
    print(f"\n## {name}: the {_PROFILE_TOP} slowest operators alone, and per type\n")
    print(op_profile.markdown(result, top=_PROFILE_TOP))
    out[name] = {**dataclasses.asdict(result),
                 "by_type": [dataclasses.asdict(t) for t in op_profile.by_type(result)]}
  return out


def main(argv):
  del argv
  if _ROUNDS.value * _INVOKES.value < 200:
    raise app.UsageError("--rounds x --invokes must be at least 200")
  if _MODEL_DIR.value is not None and _CONFIG.value is not None:
    raise app.UsageError("--config sets the network of fresh-weight models; an exported model "
                         "(--model_dir) has its own")
  fresh = _MODEL_DIR.value is None
  config = _model_config(_CONFIG.value)
  models = _fresh_models(config) if fresh else _exported_models(_MODEL_DIR.value)
  for name in _PEER_FILES:
    with open(os.path.join(_PEERS.value, name), "rb") as f:
      models[f"MediaPipe {name}"] = f.read()
  peak = _peak_gflops()
  results = _latencies(models, peak)
  report = {
      "models": results,
      "weights": "fresh (untrained) weights: latency does not depend on them" if fresh
                 else f"exported models from {os.path.abspath(_MODEL_DIR.value)}",
      "model_config": dataclasses.asdict(config) if fresh else None,
      "method": f"{_ROUNDS.value} interleaved rounds of {_INVOKES.value} invokes per model "
                f"after {_WARMUP.value} warm-up invokes; median over rounds of the round's "
                "median; speed-up per round, then medianed",
      "peak_gflops_single_core": peak,
      "peak_measure": f"float32 {_MATMUL_N}x{_MATMUL_N} matmul, numpy, 1 BLAS thread, best of 10",
      "runtime": "ai-edge-litert, default delegate (XNNPACK), num_threads=1",
      "machine": {"processor": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
  }
  print(f"{report['weights']}; {report['runtime']}; {report['method']}\n")
  print("| model | bytes | MFLOPs | median ms | min ms | x lite | GFLOP/s (% of peak) |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
  for name, r in results.items():
    print(f"| {name} | {r['bytes']:,} | {r['flops'] / 1e6:.2f} | {r['median_ms']:.3f} | "
          f"{r['min_ms']:.3f} | {r['speedup_vs_hand_landmark_lite']:.2f} | "
          f"{r['achieved_gflops']:.1f} ({100 * r['fraction_of_peak']:.1f}%) |")
  print(f"\nsingle-core peak: {peak:.1f} GFLOP/s ({report['peak_measure']}); int8 rates count "
        f"the same ops; 1-min load average {report['machine']['load_average_1min']:.2f}")
  if _PROFILE.value:
    report["profiles"] = _profiles(models)
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
