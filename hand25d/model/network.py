"""The hand25d network: encoder, lean decoder, training heads, inference model.

`build_training_model(config)` returns a Keras functional model whose output
is a dict keyed by the `hand25d.spec` output names (all logits):

  keypoints        [B, H/2, W/2, 16]  primary score maps (channel-wise decoder)
  aux_keypoints    [B, H/2, W/2, 34]  all 17 keypoints per hand (dense decoder)
  visibility       [B, 2, 17]         per-keypoint visibility
  presence         [B, 2]             per-hand presence
  orientation      [B, 2, 8]          hand roll bins (ModelConfig.pose_from)
  pose             [B, 2, 9]          discrete pose classes (ModelConfig.pose_from)
  segmentation     [B, H/2, W/2, 3]   BiSeNet-style spatial path + fusion
  ds_keypoints_s8/_s4/_s2             deep supervision, 16 maps each
  hand_mask        [B, H/8, W/8, 3]   coarse segmentation for decoding

Each head but the primary keypoints can be switched off in the config.

`inference_model(config, weights_from=...)` builds the deployable network
(encoder, primary decoder and, if configured, the presence and hand-mask
heads) with true
grouped convolutions at batch 1 and copies the weights of a training model
into it by layer name.
"""

from typing import Optional

import tensorflow as tf
import tf_keras as keras

from hand25d import spec
from hand25d.model import baselines
from hand25d.model import blocks
from hand25d.model import config as config_lib
from hand25d.model import layers

# Output stride of each decoder stage, coarse to fine: the encoder output, the
# first up-sampling and the second; the last is the primary output's stride.
DECODER_STRIDES = spec.DEEP_SUPERVISION_STRIDES
assert DECODER_STRIDES[0] == config_lib.ENCODER_STRIDE
assert DECODER_STRIDES[-1] == spec.OUTPUT_STRIDE == spec.SEGMENTATION_STRIDE


def features(image: tf.Tensor, config: config_lib.ModelConfig, form: str) -> tf.Tensor:
  """Encoder features at ENCODER_STRIDE of the configured backbone."""
  if config.backbone == "ours":
    return blocks.encoder(image, config, form)
  return baselines.backbone_features(image, config)


# The grouped 1x1 that forms the score maps (one group per map, 4 input
# channels each) is built in the fast form in every model, the exported
# float32 and int8 PTQ ones too: as a dense 1x1 with a block-diagonal kernel
# XNNPACK runs it twice as fast as a grouped CONV_2D, which it runs at 2.5
# GFLOP/s (docs/export.md, "Latency"). The weights are the grouped layer's
# either way. The int8 QAT model is built with it grouped (export/qat.py sets
# every grouped layer's form): its fake-quantized kernel must be what the
# convolution reads, not a block-diagonal expansion of it. The exporter then
# makes the converted 1x1 dense (export/convert.py, dense_pointwise_groups).
SCORE_FORM = "fast"


