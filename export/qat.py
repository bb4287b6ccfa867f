"""Quantization-aware fine-tuning of the inference network (tensorflow-model-optimization).

The QAT model is the inference network with every batch norm folded into the
convolution before it and ReLUs fused into convolutions (`fuse`), so that
the fake-quantized weights are exactly the int8 weights the converter
writes, with fake quantization inserted by tfmot's default 8-bit scheme
(`quantize`). tfmot does not know hand25d's `GroupedConv2D`;
`GroupedConvQuantizeConfig` tells it to quantize the grouped kernel per
output channel (as TFLite quantizes CONV_2D) and the output unless a ReLU
follows (then the ReLU's output is quantized and the converter fuses the
two).

Fine-tuning (`fine_tune`) starts the activation ranges from a calibration
(`calibrate`), then runs the training step of the main loop
(`hand25d.training.step`) on the primary keypoint loss over the real input
pipeline, with grouped convolutions in the fast (block-diagonal) form; the
weights then move into a native-form QAT model (true grouped CONV_2D) for
conversion.
"""

import dataclasses
import re
from typing import Iterable, Optional

from absl import logging
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs)
import tf_keras as keras

# tfmot reaches Keras through tf.keras: it must be tf_keras (the import order
# does not matter, see hand25d/legacy_keras.py).
from hand25d import legacy_keras  # noqa: F401
from hand25d import spec
from hand25d.data import pipeline
from hand25d.model import layers as layers_lib
from hand25d.training import config as train_config
from hand25d.training import distribute
from hand25d.training import step as step_lib

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, layers_lib.GroupedConv2D)


@dataclasses.dataclass(frozen=True)
class QatConfig:
  """The short fine-tuning schedule of quantization-aware training.

  Attributes:
    steps: training steps.
    batch_size: examples per step.
    learning_rate: Adam learning rate at the start, decayed linearly to 0.
    calibration_batches: batches that set the activation ranges before
      fine-tuning (see `calibrate`).
    seed: seeds the data order and augmentation.
    split: the data split to fine-tune on.
  """
  steps: int = 300
  batch_size: int = 16
  learning_rate: float = 1e-4
  calibration_batches: int = 8
  seed: int = 0
  split: str = "train"

  def __post_init__(self):
    for name in ("steps", "batch_size", "calibration_batches"):
      if getattr(self, name) < 1:
        raise ValueError(f"QAT {name} must be >= 1, got {getattr(self, name)}")
    if not self.learning_rate > 0:
      raise ValueError(f"QAT learning_rate must be > 0, got {self.learning_rate}")


class GroupedConvQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
  """8-bit QAT of a `GroupedConv2D`: symmetric kernel, optional output.

  The kernel has one scale (per_channel=False) or one per output channel,
  the kernel's last axis (per_channel=True), as TFLite's int8 CONV_2D takes
  either.
  """

  def __init__(self, quantize_output: bool, per_channel: bool = False):
    self.quantize_output = quantize_output
    self.per_channel = per_channel

  def get_weights_and_quantizers(self, layer):
    quantizer = tfmot.quantization.keras.quantizers.LastValueQuantizer(
        num_bits=8, per_axis=self.per_channel, symmetric=True, narrow_range=True)
    return [(layer.kernel, quantizer)]

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    layer.kernel = quantize_weights[0]

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    if not self.quantize_output:
      return []
    return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

  def get_config(self):
    return {"quantize_output": self.quantize_output, "per_channel": self.per_channel}


class PerTensorConvQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
  """8-bit QAT of a Conv2D or DepthwiseConv2D with one scale for its whole kernel.

  tfmot's default scheme quantizes these kernels per output channel; this is
  the same scheme (symmetric, narrow-range kernel; the output quantized after
  the activation, which the converter fuses) with a per-tensor kernel.
  """

  def get_weights_and_quantizers(self, layer):
    quantizer = tfmot.quantization.keras.quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=True, narrow_range=True)
    return [(_kernel(layer), quantizer)]

  def get_activations_and_quantizers(self, layer):
    quantizer = tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
    return [(layer.activation, quantizer)]

  def set_quantize_weights(self, layer, quantize_weights):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      layer.depthwise_kernel = quantize_weights[0]
    else:
      layer.kernel = quantize_weights[0]

  def set_quantize_activations(self, layer, quantize_activations):
    layer.activation = quantize_activations[0]

  def get_output_quantizers(self, layer):
    return []

  def get_config(self):
    return {}


