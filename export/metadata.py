"""TFLite metadata of the LiteRT models: what the input and each output mean.

`write(model, name, quant, cfg, version)` takes a converted model that
kept its signature (`convert.strip(..., keep_signature=True)`) and returns it
with TFLite metadata (the `TFLITE_METADATA` entry of the metadata schema,
hand25d/metadata_schema_py_generated.py) and two label files packed after the
flatbuffer as a zip, as tflite-support's and MediaPipe's MetadataPopulator
pack them:

  model        name, description, version, license, min_parser_version
  input        its name (the input mode), meaning and normalisation (from
               hand25d.sensor), image properties (grayscale, H x W), value range
  outputs      in the model's output order: name (the signature's, hand25d.spec's
               output names), meaning, dimension names, and the axis labels
               (KEYPOINT_LABELS_FILE: the score maps' channel names;
               SIDE_LABELS_FILE: the presence logits' hands)
  custom       CUSTOM_METADATA_NAME: JSON for programs (input mode and shape,
               the normalisation's formula and constants, quantization mode,
               output names in order, output stride)

`hand25d.litert.read_metadata` and `litert.packed_files` read them back.
LiteRT ignores metadata; the TensorFlow Lite Micro copies carry none.
"""

import importlib.metadata
import io
import json
import os
from typing import Mapping, Optional
import zipfile

import hand25d
from hand25d import decoding
from hand25d import litert
from hand25d import metadata_schema_py_generated as schema
from hand25d import sensor
from hand25d import spec
from hand25d.model import config as model_config

import flatbuffers
from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.lite.tools import flatbuffer_utils

# The newest schema field written here is SubGraphMetadata.custom_metadata,
# added in metadata schema 1.5.0.
MIN_PARSER_VERSION = "1.5.0"
KEYPOINT_LABELS_FILE = "keypoint_channels.txt"
SIDE_LABELS_FILE = "hand_sides.txt"
CUSTOM_METADATA_NAME = "hand25d"
_QUANT_TEXT = {
    "float32": "float32",
    "int8_ptq": "int8 (post-training quantization; input and outputs int8 with the scale "
                "and zero point of their tensors)",
    "int8_qat": "int8 (quantization-aware training; input and outputs int8 with the scale "
                "and zero point of their tensors)",
}


def _license() -> Optional[str]:
  """The license of the hand25d package (pyproject.toml), None if it is not installed."""
  try:
    meta = importlib.metadata.metadata("hand25d")
  except importlib.metadata.PackageNotFoundError:
    return None
  return meta.get("License-Expression") or meta.get("License")


def normalization(input_mode: str) -> dict:
  """How a raw image becomes the network input: formula, constants and unit (hand25d.sensor)."""
  sensor.check_input_mode(input_mode)
  if input_mode == "amplitude":
    return {"formula": "sqrt(clip(amplitude / full_scale, 0, 1))",
            "full_scale": sensor.AMPLITUDE_FULL_SCALE, "unit": "ADC counts"}
  return {"formula": "clip(depth / full_scale, 0, 1), 0 = invalid",
          "full_scale": sensor.DEPTH_FULL_SCALE_M, "unit": "metres of z-depth"}


def _input(cfg: model_config.ModelConfig, quant: str) -> schema.TensorMetadataT:
  norm = normalization(cfg.input_mode)
  what = ("amplitude image of the time-of-flight sensor" if cfg.input_mode == "amplitude"
          else "z-depth image of the time-of-flight sensor (0 where invalid)")
  quantized = (" The int8 model takes it quantized with the input tensor's scale and zero "
               "point." if quant != "float32" else "")
  tensor = schema.TensorMetadataT()
  tensor.name = cfg.input_mode
  tensor.description = (
      f"The {what}, area-resized to {cfg.input_height}x{cfg.input_width} (height x width), "
      f"then normalised to [0, 1] as {norm['formula']} with full_scale = "
      f"{norm['full_scale']:g} {norm['unit']} (hand25d.sensor.normalize_input).{quantized}")
  tensor.dimensionNames = ["batch", "height", "width", "channel"]
  image = schema.ImagePropertiesT()
  image.colorSpace = schema.ColorSpaceType.GRAYSCALE
  image.defaultSize = schema.ImageSizeT()
  image.defaultSize.width, image.defaultSize.height = cfg.input_width, cfg.input_height
  tensor.content = schema.ContentT()
  tensor.content.contentPropertiesType = schema.ContentProperties.ImageProperties
  tensor.content.contentProperties = image
  tensor.stats = schema.StatsT()
  tensor.stats.min, tensor.stats.max = [0.0], [1.0]
  return tensor


