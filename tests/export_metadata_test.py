"""The LiteRT model keeps its signature and carries TFLite metadata; the TFLM copy carries none."""

import dataclasses
import importlib.metadata
import json

from export import convert
from export import metadata
from hand25d import litert
from hand25d import sensor
from hand25d import spec
from hand25d.model import config as config_lib
from hand25d.runtime import inference

import numpy as np
import pytest
from tensorflow.lite.tools import flatbuffer_utils

CONFIG = config_lib.ModelConfig()
VERSION = "0.1.0+ckpt-7"


@pytest.fixture(scope="module")
def models(randomized_inference_model):
  """(Keras inference model, LiteRT model with metadata, TFLM copy) of one float32 conversion."""
  model = randomized_inference_model(0)
  converted = convert.to_tflite(model, "float32")
  with_metadata = metadata.write(convert.strip(converted, keep_signature=True),
                                 "hand25d_float32", "float32", CONFIG, VERSION)
  return model, with_metadata, convert.strip(converted)


@pytest.fixture(scope="module")
def image():
  rng = np.random.default_rng(1)
  return rng.uniform(0, 1, (1,) + CONFIG.input_shape).astype(np.float32)


def test_metadata_reads_back(models):
  _, model_bytes, _ = models
  meta = litert.read_metadata(model_bytes)
  assert meta["name"] == "hand25d_float32" and meta["version"] == VERSION
  assert meta["license"] == importlib.metadata.metadata("hand25d")["License-Expression"]
  assert meta["min_parser_version"] == metadata.MIN_PARSER_VERSION
  assert "float32" in meta["description"] and "'ours'" in meta["description"]
  (subgraph,) = meta["subgraph_metadata"]
  (image_input,) = subgraph["input_tensor_metadata"]
  assert image_input["name"] == CONFIG.input_mode
  assert f"full_scale = {sensor.AMPLITUDE_FULL_SCALE:g} ADC counts" in image_input["description"]
  assert image_input["content"]["content_properties"] == {
      "color_space": "GRAYSCALE",
      "default_size": {"width": CONFIG.input_width, "height": CONFIG.input_height}}
  assert image_input["stats"] == {"min": [0.0], "max": [1.0]}
  # Outputs in the model's order, named as its signature names them.
  lite = litert.LiteRtModel(model_bytes)
  names = [t["name"] for t in subgraph["output_tensor_metadata"]]
  indices = lite.interpreter._get_full_signature_list()[convert.SERVING_SIGNATURE]["outputs"]  # pylint: disable=protected-access
  assert [indices[n] for n in names] == [d["index"] for d in lite.outputs]
  assert sorted(names) == sorted([spec.KEYPOINTS, spec.PRESENCE])
  (custom,) = subgraph["custom_metadata"]
  assert custom["name"] == metadata.CUSTOM_METADATA_NAME
  custom = json.loads(custom["data"])
  assert custom["normalization"]["full_scale"] == sensor.AMPLITUDE_FULL_SCALE
  assert custom["outputs"] == names and custom["output_stride"] == spec.OUTPUT_STRIDE


def test_label_files_name_the_channels_and_hands(models):
  _, model_bytes, _ = models
  files = litert.packed_files(model_bytes)
  outputs = litert.read_metadata(model_bytes)["subgraph_metadata"][0]["output_tensor_metadata"]
  labels = {t["name"]: t["associated_files"][0] for t in outputs}
  assert {f["type"] for f in labels.values()} == {"TENSOR_AXIS_LABELS"}
  assert set(files) == {f["name"] for f in labels.values()}
  channels = files[labels[spec.KEYPOINTS]["name"]].decode().splitlines()
  assert channels == list(spec.channel_names())
  assert channels[spec.primary_channel("right", "thumb_tip")] == "right/thumb_tip"
  assert files[labels[spec.PRESENCE]["name"]].decode().splitlines() == list(spec.SIDES)


