"""Training throughput on CPU: the step alone, the input pipeline alone, both together.

  .venv/bin/python benchmarks/train_bench.py [--data=DIR] [--out=benchmarks/results/train.json]

Three figures, in one run, for the real multi-task train step (all heads, the
loss of Eq. 1, Adam, the non-finite guard; `hand25d.training.step`) at the
default input and batch 32:

  * step: examples/s of the train step on one batch held in memory (the
    compute ceiling);
  * pipeline: examples/s of the training input pipeline alone (augmentation
    and two-hand compositing on, records cached), with no model;
  * loop: examples/s of step and pipeline together, as the training loop runs
    them (the pipeline prefetches in parallel with the step).

The input pipeline is not the bottleneck when `loop` is close to `step` and
`pipeline` is well above `step`. Without --data a small data set is
generated into a temporary directory first. TensorFlow's kernels are the
binaries' (hand25d.console: oneDNN unless TF_ENABLE_ONEDNN_OPTS=0 is set);
the JSON records which ran and whether the CPU has AVX-512.

With --variants it also measures, one batch held in memory, each in a fresh
model: the step under Keras' mixed_bfloat16 policy (AVX-512 BF16), the
forward and backward pass compiled by XLA (`tf.function(jit_compile=True)`;
XLA's CPU backend has no kernel for the gradient of nearest-neighbour
up-sampling, so that variant builds UpSampling2D as a broadcast and reshape,
which is the same function), and the step with only the primary keypoint
loss and with it plus one head at a time (the cost of each head).
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import dataclasses
import os
import platform
import tempfile
import time

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import losses
from hand25d.data import generate
from hand25d.data import pipeline
from hand25d.model import config as model_config
from hand25d.model import network
from hand25d.training import step as step_lib

import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-direct-tensorflow-import
import tf_keras as keras

_DATA = flags.DEFINE_string("data", None, "Data set directory; default: generate one.")
_FRAMES = flags.DEFINE_integer("frames", 320, "Frames to generate when --data is not given.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/train.json", "Where to write the JSON.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Examples per training step.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps (or batches) per figure.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, caches).")
_BACKBONE = flags.DEFINE_enum("backbone", "ours", model_config.BACKBONES, "Encoder backbone.")
_VARIANTS = flags.DEFINE_bool("variants", False,
                              "Also measure bf16, XLA and the cost of each head.")

# Head switch -> its loss term (hand25d.training.config.with_heads_for_losses).
_HEAD_TERMS = {"aux_keypoints": "akp", "visibility_presence": "kphv", "orientation": "cho",
               "pose": "dhp", "segmentation": "seg", "deep_supervision": "ds"}


def _rate(run_one, steps: int, warmup: int, batch: int) -> float:
  """Examples/s of `steps` calls of run_one() after `warmup` untimed ones."""
  for _ in range(warmup):
    run_one()
  start = time.perf_counter()
  for _ in range(steps):
    run_one()
  return batch * steps / (time.perf_counter() - start)


def _dataset(data_dir: str, batch: int) -> tf.data.Dataset:
  return pipeline.make_dataset(data_dir, "train", batch, training=True, seed=0,
                               num_epochs=None, cache=True)


def measure(data_dir: str, backbone: str, batch: int, steps: int, warmup: int) -> dict:
  """The three throughputs (examples/s) described in the module docstring."""
  config = model_config.ModelConfig(backbone=backbone)
  model = network.build_training_model(config)
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.trainable_variables)
  strategy = tf.distribute.get_strategy()
  train_step = step_lib.make_train_step(model, optimizer, strategy, losses.LossWeights(), batch)

  batches = iter(_dataset(data_dir, batch))
  fixed = next(batches)
  step_rate = _rate(lambda: bool(train_step(fixed)["applied"]), steps, warmup, batch)

  fresh = iter(_dataset(data_dir, batch))
  pipeline_rate = _rate(lambda: next(fresh), steps, warmup, batch)

  loop_rate = _rate(lambda: bool(train_step(next(batches))["applied"]), steps, warmup, batch)
  return {"step_examples_per_s": step_rate, "pipeline_examples_per_s": pipeline_rate,
          "loop_examples_per_s": loop_rate, "pipeline_over_step": pipeline_rate / step_rate,
          "loop_over_step": loop_rate / step_rate, "params": model.count_params()}


def _upsample_as_broadcast(x, height_factor, width_factor, data_format,
                           interpolation="nearest"):
  """Nearest x2 up-sampling as broadcast + reshape (XLA has no ResizeNearestNeighborGrad)."""
  if interpolation != "nearest" or (height_factor, width_factor) != (2, 2):
    return _ORIGINAL_RESIZE(x, height_factor, width_factor, data_format, interpolation)
  s = tf.shape(x)
  y = tf.broadcast_to(x[:, :, None, :, None, :], [s[0], s[1], 2, s[2], 2, s[3]])
  return tf.reshape(y, [s[0], 2 * s[1], 2 * s[2], x.shape[-1]])


_ORIGINAL_RESIZE = keras.backend.resize_images


def _step_rate(config: model_config.ModelConfig, weights: losses.LossWeights, batch,
               size: int, steps: int, warmup: int, jit: bool = False) -> float:
  """Examples/s of forward, backward and Adam on one batch held in memory."""
  model = network.build_training_model(config)
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.trainable_variables)
  variables = model.trainable_variables

  def grads(features, targets):
    with tf.GradientTape() as tape:
      outputs = {k: tf.cast(v, tf.float32)
                 for k, v in model(features["image"], training=True).items()}
      total = losses.compute_losses(outputs, targets, weights, size)["total"]
    return total, tape.gradient(total, variables)

  compiled = tf.function(grads, jit_compile=jit)

  @tf.function
  def step(features, targets):
    total, g = compiled(features, targets)
    optimizer.apply_gradients(zip(g, variables))
    return total

  return _rate(lambda: step(*batch).numpy(), steps, warmup, size)


def variants(data_dir: str, batch: int, steps: int, warmup: int) -> dict:
  """Examples/s of the step in each variant of the module docstring."""
  fixed = next(iter(_dataset(data_dir, batch)))
  config, weights = model_config.ModelConfig(), losses.LossWeights()
  out = {"float32": _step_rate(config, weights, fixed, batch, steps, warmup)}
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    out["mixed_bfloat16"] = _step_rate(config, weights, fixed, batch, steps, warmup)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  from tf_keras.src.layers.reshaping import up_sampling2d  # pylint: disable=g-import-not-at-top
  up_sampling2d.backend.resize_images = _upsample_as_broadcast
  try:
    out["xla_jit_compile"] = _step_rate(config, weights, fixed, batch, steps, warmup, jit=True)
  finally:
    up_sampling2d.backend.resize_images = _ORIGINAL_RESIZE
  none = dict.fromkeys(_HEAD_TERMS, False)
  off = dict.fromkeys(losses.TERMS, 0.0)
  only_kp = dataclasses.replace(weights, **dict(off, kp=1.0))
  out["heads"] = {"keypoints only": _step_rate(
      dataclasses.replace(config, **none), only_kp, fixed, batch, steps, warmup)}
  for head, term in _HEAD_TERMS.items():
    out["heads"][f"+ {head}"] = _step_rate(
        dataclasses.replace(config, **dict(none, **{head: True})),
        dataclasses.replace(only_kp, **{term: getattr(weights, term)}), fixed, batch, steps,
        warmup)
  return out


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = _DATA.value
    if data_dir is None:
      print(f"generating {_FRAMES.value} frames into {tmp} ...", flush=True)
      generate.generate(generate.GeneratorConfig(num_frames=_FRAMES.value, seed=0), tmp,
                        workers=os.cpu_count() or 1)
      data_dir = tmp
    result = measure(data_dir, _BACKBONE.value, _BATCH.value, _STEPS.value, _WARMUP.value)
    if _VARIANTS.value:
      result["variants"] = variants(data_dir, _BATCH.value, _STEPS.value, _WARMUP.value)
  print(f"backbone {_BACKBONE.value}, batch {_BATCH.value}, all heads, Eq. 1 loss")
  print(f"  train step alone       {result['step_examples_per_s']:8.1f} examples/s")
  print(f"  input pipeline alone   {result['pipeline_examples_per_s']:8.1f} examples/s "
        f"({result['pipeline_over_step']:.1f}x the step)")
  print(f"  loop (pipeline + step) {result['loop_examples_per_s']:8.1f} examples/s "
        f"({100 * result['loop_over_step']:.0f}% of the step alone)")
  if "variants" in result:
    v = result["variants"]
    print("step variants, one batch in memory (examples/s):")
    for key in ("float32", "mixed_bfloat16", "xla_jit_compile"):
      print(f"  {key:24s} {v[key]:8.1f}")
    base = v["heads"]["keypoints only"]
    for key, rate in v["heads"].items():
      extra = "" if key == "keypoints only" else f"  (+{1e3 / rate - 1e3 / base:.2f} ms/example)"
      print(f"  {key:24s} {rate:8.1f}{extra}")
  report = {"backbone": _BACKBONE.value, "batch_size": _BATCH.value, "steps": _STEPS.value,
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            "machine": platform.machine(), "tensorflow": tf.__version__,
            "onednn": bool(_pywrap_util_port.IsMklEnabled()), "avx512": _has_avx512(), **result}
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


def _has_avx512() -> bool | None:
  """Whether the CPU has AVX-512 (None where /proc/cpuinfo cannot tell)."""
  try:
    with open("/proc/cpuinfo") as f:
      return " avx512f" in f.read()
  except OSError:
    return None


if __name__ == "__main__":
  app.run(main)
