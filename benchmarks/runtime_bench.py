r"""End-to-end speed of the 2.5D runtime: phase frames in, 2.5D keypoints out (not a test).

  .venv/bin/python benchmarks/runtime_bench.py [--model=model.tflite] \
      [--out=benchmarks/results/runtime.json]

Rows, all through the same hand25d.runtime.pipeline.Pipeline (frame checks,
amplitude, network, depth, decoding, lifting of both hands):
  * ours, depth path sequential (after the network) and parallel (worker
    thread beside the network), in LiteRT; parallel in TFLM; and parallel
    in LiteRT with the mirror ensemble (two passes, hand25d.mirror);
  * the peer: MediaPipe's hand_landmark_lite.tflite in place of our network,
    on the amplitude image resized to 224x224x3, sequential and parallel;
  * hand25d.HandTracker end to end (video mode: One Euro smoothing; results
    converted to its dataclasses; depth parallel), fed phase frames, and fed
    amplitude + uint16 millimetre depth as a depth camera delivers them.
Every frame takes the full path (presence and confidence gates at 0: no
early out), both hands are lifted. The peer predicts one hand per invoke;
its 8 matching keypoints serve both sides so that decoding and lifting cost
the same as ours (a real two-hand MediaPipe would also invoke twice and run
a palm detector). Only its latency is comparable, not its accuracy.

First, the import time of the runtime (`from hand25d.runtime import
pipeline`, and `from hand25d import HandTracker`) in a fresh process, beside
that of `import tensorflow`, which the runtime never loads.

Without --model the network is exported with fresh weights: its cost does
not depend on them. Rows are measured in interleaved rounds so that load
from other processes spreads over all of them. frames/s is frames over wall
time; CPU is the process's CPU time per frame (all threads), which load from
other processes does not inflate: 1000 / CPU is what one free core would give
sequentially.
"""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import litert
from hand25d import sensor
from hand25d import spec
from hand25d.data import scene
from hand25d.model import config as config_lib
from hand25d.model import network
from hand25d.runtime import pipeline
from hand25d.runtime import tracker as tracker_lib
from hand25d.runtime.demo import evaluation
from export import convert

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODEL = flags.DEFINE_string("model", None, "Exported .tflite model (default: fresh weights).")
_PEER = flags.DEFINE_string("peer", os.path.join(_ROOT, "..", "shared", "peers",
                                                  "hand_landmark_lite.tflite"),
                            "MediaPipe hand landmark model (input 1x224x224x3 float).")
_OUT = flags.DEFINE_string("out", "benchmarks/results/runtime.json", "Where to write the JSON.")
_FRAMES = flags.DEFINE_integer("frames", 600, "Timed frames per row (over all rounds).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed frames per row and round.")
_SEED = flags.DEFINE_integer("seed", 7, "Seed of the rendered clip (two hands).")
_CLIP = flags.DEFINE_integer("clip_frames", 30, "Distinct rendered frames, cycled.")
_IMPORTS = flags.DEFINE_integer("import_runs", 5, "Fresh processes per import-time row.")

TARGET_FPS = 200.0
TRACKER_TARGET_FPS = 300.0  # HandTracker end to end.
# MediaPipe's 21 landmarks for each of our primary keypoints: the landmark of
# the same joint (tracker.MEDIAPIPE_NAMES); hand_center, which MediaPipe does
# not have, is the mean of the wrist and the middle finger's MCP.
_PEER_LANDMARKS = {
    name: ((0, 9) if tracker_lib.MEDIAPIPE_NAMES[name] is None else
           (tracker_lib.MEDIAPIPE_HAND_LANDMARKS.index(tracker_lib.MEDIAPIPE_NAMES[name]),))
    for name in spec.PRIMARY_KEYPOINT_NAMES}


