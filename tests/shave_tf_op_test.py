"""The SHAVE C kernel as a TensorFlow custom op: against tf.nn.conv2d, the simulator and Keras."""

import numpy as np
import pytest
import tensorflow as tf

from export.shave import agreement
from export.shave import graph
from export.shave import memory
from export.shave import native
from export.shave import simulator
from export.shave import tf_op
import tf_keras as keras


def _cases(count: int, seed: int):
  """Seeded random layers: grouped or depthwise, dilations 1-4, strides, kernels, paddings."""
  rng = np.random.default_rng(seed)
  for _ in range(count):
    depthwise = rng.random() < 0.25
    dilation = int(rng.choice([1, 2, 3, 4]))
    strides = 1 if dilation > 1 else int(rng.choice([1, 2, 3]))
    k = int(rng.choice([1, 2, 3, 5]))
    groups = 1 if depthwise else int(rng.choice([1, 2, 4, 8]))
    cin = int(rng.integers(1, 20)) if depthwise else groups * int(rng.integers(1, 5))
    cout = cin if depthwise else groups * int(rng.integers(1, 6))
    span = (k - 1) * dilation + 1
    shape = (int(rng.integers(1, 3)), int(rng.integers(span, span + 14)),
             int(rng.integers(span, span + 14)), cin)
    yield dict(depthwise=depthwise, dilation=dilation, strides=strides, k=k, groups=groups,
               cout=cout, shape=shape, padding=str(rng.choice(["SAME", "VALID"])),
               relu=bool(rng.random() < 0.5))


def _reference(x, kernel, bias, case):
  if case["depthwise"]:
    y = tf.nn.depthwise_conv2d(x, kernel, [1, case["strides"], case["strides"], 1],
                               case["padding"], dilations=[case["dilation"]] * 2)
  else:
    # Grouped: the filter's input depth is cin / groups.
    y = tf.nn.conv2d(x, kernel, case["strides"], case["padding"], dilations=case["dilation"])
  y = y + bias
  return (tf.nn.relu(y) if case["relu"] else y).numpy()


def _random_layer(case, rng, dtype=np.float32):
  cin = case["shape"][-1]
  kernel_shape = ((case["k"], case["k"], cin, 1) if case["depthwise"]
                  else (case["k"], case["k"], cin // case["groups"], case["cout"]))
  # The reference takes the values the kernel stores.
  return [rng.normal(size=s).astype(dtype).astype(np.float32)
          for s in (case["shape"], kernel_shape, (case["cout"],))]


@pytest.mark.parametrize("storage,tolerance", [("fp32", 1e-5), ("fp16", 4e-3)])
def test_op_matches_tf_conv2d_with_groups_and_dilation(storage, tolerance):
  rng = np.random.default_rng(1)
  dilations = set()
  for case in _cases(30, seed=2 if storage == "fp32" else 3):
    x, kernel, bias = _random_layer(case, rng, tf_op.STORAGE[storage])
    got = tf_op.conv2d(x, kernel, bias, strides=case["strides"], dilation=case["dilation"],
                       padding=case["padding"], relu=case["relu"],
                       depthwise=case["depthwise"], storage=storage).numpy()
    want = _reference(x, kernel, bias, case)
    assert got.shape == want.shape, case
    # fp32: accumulation order; fp16: the output is rounded to fp16 (2^-11).
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tolerance * scale, case
    dilations.add(case["dilation"])
  assert dilations == {1, 2, 3, 4}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_op_runs_the_simulators_tiles_in_the_same_slice_memory(dtype):
  rng = np.random.default_rng(4)
  x = rng.normal(size=(1, 30, 40, 16)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 4, 16)).astype(np.float32)
  bias = rng.normal(size=16).astype(np.float32)
  storage = {np.float32: "fp32", np.float16: "fp16"}[dtype]
  got, stats = tf_op.conv2d(x, kernel, bias, dilation=3, relu=True, storage=storage,
                            with_stats=True)
  layer = graph.Layer(name="grouped", kind=graph.CONV, inputs=("x",), in_shapes=((30, 40, 16),),
                      out_shape=(30, 40, 16), kernel_size=(3, 3), dilation=3, groups=4,
                      padding="SAME", relu=True, kernel=kernel, bias=bias)
  network = graph.Network("x", (30, 40, 16), (layer,), {"y": "grouped"}, {"y": (30, 40, 16)})
  # One layer of a larger graph: its output stays in the storage type.
  result = simulator.simulate(network, x[0], dtype, fp32_outputs=False)
  (report,) = result.reports
  assert dict(zip(native.STATS_FIELDS, stats.numpy()[0].tolist())) == {
      "peak_bytes": report.peak_bytes, "tiles": report.tiles,
      "dma_transfers": report.dma_transfers, "dma_in_bytes": report.dma_in_bytes,
      "dma_out_bytes": report.dma_out_bytes, "expand_vectors": 0}
  assert report.tiles > 1 and report.peak_bytes <= memory.SLICE_BYTES
  tolerance = 1e-5 if dtype == np.float32 else 1e-2
  want = result.outputs["y"]
  assert np.abs(got.numpy()[0] - want).max() <= tolerance * float(want.max() - want.min())


def test_whole_inference_network_through_the_op(randomized_inference_model):
  model = randomized_inference_model(0)
  shave = tf_op.with_shave_convolutions(model)
  converted = [layer for layer in shave.layers if isinstance(layer, tf_op.ShaveConv2D)]
  # Every convolution the SHAVE runs (Dense on the pooled vector included).
  convolutions = [layer.name for layer in graph.from_keras(model).layers
                  if layer.kind in (graph.CONV, graph.DEPTHWISE)]
  assert sorted(layer.name for layer in converted) == sorted(convolutions)
  assert len(converted) == 35
  image = np.random.default_rng(0).uniform(0, 1, (1,) + model.input_shape[1:]).astype(np.float32)
  want = {k: v.numpy() for k, v in model(image, training=False).items()}
  for storage, bound in (("fp32", 1e-5), ("fp16", agreement.ERROR_BOUNDS[np.dtype(np.float16)])):
    net = shave if storage == "fp32" else tf_op.with_shave_convolutions(model, storage)
    got = net(image, training=False)
    assert got.keys() == want.keys()
    for key, expected in want.items():
      value_range = float(expected.max() - expected.min())
      assert np.abs(got[key].numpy() - expected).max() <= bound * value_range, (storage, key)


def test_layers_the_slice_or_the_op_cannot_take_are_named():
  x = np.zeros((1, 64, 64, 64), np.float32)
  with pytest.raises(memory.SliceOverflowError, match="even with one-row tiles"):
    tf_op.conv2d(x, np.zeros((5, 5, 64, 64), np.float32), np.zeros(64, np.float32))
  # A tile the op is given that does not fit: the op refuses it, naming its node.
  too_big = tf.function(lambda: tf_op.op_library().shave_conv2d(
      x[:, :8], np.zeros((3, 3, 64, 64), np.float32), np.zeros(64, np.float32), tile_rows=8,
      tile_blocks=16, name="too_big"))
  with pytest.raises(tf.errors.ResourceExhaustedError, match="'too_big' needs .* 131072 bytes"):
    too_big()
  image = keras.Input((8, 8, 4), batch_size=1)
  y = keras.layers.Conv2D(4, 3, activation="sigmoid", name="gate")(image)
  with pytest.raises(ValueError, match="layer 'gate': activation 'sigmoid'"):
    tf_op.with_shave_convolutions(keras.Model(image, y))
