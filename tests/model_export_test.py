"""The inference network converts to deployable TFLite and runs in TFLM and LiteRT."""

from hand25d import litert as litert_lib
from hand25d import paper
from hand25d import spec
from hand25d.model import card
from hand25d.model import config as config_lib
from hand25d.model import flops
from hand25d.model import layers
from hand25d.model import network

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tflite_micro.python.tflite_micro import runtime

CONFIG = config_lib.ModelConfig()
# Builtins the TFLite Micro interpreter registers that this network may use.
# RESHAPE and TRANSPOSE: the decoder's channel shuffle (ModelConfig.decoder_shuffle).
DEPLOYABLE_OPS = {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                  "MAX_POOL_2D", "MEAN", "RESHAPE", "TRANSPOSE"}
TFLM_ARENA_BYTES = 8 << 20


@pytest.fixture(scope="module")
def exported():
  """(Keras inference model, TFLite bytes) with weights moved from a fast-form training model."""
  training = network.build_training_model(CONFIG)
  rng = np.random.default_rng(0)
  for layer in training.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
  model = network.inference_model(CONFIG, weights_from=training)
  return model, card.convert(model)


@pytest.fixture(scope="module")
def image():
  return tf.random.stateless_uniform((1,) + CONFIG.input_shape, seed=(3, 4)).numpy()


def _by_shape(outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
  """TFLite output order is not the dict order: tell them apart by shape."""
  return {spec.KEYPOINTS if o.ndim == 4 else spec.PRESENCE: o for o in outputs}


def test_only_deployable_ops_and_true_grouped_convolutions(exported):
  model, model_bytes = exported
  stats = card.tflite_stats(model_bytes)
  assert set(stats["ops"]) <= DEPLOYABLE_OPS, stats["ops"]
  # Nearest-neighbour up-sampling as RESHAPE and CONCATENATION (XNNPACK runs both).
  assert "RESIZE_NEAREST_NEIGHBOR" not in stats["ops"] and stats["ops"]["CONCATENATION"] == 6
  assert stats["size_bytes"] < paper.FLOAT32_BUDGET_BYTES  # Under 300 KB in float32.
  # Every grouped layer is one CONV_2D whose filter depth is Cin / groups, or,
  # with one channel per group, one DEPTHWISE_CONV_2D.
  interpreter = litert_lib.builtin_interpreter(model_bytes)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  filters = {kind: sorted((tuple(tensors[op["inputs"][0]]["shape"][1:]),
                           tuple(tensors[op["inputs"][1]]["shape"]))
                          for op in interpreter._get_ops_details()  # pylint: disable=protected-access
                          if op["op_name"] == kind)
             for kind in ("CONV_2D", "DEPTHWISE_CONV_2D")}
  grouped = [layer for layer in model.layers if isinstance(layer, layers.GroupedConv2D)]
  assert len(grouped) == 2 + 2 * 4 + 1  # Tier-2 units, Tier-3 blocks, score maps.
  # Depthwise tiers (the default); the score maps' grouped 1x1 runs as a
  # dense block-diagonal 1x1 (network.SCORE_FORM).
  assert [layer.depthwise for layer in grouped] == [True] * 10 + [False]
  assert [layer.form for layer in grouped] == ["native"] * 10 + ["fast"]
  for layer in grouped:
    k, channels = layer.kernel_size, layer.input.shape[-1]
    if layer.depthwise:
      entry = (tuple(layer.input.shape[1:]), (1, k, k, layer.filters))
      assert entry in filters["DEPTHWISE_CONV_2D"], layer.name
    else:
      depth = channels if layer.form == "fast" else channels // layer.groups
      entry = (tuple(layer.input.shape[1:]), (layer.filters, k, k, depth))
      assert entry in filters["CONV_2D"], layer.name


def test_flop_counter_agrees_with_the_tflite_graph(exported):
  """The graph runs the network's MACs and the zeros of its block-diagonal 1x1s."""
  model, model_bytes = exported
  zeros = sum(int(np.prod(layer.output.shape[1:3])) * layer.filters * layer.input.shape[-1]
              * (1 - 1 / layer.groups)
              for layer in model.layers
              if isinstance(layer, layers.GroupedConv2D) and layer.form == "fast")
  assert zeros == 30 * 40 * 16 * 64 * 15 / 16  # The score maps at 1/4.
  assert card.tflite_stats(model_bytes)["macs"] == flops.total_macs(model) + zeros


def test_litert_and_tflm_match_keras(exported, image):
  model, model_bytes = exported
  expected = {k: v.numpy() for k, v in model(image).items()}

  interpreter = litert_lib.builtin_interpreter(model_bytes)
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
  interpreter.invoke()
  litert = _by_shape([interpreter.get_tensor(d["index"])
                      for d in interpreter.get_output_details()])

  micro = runtime.Interpreter.from_bytes(model_bytes, arena_size=TFLM_ARENA_BYTES)
  micro.set_input(image, 0)
  micro.invoke()
  tflm = _by_shape([micro.get_output(i) for i in range(len(expected))])

  # Float round-off only: TFLM's reference kernels and XNNPACK sum in other
  # orders (measured up to 3.5e-5 apart on score maps of about +-0.5 through
  # the ten depthwise tier convolutions), the same bound as against Keras.
  for name in expected:
    np.testing.assert_allclose(litert[name], expected[name], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tflm[name], expected[name], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tflm[name], litert[name], rtol=1e-4, atol=1e-4)