class PeerModel:
  """MediaPipe hand_landmark_lite as a runtime KeypointModel (see inference.KeypointModel)."""

  def __init__(self, path: str, sensor_shape: tuple[int, int]):
    with open(path, "rb") as f:
      self._model = litert.LiteRtModel(f.read())
    self._size = int(self._model.inputs[0]["shape"][1])
    h, w = sensor_shape
    # Nearest-neighbour resize of the sensor image to the peer's square input.
    self._rows = ((np.arange(self._size) + 0.5) * h / self._size).astype(int)
    self._cols = ((np.arange(self._size) + 0.5) * w / self._size).astype(int)
    self._scale = np.array([w / self._size, h / self._size])
    self._landmarks = np.zeros((spec.NUM_PRIMARY_KEYPOINTS, 21))
    for k, name in enumerate(spec.PRIMARY_KEYPOINT_NAMES):
      self._landmarks[k, list(_PEER_LANDMARKS[name])] = 1.0 / len(_PEER_LANDMARKS[name])

  def infer(self, amplitude: np.ndarray) -> dict[str, np.ndarray]:
    image = sensor.normalize_input(amplitude[self._rows[:, None], self._cols], "amplitude")
    self._model.set_inputs([np.repeat(image[None, :, :, None], 3, axis=-1)])
    self._model.interpreter.invoke()
    landmarks, presence = self._model.output_arrays()[:2]  # Image landmarks, hand flag.
    p = np.clip(float(presence.ravel()[0]), 1e-6, 1 - 1e-6)
    return {"landmarks": landmarks.reshape(21, 3),
            spec.PRESENCE: np.full((1, spec.NUM_SIDES), np.log(p / (1 - p)))}

  def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    xy = (self._landmarks @ outputs["landmarks"][:, :2] + 0.5) * self._scale - 0.5
    xy = np.repeat(xy[None], spec.NUM_SIDES, axis=0)
    return xy, np.ones(xy.shape[:2])


def _rows(model_path: str) -> dict[str, dict]:
  sensor_shape = (spec.SENSOR.height, spec.SENSOR.width)
  full_path = dict(presence_threshold=0.0, min_keypoint_confidence=0.0)
  rows = {}
  for parallel in (False, True):
    mode = "parallel" if parallel else "sequential"
    options = pipeline.PipelineOptions(parallel_depth=parallel, **full_path)
    rows[f"ours litert {mode}"] = {"model": model_path, "options": options}
    rows[f"peer litert {mode}"] = {"model": PeerModel(_PEER.value, sensor_shape), "options": options}
  rows["ours tflm parallel"] = {
      "model": model_path,
      "options": pipeline.PipelineOptions(backend="tflm", parallel_depth=True, **full_path)}
  rows["ours litert parallel mirror ensemble"] = {
      "model": model_path,
      "options": pipeline.PipelineOptions(parallel_depth=True, mirror_ensemble=True, **full_path)}
  for name in _TRACKER_ROWS:
    rows[name] = {"model": model_path, "options": pipeline.PipelineOptions(**full_path),
                  "tracker": True}
  return rows


# HandTracker rows: how each is fed a frame of the clip.
_TRACKER_ROWS = ("tracker phase", "tracker amplitude+depth")


# Import time, each in a fresh process: the runtime, and TensorFlow (which
# the runtime does not load) as the peer.
_IMPORT_ROWS = {"hand25d.runtime.pipeline": "from hand25d.runtime import pipeline",
                "hand25d.HandTracker": "from hand25d import HandTracker",
                "tensorflow (peer)": "import tensorflow"}


def _import_seconds(statement: str) -> tuple[float, bool]:
  """Seconds `statement` takes in a fresh interpreter, and whether it loaded TensorFlow."""
  code = ("import sys, time; t = time.perf_counter(); " + statement + "; "
          "print(time.perf_counter() - t, 'tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       text=True, cwd=_ROOT).stdout.split()
  return float(out[-2]), out[-1] == "True"


def _import_times(runs: int) -> dict[str, dict]:
  """Median and spread of each _IMPORT_ROWS statement over `runs` fresh processes."""
  results = {}
  for name, statement in _IMPORT_ROWS.items():
    measured = [_import_seconds(statement) for _ in range(runs)]
    seconds = [m[0] for m in measured]
    results[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds),
                     "max_s": max(seconds), "runs": runs,
                     "loads_tensorflow": any(m[1] for m in measured)}
    print(f"import {name:28s} {results[name]['median_s']:6.2f} s median "
          f"({min(seconds):.2f}-{max(seconds):.2f}, {runs} fresh processes); "
          f"loads tensorflow: {results[name]['loads_tensorflow']}", flush=True)
  return results


def _measure(p: pipeline.Pipeline, frames: list[np.ndarray], n: int, warmup: int,
             start: int) -> tuple[list[dict], float, float]:
  """Per-frame timings, wall seconds and CPU seconds (all threads) of n frames."""
  for i in range(warmup):
    p.process(frames[(start + i) % len(frames)])
  timings = []
  t0, c0 = time.perf_counter(), time.process_time()
  for i in range(n):
    result = p.process(frames[(start + i) % len(frames)])
    if not result.ok:
      raise RuntimeError(f"benchmark frame {i} was bad: {result.error}")
    timings.append(result.timings_ms)
  return timings, time.perf_counter() - t0, time.process_time() - c0