def _kernel(layer: keras.layers.Layer) -> tf.Variable:
  return layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel


def _consumers(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
  """Layer name -> the layers of `model` that take its output."""
  out = {layer.name: [] for layer in model.layers}
  for layer in model.layers:
    for node in layer.inbound_nodes:
      inbound = node.inbound_layers
      for source in inbound if isinstance(inbound, (list, tuple)) else [inbound]:
        out[source.name].append(layer)
  return out


def _clone(layer: keras.layers.Layer, grouped_form: str, **overrides) -> keras.layers.Layer:
  config = layer.get_config()
  if isinstance(layer, (layers_lib.GroupedConv2D, layers_lib.NearestUpSampling2D)):
    config["form"] = grouped_form
  config.update(overrides)
  return layer.__class__.from_config(config)


def _folded_weights(conv: keras.layers.Layer, bn: keras.layers.BatchNormalization
                    ) -> list[tf.Tensor]:
  """[kernel, bias] of `conv` followed by inference-mode `bn`, as one convolution."""
  scale = bn.gamma if bn.scale else tf.ones_like(bn.moving_mean)
  scale = scale / tf.sqrt(bn.moving_variance + bn.epsilon)
  shift = bn.beta if bn.center else tf.zeros_like(scale)
  if isinstance(conv, keras.layers.DepthwiseConv2D):  # [kh, kw, cin, multiplier].
    kernel = conv.depthwise_kernel
    kernel = kernel * tf.reshape(scale, [1, 1, kernel.shape[2], kernel.shape[3]])
  else:  # [kh, kw, cin / groups, cout].
    kernel = conv.kernel * scale
  bias = conv.bias if conv.use_bias else tf.zeros_like(scale)
  return [kernel, (bias - bn.moving_mean) * scale + shift]


def _is_plain_relu(layer: Optional[keras.layers.Layer]) -> bool:
  return (isinstance(layer, keras.layers.ReLU) and layer.max_value is None
          and not layer.negative_slope and not layer.threshold)


def _sole(consumers: list[keras.layers.Layer]) -> Optional[keras.layers.Layer]:
  return consumers[0] if len(consumers) == 1 else None


def fuse(model: keras.Model, grouped_form: str = "native") -> keras.Model:
  """The same functional model with batch norms (and ReLUs) fused into convolutions.

  A batch norm is folded into the convolution (Conv2D, DepthwiseConv2D or
  GroupedConv2D) before it when that convolution feeds nothing else; the
  folded convolution has a bias and keeps the convolution's name. A plain
  ReLU that alone follows a Conv2D or DepthwiseConv2D (after its batch norm,
  if any) becomes the convolution's activation, as the TFLite converter
  fuses it; tfmot then quantizes the kernel and the output after
  the ReLU. Every other layer is copied with its weights. Grouped
  convolutions take `grouped_form` ("fast" to train, "native" to export).

  Raises:
    ValueError: a batch norm is left that could not be folded.
  """
  consumers = _consumers(model)
  tensors = {}  # id(tensor of `model`) -> tensor of the new model.
  for old_input in model.inputs:
    tensors[id(old_input)] = keras.Input(batch_shape=old_input.shape, dtype=old_input.dtype,
                                         name=old_input.name.split(":")[0])
  absorbed = set()  # Layers fused into the convolution before them.
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer) or layer.name in absorbed:
      continue
    if isinstance(layer, keras.layers.BatchNormalization):
      raise ValueError(f"batch norm {layer.name!r} does not follow a convolution that "
                       "feeds only it; it cannot be folded")
    (node,) = layer.inbound_nodes
    inputs = node.input_tensors
    args = ([tensors[id(t)] for t in inputs] if isinstance(inputs, (list, tuple))
            else tensors[id(inputs)])
    overrides, chain, bn = {}, [layer], None
    if isinstance(layer, _CONVOLUTIONS):
      bn = _sole(consumers[layer.name])
      if isinstance(bn, keras.layers.BatchNormalization):
        overrides["use_bias"] = True
        chain.append(bn)
      else:
        bn = None
      relu = _sole(consumers[chain[-1].name])
      if (_is_plain_relu(relu) and not isinstance(layer, layers_lib.GroupedConv2D)):
        overrides["activation"] = "relu"
        chain.append(relu)
    copy = _clone(layer, grouped_form, **overrides)
    out = copy(args)
    copy.set_weights([w.numpy() for w in _folded_weights(layer, bn)] if bn is not None
                     else layer.get_weights())
    for fused in chain:
      tensors[id(fused.output)] = out
      absorbed.add(fused.name)
  outputs = {name: tensors[id(t)] for name, t in model.output.items()}
  return keras.Model(tensors[id(model.inputs[0])], outputs, name=f"{model.name}_fused")


