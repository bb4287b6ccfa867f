"""The hand25d network: heads, shapes, budget, switches, inference model."""

import dataclasses

from hand25d import paper
from hand25d import spec
from hand25d.model import config as config_lib
from hand25d.model import flops
from hand25d.model import layers
from hand25d.model import network

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

DEFAULT = config_lib.ModelConfig()
H, W = spec.INPUT_HEIGHT, spec.INPUT_WIDTH
PAPER = paper.TABLE2["ours"]

# Pinned sizes at the default 120x160 input. Changing the architecture must
# change these on purpose (and docs/model_card.md with them).
TRAINING_PARAMS = 114_427
INFERENCE_PARAMS = 40_722
INFERENCE_TRAINABLE_PARAMS = 38_034
INFERENCE_MACS = 13_324_928


@pytest.fixture(scope="module")
def training_model():
  return network.build_training_model(DEFAULT)


def _randomize_batch_norm(model: keras.Model, seed: int = 0) -> None:
  """Non-trivial batch-norm statistics, so that inference-mode BN matters."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])


def test_every_head_has_the_spec_shape(training_model):
  expected = {
      spec.KEYPOINTS: spec.output_shape(spec.OUTPUT_STRIDE, spec.NUM_PRIMARY_CHANNELS),
      spec.AUX_KEYPOINTS: spec.output_shape(spec.OUTPUT_STRIDE, spec.NUM_AUX_CHANNELS),
      spec.VISIBILITY: (spec.NUM_SIDES, spec.NUM_KEYPOINTS),
      spec.PRESENCE: (spec.NUM_SIDES,),
      spec.ORIENTATION: (spec.NUM_SIDES, spec.NUM_ORIENTATION_BINS),
      spec.POSE: (spec.NUM_SIDES, spec.NUM_POSE_CLASSES),
      spec.SEGMENTATION: spec.output_shape(spec.SEGMENTATION_STRIDE,
                                           spec.NUM_SEGMENTATION_CLASSES),
  }
  for stride in spec.DEEP_SUPERVISION_STRIDES:
    expected[spec.deep_supervision_output(stride)] = spec.output_shape(
        stride, spec.NUM_PRIMARY_CHANNELS)
  outputs = training_model(tf.zeros((2, H, W, 1)), training=False)
  assert {k: tuple(v.shape[1:]) for k, v in outputs.items()} == expected
  assert all(v.shape[0] == 2 for v in outputs.values())
  assert set(DEFAULT.output_names()) == set(expected)
  assert training_model.input.name == "amplitude"


def test_parameter_counts_and_budget_are_pinned(training_model):
  assert training_model.count_params() == TRAINING_PARAMS
  model = network.inference_model(DEFAULT)
  assert model.count_params() == INFERENCE_PARAMS
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == INFERENCE_TRAINABLE_PARAMS
  assert flops.total_macs(model) == INFERENCE_MACS
  # The paper's budget (Table 2, docs/model_card.md): about its ~41K parameters (+-10%)
  # and at most its 35 MFLOPs.
  assert abs(INFERENCE_TRAINABLE_PARAMS - PAPER["params"]) <= 0.1 * PAPER["params"]
  assert abs(INFERENCE_PARAMS - PAPER["params"]) <= 0.1 * PAPER["params"]
  assert flops.total_flops(model) <= PAPER["gflops"] * 1e9


def test_encoder_structure_follows_the_paper(training_model):
  def channels(name):
    return training_model.get_layer(name).output.shape[-1]

  def grouped(name):
    return training_model.get_layer(name).groups

  assert channels("tier1_relu") == 16
  assert training_model.get_layer("tier1_relu").output.shape[1:3] == (H // 4, W // 4)
  assert channels("tier2_concat") == 32
  assert channels("tier3_concat") == 64
  assert training_model.get_layer("tier3_concat").output.shape[1:3] == (H // 8, W // 8)
  # The 3x3s of Tiers 2 and 3 are grouped to one channel per group
  # (depthwise; docs/training.md); the paper's 4 and 8 are a config away.
  assert grouped("tier2_unit1_conv3x3_conv") == 16
  assert grouped("tier3_unit2_block4_conv3x3_conv") == 56
  paper_grouping = dataclasses.replace(DEFAULT, tier2_groups=4, tier3_groups=8,
                                       tier3_bottleneck=40)
  model = network.build_training_model(paper_grouping)
  assert model.get_layer("tier2_unit1_conv3x3_conv").groups == 4
  assert model.get_layer("tier3_unit2_block4_conv3x3_conv").groups == 8
  assert [training_model.get_layer(f"tier3_unit1_block{i}_conv3x3_conv").dilation_rate
          for i in range(1, 5)] == [1, 2, 3, 4]
  # The score maps: one group per map, at stride 4 (ModelConfig.score_stride).
  assert grouped("decoder_scores") == spec.NUM_PRIMARY_CHANNELS
  # Tier-2's units are concatenated without the tier input.
  concat_inputs = [t.name for t in training_model.get_layer("tier2_concat").input]
  assert all("tier2_unit" in name for name in concat_inputs)


_OFF_BY_DEFAULT = {"hand_mask"}


@pytest.mark.parametrize("head", [h for h in DEFAULT.heads() if h not in _OFF_BY_DEFAULT])
def test_each_switch_removes_its_head(head, training_model):
  config = dataclasses.replace(DEFAULT, **{head: False})
  model = network.build_training_model(config)
  removed = set(DEFAULT.output_names()) - set(model.output)
  expected = {
      "aux_keypoints": {spec.AUX_KEYPOINTS},
      "visibility_presence": {spec.VISIBILITY, spec.PRESENCE},
      "orientation": {spec.ORIENTATION},
      "pose": {spec.POSE},
      "segmentation": {spec.SEGMENTATION},
      "deep_supervision": {spec.deep_supervision_output(s)
                           for s in spec.DEEP_SUPERVISION_STRIDES},
  }[head]
  assert removed == expected
  assert set(model.output) == set(config.output_names())
  assert model.count_params() < training_model.count_params()


def test_hand_mask_is_a_small_head_on_the_encoder_in_both_models(training_model):
  assert {h for h, on in DEFAULT.heads().items() if not on} == _OFF_BY_DEFAULT
  config = dataclasses.replace(DEFAULT, hand_mask=True)
  model = network.build_training_model(config)
  assert set(model.output) - set(training_model.output) == {spec.HAND_MASK}
  assert set(model.output) == set(config.output_names())
  shape = (spec.NUM_SEGMENTATION_CLASSES,)
  assert tuple(model.output[spec.HAND_MASK].shape[1:]) == spec.output_shape(
      spec.HAND_MASK_STRIDE, *shape)
  head = model.get_layer(spec.HAND_MASK)
  assert head.kernel_size == (1, 1) and head.input.shape[-1] == DEFAULT.tier3_channels
  assert head.count_params() == (DEFAULT.tier3_channels + 1) * shape[0]
  assert not [l for l in model.layers if l.name == f"{spec.HAND_MASK}_hidden"]
  inference = network.inference_model(config, weights_from=model)
  assert set(inference.output) == {spec.KEYPOINTS, spec.PRESENCE, spec.HAND_MASK}
  image = tf.random.stateless_uniform((1, H, W, 1), seed=(3, 4))
  np.testing.assert_allclose(inference(image)[spec.HAND_MASK],
                             model(image, training=False)[spec.HAND_MASK], rtol=1e-4, atol=1e-4)


def test_hand_mask_with_hidden_channels_is_a_1x1_relu_then_a_3x3():
  width = 16
  config = dataclasses.replace(DEFAULT, hand_mask=True, hand_mask_channels=width)
  model = network.build_training_model(config)
  hidden, head = model.get_layer(f"{spec.HAND_MASK}_hidden"), model.get_layer(spec.HAND_MASK)
  assert hidden.kernel_size == (1, 1) and hidden.input.shape[-1] == DEFAULT.tier3_channels
  assert hidden.count_params() == (DEFAULT.tier3_channels + 1) * width
  assert head.kernel_size == (3, 3)
  assert head.count_params() == (9 * width + 1) * spec.NUM_SEGMENTATION_CLASSES
  with pytest.raises(ValueError, match="hand_mask_channels=-1"):
    dataclasses.replace(DEFAULT, hand_mask_channels=-1)


def test_all_heads_off_leaves_the_primary_keypoints():
  off = {head: False for head in DEFAULT.heads()}
  config = dataclasses.replace(DEFAULT, **off)
  model = network.build_training_model(config)
  assert list(model.output) == [spec.KEYPOINTS]
  # Without a trained presence head the inference model has none either.
  inference = network.inference_model(config)
  assert list(inference.output) == [spec.KEYPOINTS]
  assert model.count_params() == inference.count_params()


def test_inference_model_equals_training_model(training_model):
  _randomize_batch_norm(training_model)
  inference = network.inference_model(DEFAULT, weights_from=training_model)
  assert inference.input.shape == (1, H, W, 1)
  assert set(inference.output) == {spec.KEYPOINTS, spec.PRESENCE}
  # Native (true grouped) but the score maps' grouped 1x1 (network.SCORE_FORM).
  assert {layer.name: layer.form for layer in inference.layers
          if hasattr(layer, "form") and layer.form != "native"} == {"decoder_scores": "fast"}
  image = tf.random.stateless_uniform((1, H, W, 1), seed=(7, 8))
  trained = training_model(image, training=False)
  exported = inference(image)
  for name in (spec.KEYPOINTS, spec.PRESENCE):
    np.testing.assert_allclose(exported[name], trained[name], rtol=1e-4, atol=1e-4)
  assert float(tf.math.reduce_std(exported[spec.KEYPOINTS])) > 1e-3


def test_native_form_training_model_equals_fast_form():
  fast_config = config_lib.ModelConfig(input_height=32, input_width=48)
  fast = network.build_training_model(fast_config)
  _randomize_batch_norm(fast, seed=1)
  native = network.build_training_model(dataclasses.replace(fast_config, grouped_form="native"))
  network.transfer_weights(fast, native)
  image = tf.random.stateless_uniform((2, 32, 48, 1), seed=(9, 9))
  expected = fast(image, training=False)
  for name, value in native(image, training=False).items():
    np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-4)


def test_transfer_weights_rejects_a_different_model(training_model):
  other = network.inference_model(dataclasses.replace(DEFAULT, tier1_channels=8))
  with pytest.raises(ValueError, match="weight shapes"):
    network.transfer_weights(training_model, other)
  small = network.build_training_model(dataclasses.replace(DEFAULT, segmentation=False))
  with pytest.raises(ValueError, match="no namesake"):
    network.transfer_weights(small, training_model)


def test_every_weight_gets_a_gradient():
  model = network.build_training_model(config_lib.ModelConfig(input_height=32, input_width=48))
  image = tf.random.stateless_uniform((2, 32, 48, 1), seed=(2, 2))
  with tf.GradientTape() as tape:
    outputs = model(image, training=True)
    loss = tf.add_n([tf.reduce_mean(tf.square(v)) for v in outputs.values()])
  grads = tape.gradient(loss, model.trainable_variables)
  dead = [v.name for v, g in zip(model.trainable_variables, grads)
          if g is None or not np.any(g.numpy())]
  assert not dead


def test_synchronized_batchnorm_keeps_names_and_outputs():
  config = config_lib.ModelConfig(input_height=32, input_width=48)
  plain = network.build_training_model(config)
  synced = network.build_training_model(config, synchronized_batchnorm=True)
  assert [layer.name for layer in synced.layers] == [layer.name for layer in plain.layers]
  norms = [layer for layer in synced.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
  assert norms and all(layer.synchronized for layer in norms)
  network.transfer_weights(plain, synced)
  image = tf.random.stateless_uniform((2, 32, 48, 1), seed=(1, 1))
  for name, value in synced(image, training=True).items():
    np.testing.assert_allclose(value, plain(image, training=True)[name], rtol=1e-4, atol=1e-4)


def test_depth_mode_and_small_inputs():
  config = config_lib.ModelConfig(input_mode="depth", input_height=64, input_width=96)
  model = network.build_training_model(config)
  assert model.input.name == "depth"
  outputs = model(tf.zeros((1, 64, 96, 1)))
  assert outputs[spec.KEYPOINTS].shape == (1, 32, 48, spec.NUM_PRIMARY_CHANNELS)
  assert outputs[spec.deep_supervision_output(8)].shape == (1, 8, 12, spec.NUM_PRIMARY_CHANNELS)


@pytest.mark.parametrize("kwargs,message", [
    (dict(backbone="resnet"), "unknown backbone"),
    (dict(input_mode="rgb"), "unknown input_mode"),
    (dict(grouped_form="slow"), "unknown grouped_form"),
    (dict(pose_from="image"), "unknown pose_from"),
    (dict(hand_head_channels=0), "hand_head_channels=0 must be positive"),
    (dict(input_height=100), "multiple of 8"),
    (dict(tier3_bottleneck=36), "divisible by tier3_groups"),
    (dict(tier2_channels=33), "must be even"),
    (dict(decoder_channels=24), "multiple of the 16 score maps"),
    (dict(decoder_channels=32, decoder_shuffle=3), "divide the decoder's 32 channels"),
    (dict(score_stride=8), "score_stride=8 must be one of"),
])
def test_bad_config_is_explained(kwargs, message):
  with pytest.raises(ValueError, match=message):
    config_lib.ModelConfig(**kwargs)


def _maps_moved_by_the_second_tier3_unit(config: config_lib.ModelConfig) -> np.ndarray:
  """Per primary score map: whether shifting the second Dilated-Ladder unit moves it."""
  keras.utils.set_random_seed(4)
  model = network.inference_model(config, batch_size=2)
  # Batch statistics (training=True) keep every ReLU live on random weights.
  image = np.random.default_rng(0).uniform(0, 1, (2,) + config.input_shape).astype(np.float32)
  before = model(image, training=True)[spec.KEYPOINTS].numpy()
  for layer in model.layers:
    if layer.name.startswith("tier3_unit2") and isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, var = layer.get_weights()
      layer.set_weights([gamma * 2.0, beta + 1.0, mean, var])
  after = model(image, training=True)[spec.KEYPOINTS].numpy()
  return np.abs(after - before).max(axis=(0, 1, 2)) > 1e-6


@pytest.mark.parametrize("kwargs,left_reads_both", [
    (dict(decoder_shuffle=0), False), ({}, True),
    (dict(decoder_shuffle=0, decoder_channels=32), True),
    (dict(decoder_shuffle=0, decoder_channels=16), True)])
def test_which_score_maps_read_the_deeper_tier3_unit(kwargs, left_reads_both):
  config = config_lib.ModelConfig(input_height=32, input_width=48, **kwargs)
  moved = _maps_moved_by_the_second_tier3_unit(config)
  n = spec.NUM_PRIMARY_KEYPOINTS
  assert moved[n:].all()  # The right hand's maps always read it.
  assert moved[:n].all() == left_reads_both and moved[:n].any() == left_reads_both


def test_decoder_channels_narrow_the_decoder_and_keep_the_budget():
  model = network.inference_model(config_lib.ModelConfig(decoder_channels=16, score_stride=2))
  assert model.get_layer("decoder_reduce_conv").output.shape[-1] == 16
  assert model.get_layer("decoder_up2_dwconv").output.shape == (1, 60, 80, 16)
  assert flops.total_flops(model) <= PAPER["gflops"] * 1e9


def test_score_maps_formed_before_the_last_upsampling():
  small = dict(input_height=32, input_width=48)
  wide = network.inference_model(config_lib.ModelConfig(score_stride=2, **small))
  model = network.inference_model(config_lib.ModelConfig(score_stride=4, **small))
  assert model.get_layer("decoder_scores").output.shape == (1, 8, 12, 16)
  assert isinstance(model.get_layer(spec.KEYPOINTS), keras.layers.DepthwiseConv2D)
  assert model.output[spec.KEYPOINTS].shape == (1, 16, 24, 16)
  # No activation at half resolution is wider than the 16 maps.
  half = [layer.output.shape[-1] for layer in model.layers
          if layer.output.shape[1:3] == (16, 24)]
  assert half and max(half) == 16
  assert flops.total_flops(model) < flops.total_flops(wide)
  assert model.count_params() < wide.count_params()
  training = network.build_training_model(config_lib.ModelConfig(score_stride=4, **small))
  assert training.get_layer(spec.deep_supervision_output(2)).input.shape[-1] == 16


def test_hand_geometry_is_each_hands_layout_relative_to_its_wrist():
  # Two hands of 3 keypoints on a 6x8 grid; peaked logits put keypoint k of
  # side s at cells[s][k] (column, row).
  cells = [[(1, 1), (3, 1), (1, 4)], [(7, 5), (5, 5), (7, 3)]]
  maps = np.full((1, 6, 8, 6), -50.0, np.float32)
  for side, hand in enumerate(cells):
    for k, (col, row) in enumerate(hand):
      maps[0, row, col, side * 3 + k] = 50.0
  out = layers.HandKeypointGeometry(2)(maps).numpy()[0]
  # Left: offsets (0,0), (2,0), (0,3) over the largest distance 3.
  np.testing.assert_allclose(out[0], np.array([0, 0, 2, 0, 0, 3]) / 3, atol=2e-3)
  # Right: (0,0), (-2,0), (0,-2) over 2: the same layout at another place and size.
  np.testing.assert_allclose(out[1], np.array([0, 0, -2, 0, 0, -2]) / 2, atol=2e-3)
  # Deserialisable by name, as Keras and tfmot need (layers.CUSTOM_OBJECTS).
  copy = keras.layers.deserialize(keras.layers.serialize(layers.HandKeypointGeometry(2)),
                                  custom_objects=layers.CUSTOM_OBJECTS)
  np.testing.assert_allclose(copy(maps).numpy()[0], out)


def test_pose_and_orientation_can_read_the_keypoint_layout():
  config = dataclasses.replace(DEFAULT, pose_from="keypoints+features", input_height=32,
                               input_width=48)
  model = network.build_training_model(config)
  geometry = model.get_layer("hand_geometry")
  # The auxiliary decoder's 17 keypoints per hand feed it when it is trained.
  assert geometry.output.shape[1:] == (spec.NUM_SIDES, 2 * spec.NUM_KEYPOINTS)
  for name, classes in ((spec.POSE, spec.NUM_POSE_CLASSES),
                        (spec.ORIENTATION, spec.NUM_ORIENTATION_BINS)):
    layer = model.get_layer(name)  # Each side its own weights.
    assert layer.kernel.shape == (spec.NUM_SIDES, DEFAULT.hand_head_channels, classes)
  # Without it, the 8 primary keypoints per hand.
  model = network.build_training_model(dataclasses.replace(config, aux_keypoints=False))
  assert model.get_layer("hand_geometry").output.shape[1:] == (
      spec.NUM_SIDES, 2 * spec.NUM_PRIMARY_KEYPOINTS)


def test_default_pose_and_orientation_heads_read_the_pooled_features(training_model):
  assert training_model.get_layer(f"{spec.POSE}_dense").kernel.shape == (
      64, 2 * spec.NUM_POSE_CLASSES)
  assert "hand_geometry" not in [layer.name for layer in training_model.layers]


def test_keypoints_plus_features_train_the_encoder_not_the_maps():
  config = dataclasses.replace(DEFAULT, pose_from="keypoints+features", input_height=32,
                               input_width=48)
  model = network.build_training_model(config)
  image = tf.random.stateless_uniform((2, 32, 48, 1), seed=(3, 4))
  with tf.GradientTape(persistent=True) as tape:
    pose = model(image, training=True)[spec.POSE]
  aux = model.get_layer("aux_decoder_conv1_conv").kernel
  assert tape.gradient(pose, aux) is None  # The layout is read without a gradient.
  assert float(tf.norm(tape.gradient(pose, model.get_layer("tier1_conv").kernel))) > 0
