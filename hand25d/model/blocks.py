"""Blocks, units and tiers of the hand25d encoder (paper §3, Fig. 1; docs/model_card.md).

A tier concatenates units; a unit combines blocks; a block is Conv-BN-ReLU.

  * Tier-1: one convolution to 16 channels with stride ENCODER_STRIDE / 2
    (aggressive down-sampling: 120x160 -> 30x40).
  * Tier-2: two 131-ConvBlock units (1x1, 3x3, 1x1 Conv-BN-ReLU), the 3x3
    grouped (4 groups); unit 2 takes unit 1's output; the tier output is the
    concatenation of the two units *without* the tier input (32 channels).
  * Transition: 2x2 max pooling to ENCODER_STRIDE (as DenseNet's transition
    layers pool between dense blocks).
  * Tier-3: two Dilated-Ladder units, each a ladder of 4 bottleneck ResNet
    blocks with dilations 1, 2, 3, 4 and grouped (8 groups) 3x3 convolutions;
    the tier output concatenates the units (64 channels at 1/8).

The 1x1 convolutions that enter and leave a grouped 3x3 are dense, as in
ResNeXt: they mix information across the groups, which grouped 1x1s would
keep apart for the whole tier. Every layer gets a stable name derived from
its place in the network, e.g. "tier3_unit2_block4_conv3x3".
"""

import tensorflow as tf
import tf_keras as keras

from hand25d.model import config as config_lib
from hand25d.model import layers


def conv_bn_relu(x: tf.Tensor, filters: int, kernel_size: int, name: str, *,
                 strides: int = 1, groups: int = 1, dilation_rate: int = 1,
                 form: str = "fast", relu: bool = True) -> tf.Tensor:
  """Conv (no bias; grouped if groups > 1) -> BatchNorm -> optional ReLU."""
  if groups > 1:
    x = layers.GroupedConv2D(filters, kernel_size, groups, strides=strides,
                             dilation_rate=dilation_rate, use_bias=False, form=form,
                             name=f"{name}_conv")(x)
  else:
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            dilation_rate=dilation_rate, use_bias=False,
                            kernel_initializer="he_normal", name=f"{name}_conv")(x)
  x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
  if relu:
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
  return x


def conv131_unit(x: tf.Tensor, filters: int, inner: int, groups: int, name: str,
                 form: str) -> tf.Tensor:
  """131-ConvBlock unit: 1x1 -> grouped 3x3 -> 1x1, each Conv-BN-ReLU."""
  x = conv_bn_relu(x, inner, 1, f"{name}_reduce")
  x = conv_bn_relu(x, inner, 3, f"{name}_conv3x3", groups=groups, form=form)
  return conv_bn_relu(x, filters, 1, f"{name}_expand")


def bottleneck_block(x: tf.Tensor, filters: int, inner: int, groups: int, dilation: int,
                     name: str, form: str) -> tf.Tensor:
  """Bottleneck ResNet block with a grouped, dilated 3x3 in the middle.

  The shortcut is the identity when the channel counts match and a 1x1
  Conv-BN projection otherwise.
  """
  shortcut = x
  if x.shape[-1] != filters:
    shortcut = conv_bn_relu(x, filters, 1, f"{name}_project", relu=False)
  x = conv_bn_relu(x, inner, 1, f"{name}_reduce")
  x = conv_bn_relu(x, inner, 3, f"{name}_conv3x3", groups=groups, dilation_rate=dilation,
                   form=form)
  x = conv_bn_relu(x, filters, 1, f"{name}_expand", relu=False)
  x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
  return keras.layers.ReLU(name=f"{name}_relu")(x)


def dilated_ladder_unit(x: tf.Tensor, filters: int, inner: int, groups: int,
                        dilations: tuple[int, ...], name: str, form: str) -> tf.Tensor:
  """A ladder of bottleneck blocks, one per dilation rate."""
  for i, dilation in enumerate(dilations, start=1):
    x = bottleneck_block(x, filters, inner, groups, dilation, f"{name}_block{i}", form)
  return x


def encoder(image: tf.Tensor, config: config_lib.ModelConfig, form: str) -> tf.Tensor:
  """The three-tier encoder: image [B, H, W, 1] -> features [B, H/8, W/8, 64]."""
  x = conv_bn_relu(image, config.tier1_channels, config.tier1_kernel_size, "tier1",
                   strides=config_lib.ENCODER_STRIDE // 2)

  unit_channels = config.tier2_channels // 2
  unit1 = conv131_unit(x, unit_channels, config.tier2_bottleneck, config.tier2_groups,
                       "tier2_unit1", form)
  unit2 = conv131_unit(unit1, unit_channels, config.tier2_bottleneck, config.tier2_groups,
                       "tier2_unit2", form)
  x = keras.layers.Concatenate(name="tier2_concat")([unit1, unit2])

  x = keras.layers.MaxPooling2D(2, name="tier3_pool")(x)
  unit_channels = config.tier3_channels // 2
  unit1 = dilated_ladder_unit(x, unit_channels, config.tier3_bottleneck, config.tier3_groups,
                              config.tier3_dilations, "tier3_unit1", form)
  unit2 = dilated_ladder_unit(unit1, unit_channels, config.tier3_bottleneck,
                              config.tier3_groups, config.tier3_dilations, "tier3_unit2", form)
  return keras.layers.Concatenate(name="tier3_concat")([unit1, unit2])