def quantize(fused: keras.Model, per_channel_weights: bool = False) -> keras.Model:
  """The QAT model of a `fuse`d model: tfmot's 8-bit scheme plus grouped convolutions.

  Convolution kernels get one scale each, or one per output channel with
  `per_channel_weights` (tfmot's default for Conv2D and DepthwiseConv2D).
  """
  consumers = _consumers(fused)

  def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
    if isinstance(layer, layers_lib.GroupedConv2D):
      followed_by_relu = _is_plain_relu(_sole(consumers[layer.name]))
      return tfmot.quantization.keras.quantize_annotate_layer(
          layer, GroupedConvQuantizeConfig(quantize_output=not followed_by_relu,
                                           per_channel=per_channel_weights))
    if isinstance(layer, layers_lib.NearestUpSampling2D):  # As tfmot does UpSampling2D.
      return tfmot.quantization.keras.quantize_annotate_layer(
          layer, default_8bit_quantize_configs.Default8BitOutputQuantizeConfig())
    if (not per_channel_weights
        and type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
      return tfmot.quantization.keras.quantize_annotate_layer(layer,
                                                              PerTensorConvQuantizeConfig())
    return tfmot.quantization.keras.quantize_annotate_layer(layer)

  annotated = keras.models.clone_model(fused, clone_function=annotate)
  with tfmot.quantization.keras.quantize_scope(_custom_objects()):
    return tfmot.quantization.keras.quantize_apply(annotated)


def _custom_objects() -> dict:
  return {**layers_lib.CUSTOM_OBJECTS,
          "GroupedConvQuantizeConfig": GroupedConvQuantizeConfig,
          "PerTensorConvQuantizeConfig": PerTensorConvQuantizeConfig}


# Variables of tfmot's range quantizers: "quant_<layer>/<kind>_min:0", where the
# range is that of the layer's output (after its activation, if any).
_RANGE_VARIABLE = re.compile(r"quant_(.+)/(?:output|post_activation)_(min|max):0")
_INPUT_RANGE_VARIABLE = re.compile(r"quantize_layer/quantize_layer_(min|max):0")


def calibrate(model: keras.Model, fused: keras.Model, images: Iterable[tf.Tensor]) -> None:
  """Sets the activation ranges of QAT `model` from the float `fused` model's outputs.

  tfmot starts every moving-average range at [-6, 6] and moves it by 0.1% per
  training step, so a short fine-tuning schedule would keep ranges that clip
  (keypoint logits exceed 6) or waste levels. This starts each range at the
  min/max (widened to include 0) seen on `images`, as post-training
  calibration does; fine-tuning then moves on from there.
  """
  probe = keras.Model(fused.inputs, {layer.name: layer.output for layer in fused.layers[1:]})
  low, high = {}, {}
  for x in images:
    for name, value in {"": x, **probe(x, training=False)}.items():
      low[name] = min(low.get(name, 0.0), float(tf.reduce_min(value)))
      high[name] = max(high.get(name, 0.0), float(tf.reduce_max(value)))
  for variable in model.non_trainable_variables:
    if match := _RANGE_VARIABLE.fullmatch(variable.name):
      layer, bound = match.groups()
    elif match := _INPUT_RANGE_VARIABLE.fullmatch(variable.name):
      layer, bound = "", match.group(1)  # The network input, keyed "" above.
    else:
      continue
    variable.assign((low if bound == "min" else high)[layer])


def fine_tune(inference: keras.Model, cfg: train_config.TrainConfig, data_dir: str,
              qat: QatConfig, log_every_steps: int = 50,
              per_channel_weights: bool = False) -> keras.Model:
  """Quantization-aware fine-tuning of a trained inference model.

  The activation ranges start from a calibration on qat.calibration_batches
  un-augmented batches (`calibrate`); then qat.steps steps of the training
  step of the main loop run on the primary keypoint loss (and the
  segmentation term, for a hand mask) over augmented batches of `qat.split`.

  Args:
    inference: the float inference network (`network.inference_model`).
    cfg: the training run's config (input size and mode, augmentation, the
      fingertip weighting of the keypoint loss).
    data_dir: the data set to fine-tune on.
    qat: the schedule.
    log_every_steps: log the loss every this many steps.
    per_channel_weights: quantize convolution kernels per output channel
      instead of per tensor (`quantize`).

  Returns:
    The QAT model in native form (true grouped convolutions), ready for
    `export.convert.to_tflite(model, "int8_qat")`; its outputs are named as
    the inference model's.
  """
  keras.utils.set_random_seed(qat.seed)
  strategy = distribute.make_strategy("one_device")
  fused = fuse(inference, grouped_form="fast")

  def batches(training: bool) -> tf.data.Dataset:
    return pipeline.make_dataset(
        data_dir, qat.split, qat.batch_size, input_mode=cfg.model.input_mode,
        training=training, augment_config=None if cfg.augment else pipeline.NO_AUGMENT,
        seed=qat.seed, num_epochs=None, input_height=cfg.model.input_height,
        input_width=cfg.model.input_width)

  with strategy.scope():
    model = quantize(fused, per_channel_weights)
    schedule = keras.optimizers.schedules.PolynomialDecay(
        qat.learning_rate, qat.steps, end_learning_rate=0.0, power=1.0)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.build(model.trainable_variables)
  calibrate(model, fused, (f["image"] for f, _ in batches(False).take(qat.calibration_batches)))
  # The primary keypoint loss, and the segmentation term if the network has a
  # hand mask (at Eq. 1's ratio to the keypoints): the inference network has
  # no other head but presence, whose loss term needs the visibility head.
  seg = cfg.loss.seg / cfg.loss.kp if spec.HAND_MASK in inference.output else 0.0
  weights = dataclasses.replace(cfg.loss, kp=1.0, akp=0.0, kphv=0.0, cho=0.0, dhp=0.0, seg=seg,
                                ds=0.0)
  train_step = step_lib.make_train_step(model, optimizer, strategy, weights, qat.batch_size)
  data = iter(strategy.experimental_distribute_dataset(batches(True).take(qat.steps)))
  for step in range(1, qat.steps + 1):
    out = train_step(next(data))
    if not bool(out["applied"]):
      logging.warning("QAT step %d: non-finite loss or gradient; step skipped", step)
    if step % log_every_steps == 0 or step == qat.steps:
      logging.info("QAT step %d/%d  keypoint loss %.4f", step, qat.steps, float(out["kp"]))
  return to_native(model, inference, per_channel_weights)


def to_native(trained: keras.Model, inference: keras.Model,
              per_channel_weights: bool = False) -> keras.Model:
  """A native-form QAT model of `inference` holding the weights of fast-form `trained`."""
  native = quantize(fuse(inference, grouped_form="native"), per_channel_weights)
  native.set_weights(trained.get_weights())
  return native
