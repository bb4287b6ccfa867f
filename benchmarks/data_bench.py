"""Throughput of the data engine: generation frames/s and input-pipeline examples/s.

  .venv/bin/python benchmarks/data_bench.py --workers=2 --out=benchmarks/results/data.json

Generation renders sensor-resolution (spec.SENSOR) frames into shards, with
one in-process worker (the peer) and with --workers processes, --rounds
times (the median, and each round; process start-up included, and also
reported without it). The input pipeline reads
those shards at the default network input with training augmentation
(flip, scale, rotation, translation, noise, two-hand compositing), batch 32,
records cached in memory after the first pass. The depth from phase frames
is timed both ways: numpy's arctan2 (the runtime's sensor.depth) and the
data engine's tof.depth, whose phase (tof.arctan2_f32, a vectorised port of
glibc's atan2f) has the same bits on every machine with AVX2, the fastest
of 3 passes over 16 frames, in CPU time of this process.
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import json
import os
import shutil
import statistics
import tempfile
import time

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import sensor
from hand25d import spec
from hand25d.data import generate
from hand25d.data import pipeline
from hand25d.data import records
from hand25d.data import render
from hand25d.data import scene
from hand25d.data import tof

_OUT = flags.DEFINE_string("out", "benchmarks/results/data.json", "JSON result path.")
_FRAMES = flags.DEFINE_integer("frames", 1024, "Frames to generate with --workers.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Generation processes.")
_ROUNDS = flags.DEFINE_integer(
    "rounds", 3, "Generation runs with --workers; the median is reported, and each round.",
    lower_bound=1)
_BATCHES = flags.DEFINE_integer("batches", 40, "Timed pipeline batches.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Pipeline batch size.")


def _generation(out_dir: str) -> dict:
  config = generate.GeneratorConfig(num_frames=_FRAMES.value, seed=0, frames_per_shard=32)
  shard = generate.plan(config)[0]
  generate.render_record(config, shard, shard.start)  # Warm-up.
  n = 32
  t0 = time.perf_counter()
  for g in range(shard.start, shard.start + n):
    generate.render_record(config, shard, g)
  single = n / (time.perf_counter() - t0)
  steady, whole = [], []
  for r in range(_ROUNDS.value):  # The last round's data set stays for the pipeline.
    round_dir = out_dir if r == _ROUNDS.value - 1 else os.path.join(out_dir, f"round{r}")
    ticks = []
    t0 = time.perf_counter()
    generate.generate(config, round_dir, workers=_WORKERS.value,
                      progress=lambda done, total, elapsed, ticks=ticks: ticks.append(
                          (done, elapsed)))
    whole.append(config.num_frames / (time.perf_counter() - t0))
    # Steady state: from the time every worker has finished its first shard
    # (all started and warm) to the last shard.
    (d0, t_first), (d1, t_last) = ticks[_WORKERS.value - 1], ticks[-1]
    steady.append((d1 - d0) / max(t_last - t_first, 1e-9))
    if round_dir != out_dir:
      shutil.rmtree(round_dir)
  return {"resolution": [config.height, config.width], "frames": config.num_frames,
          "single_process_frames_per_s": single,
          f"workers_{_WORKERS.value}_frames_per_s": statistics.median(steady),
          f"workers_{_WORKERS.value}_frames_per_s_rounds": steady,
          f"workers_{_WORKERS.value}_frames_per_s_incl_startup": statistics.median(whole)}


def _depth() -> dict:
  config = scene.SceneConfig()
  camera = render.camera(config.height, config.width, config.intrinsics)
  frames = [scene.render_frame(seed, config)["phase_frames"] for seed in range(16)]
  result = {"simd_level": generate.simd_level()}
  for name, depth in (("numpy_arctan2_ms", sensor.depth), ("engine_arctan2_f32_ms", tof.depth)):
    passes = []
    for _ in range(3):
      t0 = time.process_time()
      for f in frames:
        depth(f, camera, config.sensor_model)
      passes.append((time.process_time() - t0) / len(frames) * 1e3)
    result[name] = min(passes)
  return result


def _pipeline(data_dir: str, training: bool) -> float:
  ds = pipeline.make_dataset(data_dir, "train", _BATCH_SIZE.value, training=training, seed=0,
                             num_epochs=None, cache=True)
  it = iter(ds)
  for _ in range(5):  # Warm-up: tracing, cache fill, autotuning.
    next(it)
  t0 = time.perf_counter()
  for _ in range(_BATCHES.value):
    next(it)
  return _BATCHES.value * _BATCH_SIZE.value / (time.perf_counter() - t0)


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    result = {"generation": _generation(tmp), "depth_per_frame": _depth()}
    manifest = records.load_manifest(tmp)
    result["dataset_bytes_per_frame"] = sum(
        s["bytes"] for info in manifest["splits"].values() for s in info["shards"]) / _FRAMES.value
    result["pipeline"] = {
        "input": [spec.INPUT_HEIGHT, spec.INPUT_WIDTH], "batch_size": _BATCH_SIZE.value,
        "train_augmented_examples_per_s": _pipeline(tmp, training=True),
        "eval_examples_per_s": _pipeline(tmp, training=False),
    }
  result["cpu_count"] = os.cpu_count()
  print(json.dumps(result, indent=2))
  atomic.write_bytes(_OUT.value, json.dumps(result, indent=2).encode())


if __name__ == "__main__":
  app.run(main)