def test_litert_model_keeps_its_signature_and_computes_the_keras_outputs(models, image):
  model, model_bytes, _ = models
  lite = litert.LiteRtModel(model_bytes)
  (signature,) = lite.interpreter.get_signature_list().items()
  assert signature[0] == convert.SERVING_SIGNATURE
  assert signature[1]["inputs"] == [CONFIG.input_mode]
  assert sorted(signature[1]["outputs"]) == sorted([spec.KEYPOINTS, spec.PRESENCE])
  runner = lite.interpreter.get_signature_runner(convert.SERVING_SIGNATURE)
  got = runner(**{CONFIG.input_mode: image})
  for name, expected in model(image, training=False).items():
    np.testing.assert_allclose(got[name], expected, atol=1e-4 * np.abs(expected).max())


def test_tflm_copy_has_no_metadata_signature_or_names_and_computes_the_same(models, image):
  _, model_bytes, micro_bytes = models
  assert litert.read_metadata(micro_bytes) is None and litert.packed_files(micro_bytes) == {}
  lite, micro = litert.LiteRtModel(model_bytes), litert.LiteRtModel(micro_bytes)
  assert micro.interpreter.get_signature_list() == {}
  assert all(not t["name"] for t in micro.interpreter.get_tensor_details())
  # The signature, its tensors' names and the metadata, and nothing else.
  assert len(micro_bytes) < len(model_bytes) < len(micro_bytes) + 8_000
  names = {name: tuple(shape) for name, shape in
           inference.expected_outputs(CONFIG.input_height, CONFIG.input_width).items()}
  expected = lite([image], names)
  outputs = litert.tflm_run(micro_bytes, [image], 8 << 20, num_outputs=len(micro.outputs))
  for value, detail in zip(outputs, lite.outputs):
    name = next(n for n, shape in names.items() if shape == tuple(detail["shape"]))
    np.testing.assert_allclose(value, expected[name], atol=1e-5 * np.abs(expected[name]).max())


@pytest.mark.parametrize("backend", inference.BACKENDS)
def test_runtime_runs_the_model_with_metadata_unchanged(models, backend):
  _, model_bytes, micro_bytes = models
  amplitude = np.random.default_rng(2).uniform(0, 1500, (240, 320)).astype(np.float32)
  got = inference.TfliteModel(model_bytes, (240, 320), backend=backend).infer(amplitude)
  expected = inference.TfliteModel(micro_bytes, (240, 320), backend=backend).infer(amplitude)
  assert set(got) == {spec.KEYPOINTS, spec.PRESENCE}
  for name in got:
    np.testing.assert_array_equal(got[name], expected[name])


def test_writing_again_replaces_the_metadata(models):
  _, model_bytes, _ = models
  again = metadata.write(model_bytes, "hand25d_float32", "float32", CONFIG, "0.2.0+ckpt-9")
  meta = litert.read_metadata(again)
  assert meta["version"] == "0.2.0+ckpt-9"
  assert litert.packed_files(again) == litert.packed_files(model_bytes)
  entries = flatbuffer_utils.read_model_from_bytearray(bytearray(again)).metadata
  assert [e.name.decode() for e in entries].count(litert.METADATA_NAME) == 1


def test_depth_input_is_described_with_its_own_normalisation():
  depth = dataclasses.replace(CONFIG, input_mode="depth")
  meta = metadata.model_metadata("m", "int8_qat", depth, VERSION, [spec.KEYPOINTS])
  (tensor,) = meta.subgraphMetadata[0].inputTensorMetadata
  assert tensor.name == "depth"
  assert f"full_scale = {sensor.DEPTH_FULL_SCALE_M:g} metres" in tensor.description
  assert "quantized with the input tensor's scale and zero point" in tensor.description
  assert metadata.normalization("depth")["full_scale"] == sensor.DEPTH_FULL_SCALE_M


def test_unknown_output_and_stripped_model_are_refused(models):
  _, _, micro_bytes = models
  with pytest.raises(ValueError, match="output 'pose' has no metadata"):
    metadata.model_metadata("m", "float32", CONFIG, VERSION, [spec.POSE])
  with pytest.raises(ValueError, match="the model has no signature"):
    metadata.write(micro_bytes, "m", "float32", CONFIG, VERSION)
