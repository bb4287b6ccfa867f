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
`pipeline` is well above `step` (the issue asks for 5x). Without --data a
small data set is generated into a temporary directory first.
"""

import os
import platform
import tempfile
import time

from absl import app
from absl import flags

from hand25d import atomic  # Before TensorFlow: importing hand25d sets TF_USE_LEGACY_KERAS.
from hand25d import losses
from hand25d.data import generate
from hand25d.data import pipeline
from hand25d.model import config as model_config
from hand25d.model import network
from hand25d.training import step as step_lib

import tensorflow as tf
import tf_keras as keras

_DATA = flags.DEFINE_string("data", None, "Data set directory; default: generate one.")
_FRAMES = flags.DEFINE_integer("frames", 320, "Frames to generate when --data is not given.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/train.json", "Where to write the JSON.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Examples per training step.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps (or batches) per figure.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, caches).")
_BACKBONE = flags.DEFINE_enum("backbone", "ours", model_config.BACKBONES, "Encoder backbone.")


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
  print(f"backbone {_BACKBONE.value}, batch {_BATCH.value}, all heads, Eq. 1 loss")
  print(f"  train step alone       {result['step_examples_per_s']:8.1f} examples/s")
  print(f"  input pipeline alone   {result['pipeline_examples_per_s']:8.1f} examples/s "
        f"({result['pipeline_over_step']:.1f}x the step)")
  print(f"  loop (pipeline + step) {result['loop_examples_per_s']:8.1f} examples/s "
        f"({100 * result['loop_over_step']:.0f}% of the step alone)")
  report = {"backbone": _BACKBONE.value, "batch_size": _BATCH.value, "steps": _STEPS.value,
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            "machine": platform.machine(), "tensorflow": tf.__version__, **result}
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