def _labels(name: str, description: str) -> schema.AssociatedFileT:
  labels = schema.AssociatedFileT()
  labels.name, labels.description = name, description
  labels.type = schema.AssociatedFileType.TENSOR_AXIS_LABELS
  return labels


def _output(name: str, cfg: model_config.ModelConfig) -> schema.TensorMetadataT:
  """The metadata of one output of the inference model (network.inference_model)."""
  sides = ", ".join(spec.SIDES)
  tensor = schema.TensorMetadataT()
  tensor.name = name
  if name == spec.KEYPOINTS:
    h, w, c = spec.output_shape(spec.OUTPUT_STRIDE, spec.NUM_PRIMARY_CHANNELS,
                                cfg.input_height, cfg.input_width)
    tensor.description = (
        f"Score-map logits [1, {h}, {w}, {c}] at 1/{spec.OUTPUT_STRIDE} of the input "
        f"resolution: channel side * {spec.NUM_PRIMARY_KEYPOINTS} + k is primary keypoint k "
        f"of hand side ({sides}); {KEYPOINT_LABELS_FILE} names the channels in order. A "
        "keypoint is at the arg-max of its map, moved to the mean position under the "
        f"softmax of logits / {decoding.REFINE_TEMPERATURE:g} over the cells within "
        f"{decoding.REFINE_RADIUS} cells of it on each axis (a window symmetric about the peak, "
        "shrunk near the border); its confidence is the softmax over the map at the arg-max "
        "(hand25d.decoding.decode; with the hand mask, if the model has one).")
    tensor.dimensionNames = ["batch", "height", "width", "channel"]
    tensor.associatedFiles = [_labels(KEYPOINT_LABELS_FILE, "Name (side/keypoint) of each "
                                      "score-map channel, one per line, in channel order.")]
  elif name == spec.PRESENCE:
    tensor.description = (
        f"Hand presence logits [1, {spec.NUM_SIDES}], one per hand ({sides}; "
        f"{SIDE_LABELS_FILE}): the sigmoid of a logit is the probability that the hand "
        "is in the image.")
    tensor.dimensionNames = ["batch", "side"]
    tensor.associatedFiles = [_labels(SIDE_LABELS_FILE, "The hand of each presence logit, one "
                                      "per line, in order.")]
  elif name == spec.HAND_MASK:
    h, w, c = spec.output_shape(spec.HAND_MASK_STRIDE, spec.NUM_SEGMENTATION_CLASSES,
                                cfg.input_height, cfg.input_width)
    tensor.description = (
        f"Hand-mask logits [1, {h}, {w}, {c}] at 1/{spec.HAND_MASK_STRIDE} of the input "
        f"resolution, classes {', '.join(spec.SEGMENTATION_CLASSES)}. Decoding adds "
        f"{decoding.HAND_MASK_WEIGHT:g} times each side's log-probability (floored at "
        f"{decoding.HAND_MASK_FLOOR:g}), bilinearly up-sampled to the score maps, to that "
        "side's score maps for the arg-max only (hand25d.decoding.decode_outputs).")
    tensor.dimensionNames = ["batch", "height", "width", "class"]
  else:
    raise ValueError(f"output {name!r} has no metadata; the inference model outputs "
                     f"{spec.KEYPOINTS!r}, {spec.PRESENCE!r} and {spec.HAND_MASK!r}")
  tensor.content = schema.ContentT()
  tensor.content.contentPropertiesType = schema.ContentProperties.FeatureProperties
  tensor.content.contentProperties = schema.FeaturePropertiesT()
  return tensor


def label_files() -> dict[str, bytes]:
  """The packed label files: the score maps' channel names and the hands, one per line."""
  return {KEYPOINT_LABELS_FILE: "\n".join(spec.channel_names()).encode() + b"\n",
          SIDE_LABELS_FILE: "\n".join(spec.SIDES).encode() + b"\n"}


