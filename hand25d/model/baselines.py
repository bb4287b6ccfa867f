"""Table-2 baselines: keras.applications backbones under the hand25d decoder and heads.

MobileNetV2 and DenseNet-121 are built with `weights=None` (random init) on
the one-channel network input, `include_top=False`, their layers inlined into
the hand25d model (stable keras.applications layer names). Their stride-32
feature map is adapted to what the lean decoder expects, 64 channels at
ENCODER_STRIDE, by a 1x1 Conv-BN-ReLU and a nearest-neighbour resize; the
decoder and all heads are then exactly those of the "ours" backbone.

MobileNetV2's features are taken before its last 1x1 convolution (320 ->
1280 channels, which only feeds the ImageNet classifier), as dense-prediction
uses of MobileNetV2 such as DeepLabv3 do; DenseNet-121 is used whole.
"""

import tensorflow as tf
import tf_keras as keras

from hand25d.model import config as config_lib

# Channels of the feature map handed to the decoder (Tier-3 width of "ours").
ADAPTER_CHANNELS = config_lib.ModelConfig().tier3_channels

_APPLICATIONS = {
    "mobilenet_v2": keras.applications.MobileNetV2,
    "densenet121": keras.applications.DenseNet121,
}
# Layer whose output is the backbone's feature map (None: the model output).
_FEATURE_LAYER = {"mobilenet_v2": "block_16_project_BN", "densenet121": None}


def backbone_features(image: tf.Tensor, config: config_lib.ModelConfig) -> tf.Tensor:
  """Baseline backbone: image [B, H, W, 1] -> features [B, H/8, W/8, 64]."""
  if config.backbone not in _APPLICATIONS:
    raise ValueError(f"{config.backbone!r} is not a keras.applications baseline; "
                     f"expected one of {tuple(_APPLICATIONS)}")
  application = _APPLICATIONS[config.backbone](
      input_tensor=image, include_top=False, weights=None)
  feature_layer = _FEATURE_LAYER[config.backbone]
  x = application.get_layer(feature_layer).output if feature_layer else application.output
  x = keras.layers.Conv2D(ADAPTER_CHANNELS, 1, use_bias=False, name="adapter_conv")(x)
  x = keras.layers.BatchNormalization(name="adapter_bn")(x)
  x = keras.layers.ReLU(name="adapter_relu")(x)
  size = (config.input_height // config_lib.ENCODER_STRIDE,
          config.input_width // config_lib.ENCODER_STRIDE)
  return keras.layers.Resizing(*size, interpolation="nearest", name="adapter_resize")(x)