def channel_shuffle(x: tf.Tensor, groups: int, name: str) -> tf.Tensor:
  """ShuffleNet's channel shuffle: channel g * (C / groups) + i -> i * groups + g.

  [B, H, W, C] -> the same shape with the channels of the `groups` blocks
  interleaved (RESHAPE, TRANSPOSE, RESHAPE in TFLite).
  """
  h, w, c = x.shape[1], x.shape[2], x.shape[3]
  x = keras.layers.Reshape((h * w, groups, c // groups), name=f"{name}_split")(x)
  x = keras.layers.Permute((1, 3, 2), name=f"{name}_transpose")(x)
  return keras.layers.Reshape((h, w, c), name=f"{name}_merge")(x)


def primary_decoder(x: tf.Tensor, form: str, shuffle: int, channels: int, score_stride: int
                    ) -> tuple[tf.Tensor, dict[int, tf.Tensor]]:
  """Lean channel-wise decoder: features at 1/8 -> primary score maps at 1/2.

  With `channels`, a dense 1x1 Conv-BN-ReLU first maps the features to that
  many channels (ModelConfig.decoder_channels); with `shuffle`, a channel
  shuffle of that many blocks interleaves them (ModelConfig.decoder_shuffle).
  Each up-sampling stage is nearest-neighbour x2 (layers.NearestUpSampling2D:
  RESHAPE and CONCATENATION in TFLite) followed by a depthwise 3x3
  convolution. The 16 score maps come
  from a 1x1 convolution with one group per map, at `score_stride`
  (ModelConfig.score_stride):

  - at the output stride (2), it is the last layer and every up-sampling
    stage is a depthwise Conv-BN-ReLU on the decoder's channels;
  - at a coarser stride it is a grouped Conv-BN-ReLU there, and the stages
    after it up-sample the 16 maps alone; the last depthwise 3x3 (with a
    bias) gives the logits.

  Returns:
    (keypoint logits [B, H/2, W/2, 16], {stride: decoder feature map}) where
    the map at each stride of DECODER_STRIDES feeds a deep-supervision head.
  """
  if score_stride not in DECODER_STRIDES[1:]:
    raise ValueError(f"score_stride={score_stride} must be one of {DECODER_STRIDES[1:]}")
  taps = {DECODER_STRIDES[0]: x}
  if channels:
    x = blocks.conv_bn_relu(x, channels, 1, "decoder_reduce")
  if shuffle > 1:
    x = channel_shuffle(x, shuffle, "decoder_shuffle")
  for i, stride in enumerate(DECODER_STRIDES[1:], start=1):
    name = f"decoder_up{i}"
    x = layers.NearestUpSampling2D(form, name=f"{name}_upsample")(x)
    if stride < score_stride and stride == DECODER_STRIDES[-1]:  # The maps, up-sampled.
      taps[stride] = x
      keypoints = keras.layers.DepthwiseConv2D(3, padding="same", name=spec.KEYPOINTS)(x)
      return keypoints, taps
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                     name=f"{name}_dwconv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    taps[stride] = x
    if stride == score_stride and stride != DECODER_STRIDES[-1]:
      x = layers.GroupedConv2D(spec.NUM_PRIMARY_CHANNELS, 1, spec.NUM_PRIMARY_CHANNELS,
                               form=SCORE_FORM, use_bias=False, name="decoder_scores")(x)
      x = keras.layers.BatchNormalization(name="decoder_scores_bn")(x)
      x = keras.layers.ReLU(name="decoder_scores_relu")(x)
  keypoints = layers.GroupedConv2D(spec.NUM_PRIMARY_CHANNELS, 1, spec.NUM_PRIMARY_CHANNELS,
                                   form=SCORE_FORM, name=spec.KEYPOINTS)(x)
  return keypoints, taps


def _presence(pooled: tf.Tensor) -> tf.Tensor:
  return keras.layers.Dense(spec.NUM_SIDES, name=spec.PRESENCE)(pooled)


def _per_hand_dense(pooled: tf.Tensor, classes: int, name: str) -> tf.Tensor:
  """pose_from="features" (and visibility): [B, C] -> [B, NUM_SIDES, classes], one dense layer."""
  x = keras.layers.Dense(spec.NUM_SIDES * classes, name=f"{name}_dense")(pooled)
  return keras.layers.Reshape((spec.NUM_SIDES, classes), name=name)(x)


def hand_geometry_heads(maps: tf.Tensor, pooled: tf.Tensor, channels: int) -> tf.Tensor:
  """pose_from="keypoints+features": each hand's keypoint layout and the pooled features.

  The layout (layers.HandKeypointGeometry) is read without a gradient, so the
  pose and orientation losses train the encoder through the pooled features,
  as the "features" heads do, and leave the maps to their own losses.

  Args:
    maps: score-map logits, [B, H, W, NUM_SIDES * keypoints per hand].
    pooled: the global average of the encoder output, [B, C].
    channels: width of each side's two hidden layers (ReLU).

  Returns:
    [B, NUM_SIDES, channels].
  """
  layout = layers.HandKeypointGeometry(spec.NUM_SIDES, name="hand_geometry")(
      tf.stop_gradient(maps))
  context = keras.layers.RepeatVector(spec.NUM_SIDES, name="hand_context")(pooled)
  x = keras.layers.Concatenate(name="hand_concat")([layout, context])
  for i in (1, 2):
    x = keras.layers.EinsumDense("bsc,sck->bsk", (spec.NUM_SIDES, channels), bias_axes="sk",
                                 activation="relu", name=f"hand_hidden{i}")(x)
  return x


def _per_side_classifier(hands: tf.Tensor, classes: int, name: str) -> tf.Tensor:
  """[B, NUM_SIDES, K] -> [B, NUM_SIDES, classes] logits, each side its own weights."""
  return keras.layers.EinsumDense("bsk,skc->bsc", (spec.NUM_SIDES, classes),
                                  bias_axes="sc", name=name)(hands)


def _aux_decoder(x: tf.Tensor, channels: int) -> tf.Tensor:
  """Dense (not grouped) decoder for all 17 keypoints per hand, 1/8 -> 1/2."""
  x = blocks.conv_bn_relu(x, channels, 3, "aux_decoder_conv1")
  x = keras.layers.UpSampling2D(2, interpolation="nearest", name="aux_decoder_upsample")(x)
  x = blocks.conv_bn_relu(x, channels, 3, "aux_decoder_conv2")
  # A learned x2 up-sampling to the output stride keeps the score maps from
  # being constant over 2x2 blocks.
  return keras.layers.Conv2DTranspose(spec.NUM_AUX_CHANNELS, 3, strides=2, padding="same",
                                      name=spec.AUX_KEYPOINTS)(x)


def _segmentation(image: tf.Tensor, context: tf.Tensor,
                  config: config_lib.ModelConfig) -> tf.Tensor:
  """BiSeNet-style segmentation: spatial path + feature fusion module.

  The spatial path (three Conv-BN-ReLU, strides 2, 2, 1) keeps detail at 1/4;
  the encoder is the context path, up-sampled to 1/4. The feature fusion
  module concatenates both, mixes them with a 1x1 Conv-BN-ReLU and reweights
  the channels with a squeeze-and-excitation attention (x + x * attention).
  """
  c = config.spatial_path_channels
  s = blocks.conv_bn_relu(image, c // 2, 3, "spatial_path1", strides=2)
  s = blocks.conv_bn_relu(s, c, 3, "spatial_path2", strides=2)
  s = blocks.conv_bn_relu(s, c, 3, "spatial_path3")
  context = keras.layers.UpSampling2D(2, interpolation="bilinear",
                                      name="fusion_context_upsample")(context)
  x = keras.layers.Concatenate(name="fusion_concat")([s, context])
  x = blocks.conv_bn_relu(x, config.fusion_channels, 1, "fusion")
  attention = keras.layers.GlobalAveragePooling2D(keepdims=True, name="fusion_pool")(x)
  attention = keras.layers.Conv2D(config.fusion_channels, 1, activation="relu",
                                  name="fusion_attention1")(attention)
  attention = keras.layers.Conv2D(config.fusion_channels, 1, activation="sigmoid",
                                  name="fusion_attention2")(attention)
  weighted = keras.layers.Multiply(name="fusion_reweight")([x, attention])
  x = keras.layers.Add(name="fusion_add")([x, weighted])
  logits = keras.layers.Conv2D(spec.NUM_SEGMENTATION_CLASSES, 1,
                               name="segmentation_classifier")(x)
  return keras.layers.UpSampling2D(2, interpolation="bilinear", name=spec.SEGMENTATION)(logits)


def _hand_mask(x: tf.Tensor, config: config_lib.ModelConfig) -> tf.Tensor:
  """Coarse segmentation logits at the encoder's stride: [B, H/8, W/8, 3] (ModelConfig.hand_mask).

  A 1x1 convolution on the encoder output; with hand_mask_channels, a 1x1
  Conv-ReLU to that many channels and then a 3x3 convolution.
  """
  if not config.hand_mask_channels:
    return keras.layers.Conv2D(spec.NUM_SEGMENTATION_CLASSES, 1, name=spec.HAND_MASK)(x)
  x = keras.layers.Conv2D(config.hand_mask_channels, 1, activation="relu",
                          name=f"{spec.HAND_MASK}_hidden")(x)
  return keras.layers.Conv2D(spec.NUM_SEGMENTATION_CLASSES, 3, padding="same",
                             name=spec.HAND_MASK)(x)


def build_training_model(config: config_lib.ModelConfig,
                         synchronized_batchnorm: bool = False) -> keras.Model:
  """The multi-task training model; outputs a dict keyed by spec output names.

  Args:
    config: what to build.
    synchronized_batchnorm: make every BatchNormalization (the baselines'
      included) compute batch statistics across replicas, for multi-replica
      training under a tf.distribute strategy. Names and weights are as
      without it.
  """
  image = keras.Input(config.input_shape, name=config.input_mode)
  x = features(image, config, config.grouped_form)
  keypoints, taps = primary_decoder(x, config.grouped_form, config.decoder_shuffle,
                                    config.decoder_channels, config.score_stride)
  outputs = {spec.KEYPOINTS: keypoints}
  if config.aux_keypoints:
    outputs[spec.AUX_KEYPOINTS] = _aux_decoder(x, config.aux_decoder_channels)
  if config.visibility_presence or config.orientation or config.pose:
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if config.pose_from == "keypoints+features" and (config.orientation or config.pose):
      # The 17 keypoints per hand if the auxiliary decoder is trained, else the 8 primary.
      maps = outputs.get(spec.AUX_KEYPOINTS, keypoints)
      hands = hand_geometry_heads(maps, pooled, config.hand_head_channels)
      hand_head = lambda classes, name: _per_side_classifier(hands, classes, name)
    else:
      hand_head = lambda classes, name: _per_hand_dense(pooled, classes, name)
    if config.visibility_presence:
      outputs[spec.VISIBILITY] = _per_hand_dense(pooled, spec.NUM_KEYPOINTS, spec.VISIBILITY)
      outputs[spec.PRESENCE] = _presence(pooled)
    if config.orientation:
      outputs[spec.ORIENTATION] = hand_head(spec.NUM_ORIENTATION_BINS, spec.ORIENTATION)
    if config.pose:
      outputs[spec.POSE] = hand_head(spec.NUM_POSE_CLASSES, spec.POSE)
  if config.segmentation:
    outputs[spec.SEGMENTATION] = _segmentation(image, x, config)
  if config.hand_mask:
    outputs[spec.HAND_MASK] = _hand_mask(x, config)
  if config.deep_supervision:
    for stride in DECODER_STRIDES:
      name = spec.deep_supervision_output(stride)
      outputs[name] = keras.layers.Conv2D(spec.NUM_PRIMARY_CHANNELS, 1, name=name)(taps[stride])
  model = keras.Model(image, outputs, name=f"hand25d_{config.backbone}_training")
  _set_batchnorm_momentum(model, config.batchnorm_momentum)
  if synchronized_batchnorm:
    model = keras.models.clone_model(model, clone_function=_synchronized_clone)
  return model


def _set_batchnorm_momentum(model: keras.Model, momentum: float) -> None:
  """Sets the moving-statistics momentum of every BatchNormalization in `model`.

  Done after building so that it reaches the keras.applications baselines'
  layers too; it takes effect because no layer has been called in training
  mode yet.
  """
  for layer in model.submodules:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = momentum


def _synchronized_clone(layer: keras.layers.Layer) -> keras.layers.Layer:
  """A fresh copy of `layer`; batch norms become cross-replica synchronized."""
  layer_config = layer.get_config()
  if isinstance(layer, keras.layers.BatchNormalization):
    layer_config.pop("fused", None)  # Synchronized batch norm is never fused.
    return keras.layers.BatchNormalization(synchronized=True, **layer_config)
  return layer.__class__.from_config(layer_config)


def inference_model(config: config_lib.ModelConfig,
                    weights_from: Optional[keras.Model] = None,
                    batch_size: int = 1) -> keras.Model:
  """The deployable network: image -> {keypoints[, presence][, hand_mask]}.

  Only the encoder, the primary decoder, the presence head (if
  config.exports_presence) and the hand mask (if config.hand_mask); grouped convolutions in their native (true grouped)
  form whatever config.grouped_form says, but for the score maps' 1x1
  (SCORE_FORM), batch fixed for export.

  Args:
    config: the model config (the training heads' switches are ignored).
    weights_from: a training (or inference) model of the same config whose
      weights are copied in by layer name; None leaves fresh weights.
    batch_size: static batch size of the input.

  Returns:
    A Keras model returning {spec.KEYPOINTS: [B, H/2, W/2, 16]} plus
    {spec.PRESENCE: [B, 2]} if config.exports_presence and
    {spec.HAND_MASK: [B, H/8, W/8, 3]} if config.hand_mask.
  """
  image = keras.Input(config.input_shape, batch_size=batch_size, name=config.input_mode)
  x = features(image, config, "native")
  keypoints, _ = primary_decoder(x, "native", config.decoder_shuffle,
                                 config.decoder_channels, config.score_stride)
  outputs = {spec.KEYPOINTS: keypoints}
  if config.exports_presence:
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs[spec.PRESENCE] = _presence(pooled)
  if config.hand_mask:
    outputs[spec.HAND_MASK] = _hand_mask(x, config)
  model = keras.Model(image, outputs, name=f"hand25d_{config.backbone}_inference")
  if weights_from is not None:
    transfer_weights(weights_from, model)
  return model


def transfer_weights(source: keras.Model, target: keras.Model) -> None:
  """Copies into every weighted layer of `target` the weights of its namesake in `source`.

  Grouped convolutions keep the same weights in both forms, so this moves a
  trained fast-form model into the native export form (and back).

  Raises:
    ValueError: if a layer of `target` has no namesake in `source` or the
      weight shapes differ.
  """
  source_layers = {layer.name: layer for layer in source.layers}
  for layer in target.layers:
    if not layer.weights:
      continue
    if layer.name not in source_layers:
      raise ValueError(f"layer {layer.name!r} of {target.name!r} has no namesake in "
                       f"{source.name!r}; were both built from the same config?")
    weights = source_layers[layer.name].get_weights()
    expected = [w.shape for w in layer.get_weights()]
    if [w.shape for w in weights] != expected:
      raise ValueError(f"layer {layer.name!r}: weight shapes {[w.shape for w in weights]} "
                       f"in {source.name!r} but {expected} in {target.name!r}")
    layer.set_weights(weights)