def model_metadata(name: str, quant: str, cfg: model_config.ModelConfig, version: str,
                   outputs: list[str]) -> schema.ModelMetadataT:
  """The metadata of a converted inference model.

  Args:
    name: the model's name (its file name stem).
    quant: its quantization mode (export.convert.QUANT_MODES).
    cfg: the config of its network (input mode and size, backbone).
    version: the model's version (hand25d's version and the checkpoint).
    outputs: the output names in the model's output order.
  """
  if quant not in _QUANT_TEXT:
    raise ValueError(f"unknown quantization {quant!r}; expected one of {tuple(_QUANT_TEXT)}")
  meta = schema.ModelMetadataT()
  meta.name = name
  meta.description = (
      f"hand25d 2.5D hand pose, {_QUANT_TEXT[quant]}: the {cfg.backbone!r} inference network "
      f"finds {spec.NUM_PRIMARY_KEYPOINTS} keypoints of each hand ({', '.join(spec.SIDES)}) "
      f"as score maps, and whether each hand is present, in one {cfg.input_mode} image of a "
      "time-of-flight camera. Signature 'serving_default'; outputs are logits.")
  meta.version = version
  meta.license = _license()
  meta.minParserVersion = MIN_PARSER_VERSION
  subgraph = schema.SubGraphMetadataT()
  subgraph.name = name
  subgraph.inputTensorMetadata = [_input(cfg, quant)]
  subgraph.outputTensorMetadata = [_output(o, cfg) for o in outputs]
  custom = schema.CustomMetadataT()
  custom.name = CUSTOM_METADATA_NAME
  custom.data = list(json.dumps({
      "input_mode": cfg.input_mode, "input_shape": [1, *cfg.input_shape],
      "normalization": normalization(cfg.input_mode), "quantization": quant,
      "outputs": outputs, "output_stride": spec.OUTPUT_STRIDE,
  }).encode())
  subgraph.customMetadata = [custom]
  meta.subgraphMetadata = [subgraph]
  return meta


def signature_outputs(model: bytes) -> list[str]:
  """The signature name of each output of the model, in the model's output order.

  Raises:
    ValueError: the model has no signature (a stripped copy).
  """
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  if not flat.signatureDefs:
    raise ValueError("the model has no signature (was it stripped?); metadata names its "
                     "outputs by the signature's names")
  by_index = {t.tensorIndex: t.name.decode() for t in flat.signatureDefs[0].outputs}
  return [by_index[i] for i in flat.subgraphs[0].outputs]


def populate(model: bytes, metadata: schema.ModelMetadataT, files: Mapping[str, bytes]) -> bytes:
  """The model with `metadata` as its TFLITE_METADATA entry and `files` packed after it.

  The metadata replaces any the model had. The files form a zip archive
  (stored, not compressed) after the flatbuffer, which LiteRT ignores.
  """
  builder = flatbuffers.Builder(1024)
  builder.Finish(metadata.Pack(builder), litert.METADATA_IDENTIFIER)
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  buffer = tflite_schema.BufferT()
  buffer.data = bytes(builder.Output())
  entries = [m for m in flat.metadata or [] if m.name.decode() == litert.METADATA_NAME]
  if entries:
    flat.buffers[entries[0].buffer] = buffer
  else:
    flat.buffers.append(buffer)
    entry = tflite_schema.MetadataT()
    entry.name, entry.buffer = litert.METADATA_NAME, len(flat.buffers) - 1
    flat.metadata = (flat.metadata or []) + [entry]
  out = io.BytesIO(flatbuffer_utils.convert_object_to_bytearray(flat))
  with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
    for name, data in files.items():
      archive.writestr(name, data)
  return out.getvalue()


def write(model: bytes, name: str, quant: str, cfg: model_config.ModelConfig,
          version: str) -> bytes:
  """The converted model (with its signature) carrying its metadata and label files."""
  meta = model_metadata(name, quant, cfg, version, signature_outputs(model))
  return populate(model, meta, label_files())


def version(checkpoint_prefix: str) -> str:
  """A model's version: hand25d's, and the checkpoint it was exported from (0.1.0+ckpt-870)."""
  return f"{hand25d.__version__}+{os.path.basename(checkpoint_prefix)}"