def _measure_tracker(t: tracker_lib.HandTracker, name: str, frames: list[np.ndarray],
                     images: list[tuple[np.ndarray, np.ndarray]], n: int, warmup: int,
                     start: int) -> tuple[list[dict], float, float]:
  """As _measure, through HandTracker in video mode (timestamps 1/30 s apart)."""

  def run(i: int) -> tracker_lib.TrackingResult:
    k, timestamp = (start + i) % len(frames), i / 30.0
    if name == "tracker phase":
      return t.process_phase(frames[k], timestamp_s=timestamp)
    amplitude, depth_mm = images[k]
    return t.process(amplitude=amplitude, depth=depth_mm, timestamp_s=timestamp)

  for i in range(warmup):
    run(i)
  timings = []
  t0, c0 = time.perf_counter(), time.process_time()
  for i in range(warmup, warmup + n):
    result = run(i)
    if not result.ok:
      raise RuntimeError(f"benchmark frame {i} was bad: {result.error}")
    timings.append(result.timings_ms)
  return timings, time.perf_counter() - t0, time.process_time() - c0


def main(argv):
  del argv
  imports = _import_times(_IMPORTS.value)
  clip = scene.render_sequence(_SEED.value, _CLIP.value)
  frames = [f["phase_frames"] for f in clip]
  # What a depth camera delivers: amplitude (IR) counts and uint16 millimetres.
  images = [(f["amplitude"], np.round(f["depth"] * 1e3).astype(np.uint16)) for f in clip]
  with tempfile.TemporaryDirectory() as tmp:
    model_path = _MODEL.value
    if model_path is None:
      model_path = os.path.join(tmp, "fresh.tflite")
      atomic.write_bytes(model_path, convert.to_tflite(
          network.inference_model(config_lib.ModelConfig()), "float32"))
    rows = _rows(model_path)
    load_before = os.getloadavg()
    per_round = max(1, _FRAMES.value // _ROUNDS.value)
    timings = {name: [] for name in rows}
    wall = {name: 0.0 for name in rows}
    cpu = {name: 0.0 for name in rows}
    for r in range(_ROUNDS.value):
      for name, row in rows.items():
        if row.get("tracker"):
          with tracker_lib.HandTracker(row["model"], mode=tracker_lib.VIDEO,
                                       options=row["options"]) as tracker:
            t, seconds, cpu_seconds = _measure_tracker(tracker, name, frames, images,
                                                       per_round, _WARMUP.value, r * per_round)
        else:
          with pipeline.Pipeline(row["model"], options=row["options"]) as p:
            t, seconds, cpu_seconds = _measure(p, frames, per_round, _WARMUP.value,
                                               r * per_round)
        timings[name] += t
        wall[name] += seconds
        cpu[name] += cpu_seconds
  results = {}
  width = max(len(name) for name in rows)
  print(f"{'pipeline':{width}s} {'frames/s':>9s} {'mean':>7s} {'p50':>7s} {'p90':>7s} {'p99':>7s}"
        f" {'network':>8s} {'depth':>6s} {'CPU':>6s} (ms)")
  for name in rows:
    lat = evaluation.latency(timings[name])
    lat["fps_wall"] = len(timings[name]) / wall[name]
    lat["cpu_ms_per_frame"] = 1e3 * cpu[name] / len(timings[name])
    results[name] = lat
    stages = lat["stage_mean_ms"]
    print(f"{name:{width}s} {lat['fps_wall']:9.1f} {lat['mean_ms']:7.2f} {lat['p50_ms']:7.2f} "
          f"{lat['p90_ms']:7.2f} {lat['p99_ms']:7.2f} {stages['network']:8.2f} "
          f"{stages.get('depth', 0.0):6.2f} {lat['cpu_ms_per_frame']:6.2f}", flush=True)
  best = max(results["ours litert sequential"]["fps_wall"],
             results["ours litert parallel"]["fps_wall"])
  print(f"target {TARGET_FPS:.0f} frames/s end to end: {'met' if best >= TARGET_FPS else 'MISSED'}"
        f" ({best:.0f})")
  for name in _TRACKER_ROWS:
    fps = results[name]["fps_wall"]
    print(f"target {TRACKER_TARGET_FPS:.0f} frames/s through HandTracker, {name[8:]}: "
          f"{'met' if fps >= TRACKER_TARGET_FPS else 'MISSED'} ({fps:.0f})")
  report = {"frames_per_row": len(timings[next(iter(rows))]), "rounds": _ROUNDS.value,
            "model": _MODEL.value or "fresh weights", "peer": _PEER.value,
            "cpu_count": os.cpu_count(), "load_average_before": load_before,
            "load_average_after": os.getloadavg(), "machine": platform.machine(),
            "target_fps": TARGET_FPS, "tracker_target_fps": TRACKER_TARGET_FPS,
            "rows": results, "import_time": imports}
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
