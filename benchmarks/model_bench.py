"""Training-step throughput of the hand25d network on CPU (not a test).

Measures examples/s of one training step (forward + backward through all
heads, batch 32, default input) for three models in one run: "ours" with
grouped convolutions in the fast (block-diagonal dense) form, "ours" with
native grouped convolutions (`tf.nn.conv2d` with a grouped filter), and the
MobileNetV2 baseline. The loss is a stand-in (the sum of each output's mean);
the real losses do not change the network's cost.

Then, per grouped layer shape of the network, the forward + backward time of
the three ways to run a grouped convolution: the fast form, the native form
and tf_keras `Conv2D(groups=...)` (which tf_keras runs through an XLA-compiled
function on CPU). Prints tables and writes JSON.

  .venv/bin/python benchmarks/model_bench.py [--out benchmarks/results/model.json]
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os
import platform
import time

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.model import config as config_lib
from hand25d.model import layers
from hand25d.model import network

import tensorflow as tf
import tf_keras as keras

_OUT = flags.DEFINE_string("out", "benchmarks/results/model.json", "Where to write the JSON.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Examples per training step.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per model.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps per model (tracing, caches).")

_CASES = (
    ("ours_fast", config_lib.ModelConfig(grouped_form="fast")),
    ("ours_native", config_lib.ModelConfig(grouped_form="native")),
    ("mobilenet_v2", config_lib.ModelConfig(backbone="mobilenet_v2")),
)


# (name, input [H, W, C], filters, kernel, groups, dilation) of grouped layers
# in the network, at batch _BATCH.
_LAYERS = (
    ("tier2 3x3 g4", (30, 40, 16), 16, 3, 4, 1),
    ("tier3 3x3 g8 d3", (15, 20, 40), 40, 3, 8, 3),
    ("score maps 1x1 g16", (60, 80, 64), 16, 1, 16, 1),
)


def _layer_ms(layer: keras.layers.Layer, x: tf.Tensor, steps: int, warmup: int) -> float:
  """Milliseconds of one forward + backward pass of `layer` on `x`."""
  layer(x)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x))
    return tape.gradient(loss, [x] + layer.trainable_variables)

  for _ in range(warmup):
    step()
  start = time.perf_counter()
  for _ in range(steps):
    grads = step()
  grads[0].numpy()
  return 1e3 * (time.perf_counter() - start) / steps


def _grouped_layers(batch: int, steps: int, warmup: int) -> dict:
  results = {}
  for name, shape, filters, kernel, groups, dilation in _LAYERS:
    x = tf.random.stateless_uniform((batch,) + shape, seed=(0, 2))
    candidates = {
        "fast": layers.GroupedConv2D(filters, kernel, groups, dilation_rate=dilation,
                                     form="fast"),
        "native": layers.GroupedConv2D(filters, kernel, groups, dilation_rate=dilation,
                                       form="native"),
        "keras_conv2d_groups": keras.layers.Conv2D(filters, kernel, padding="same",
                                                   groups=groups, dilation_rate=dilation),
    }
    results[name] = {form: _layer_ms(layer, x, steps, warmup)
                     for form, layer in candidates.items()}
    print(f"{name:20s} " + "  ".join(f"{form} {ms:7.1f} ms"
                                     for form, ms in results[name].items()), flush=True)
  return results


def _throughput(config: config_lib.ModelConfig, batch: int, steps: int, warmup: int) -> dict:
  model = network.build_training_model(config)
  optimizer = keras.optimizers.Adam(1e-3)
  images = tf.random.stateless_uniform((batch,) + config.input_shape, seed=(0, 1))

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      outputs = model(x, training=True)
      loss = tf.add_n([tf.reduce_mean(v) for v in outputs.values()])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  for _ in range(warmup):
    step(images).numpy()
  start = time.perf_counter()
  for _ in range(steps):
    loss = step(images)
  loss.numpy()
  seconds = time.perf_counter() - start
  return {"examples_per_s": batch * steps / seconds, "ms_per_step": 1e3 * seconds / steps,
          "params": model.count_params()}


def main(argv):
  del argv
  results = {}
  for name, config in _CASES:
    results[name] = _throughput(config, _BATCH.value, _STEPS.value, _WARMUP.value)
    print(f"{name:14s} {results[name]['examples_per_s']:8.1f} examples/s "
          f"{results[name]['ms_per_step']:8.1f} ms/step  ({results[name]['params']} params)",
          flush=True)
  speedup = results["ours_fast"]["examples_per_s"] / results["ours_native"]["examples_per_s"]
  print(f"fast / native grouped form: {speedup:.2f}x")
  print("grouped layer, forward + backward, batch", _BATCH.value)
  grouped = _grouped_layers(_BATCH.value, _STEPS.value, _WARMUP.value)
  report = {"batch_size": _BATCH.value, "steps": _STEPS.value, "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(), "machine": platform.machine(),
            "tensorflow": tf.__version__, "fast_over_native": speedup, "models": results,
            "grouped_layer_ms": grouped}
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
