"""The amplitude path's network: an exported .tflite model in LiteRT or TFLM.

`TfliteModel` loads a model exported from `network.inference_model`, checks
its signature, feeds it exactly as training does (area resize of the
amplitude to the model's input size, then `sensor.normalize_input`) and
decodes its score maps to sensor pixels. The sensor's frames may have any
size: the area resize averages over the exact footprint of each input pixel,
and the keypoints are mapped back to the frame's pixels. The runtime pipeline talks to it
through two calls, `infer` (amplitude -> raw outputs) and `decode` (raw
outputs -> keypoints), so that the early out on hand presence can skip
decoding, and so that a benchmark can put another network in its place.

Expected signature (outputs are matched by shape; the TFLite tensor names
are not stable across converters):
  input      [1, h, w, 1] amplitude (float32, or int8 with quantization)
  keypoints  [1, h/2, w/2, 16] score-map logits (required)
  presence   [1, 2] logits (optional; enables the early out)
  visibility [1, 2, 17] logits (optional)
  pose       [1, 2, 9] logits (optional)
"""

import functools
import os
from typing import Protocol

import numpy as np

from hand25d import decoding
from hand25d import litert
from hand25d import mirror
from hand25d import sensor
from hand25d import spec

BACKENDS = ("litert", "tflm")


class KeypointModel(Protocol):
  """What the runtime pipeline needs of a keypoint network."""

  def infer(self, amplitude: np.ndarray) -> dict[str, np.ndarray]:
    """[H, W] amplitude -> raw outputs named by spec output names.

    The amplitude is in the simulated sensor's ADC counts (a camera's with
    SensorConfig.amplitude_scale applied), at any resolution.
    """

  def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs -> (xy [S, P, 2] in sensor pixels, confidence [S, P])."""


class ModelSignatureError(ValueError):
  """The model's inputs or outputs are not those the runtime can run."""


class ModelFileError(ValueError):
  """The model file is not a TFLite flatbuffer (or LiteRT cannot load it); names the file."""


@functools.lru_cache(maxsize=16)
def _area_weights(size_in: int, size_out: int) -> np.ndarray:
  """[size_out, size_in] float32: the share of each input pixel in each output pixel.

  Output pixel i covers input coordinates [i s, (i + 1) s) with s = size_in /
  size_out; each weight is the overlap with input pixel j's [j, j + 1),
  divided by s, so every row sums to 1.
  """
  s = size_in / size_out
  lo = np.arange(size_out)[:, None] * s
  j = np.arange(size_in)[None, :]
  overlap = np.clip(np.minimum(lo + s, j + 1) - np.maximum(lo, j), 0.0, None)
  return (overlap / s).astype(np.float32)


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """[H, W] -> [height, width] float32 by area averaging (any sizes).

  For an integer reduction this is the mean of each block, the area resize of
  training (`hand25d.data.pipeline.resize`), computed as a sum of strided views
  (about 10x faster here than a reshape and mean). Otherwise each output
  pixel is the average over its exact footprint (two small matrix products).
  """
  h, w = image.shape
  image = image.astype(np.float32)
  if h % height == 0 and w % width == 0:
    fy, fx = h // height, w // width
    block_sum = sum(image[i::fy, j::fx] for i in range(fy) for j in range(fx))
    return block_sum * np.float32(1.0 / (fy * fx))
  return _area_weights(h, height) @ image @ _area_weights(w, width).T


def network_input(amplitude: np.ndarray, height: int, width: int) -> np.ndarray:
  """[H, W] amplitude -> [1, height, width, 1] network input, as in training.

  Training resizes by area averaging (`hand25d.data.pipeline.resize`), then
  applies `sensor.normalize_input`; `area_resize` does the first at any size.
  """
  return sensor.normalize_input(area_resize(amplitude, height, width),
                                "amplitude")[None, :, :, None]


def read_model(path: str | os.PathLike) -> bytes:
  """The bytes of a .tflite file (a str or os.PathLike path), checked to be a TFLite flatbuffer.

  Raises:
    FileNotFoundError: no such file.
    ModelFileError: the file is not a TFLite model (naming it and what it holds).
  """
  with open(path, "rb") as f:
    model = f.read()
  if model[4:8] != litert.TFLITE_IDENTIFIER:
    raise ModelFileError(
        f"{path} is not a TFLite model: its file identifier is {model[4:8]!r}, a .tflite "
        f"flatbuffer has {litert.TFLITE_IDENTIFIER!r} ({len(model)} bytes, starting "
        f"{model[:8]!r}); pass a model exported by `python -m export.tflite_main`")
  return model


def expected_outputs(height: int, width: int) -> dict[str, tuple[int, ...]]:
  """Output name -> shape that a model with a [1, height, width, 1] input may have."""
  return {
      spec.KEYPOINTS: (1,) + spec.output_shape(spec.OUTPUT_STRIDE, spec.NUM_PRIMARY_CHANNELS,
                                               height, width),
      spec.PRESENCE: (1, spec.NUM_SIDES),
      spec.VISIBILITY: (1, spec.NUM_SIDES, spec.NUM_KEYPOINTS),
      spec.POSE: (1, spec.NUM_SIDES, spec.NUM_POSE_CLASSES),
      spec.HAND_MASK: (1,) + spec.output_shape(spec.HAND_MASK_STRIDE,
                                               spec.NUM_SEGMENTATION_CLASSES, height, width),
  }


class TfliteModel:
  """An exported hand25d model run by ai-edge-litert or the TFLM interpreter."""

  def __init__(self, model: bytes, sensor_shape: tuple[int, int], backend: str = "litert",
               num_threads: int = 1, tflm_arena_bytes: int = 8 << 20, refine: bool = True,
               name: str = "model", mirror_ensemble: bool = False):
    """Loads and checks the model.

    Args:
      model: the .tflite flatbuffer.
      sensor_shape: (H, W) of the amplitude images it will get (any size; the
        amplitude is area-resized to the model's input).
      backend: one of BACKENDS.
      num_threads: LiteRT interpreter threads.
      tflm_arena_bytes: tensor arena of the TFLM interpreter.
      refine: sub-pixel refinement of the arg-max.
      name: how errors name the model (e.g. its path).
      mirror_ensemble: run the network on the image and on its mirror image
        and average the outputs (hand25d.mirror): more accurate, twice the
        network's time.

    Raises:
      ModelFileError: LiteRT cannot load the bytes as a model.
      ModelSignatureError: inputs or outputs other than the expected ones.
      litert.TflmError: the TFLM interpreter cannot load the model.
    """
    if backend not in BACKENDS:
      raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    # LiteRT also reads the signature and quantization parameters for TFLM.
    try:
      self._litert = litert.LiteRtModel(model, num_threads=num_threads)
    except (ValueError, RuntimeError) as e:
      raise ModelFileError(f"{name}: LiteRT cannot load it as a TFLite model: {e}") from e
    inputs, outputs = self._litert.inputs, self._litert.outputs
    shape = tuple(int(d) for d in inputs[0]["shape"]) if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[0] != 1 or shape[3] != spec.INPUT_CHANNELS:
      raise ModelSignatureError(
          f"{name}: expected one input of shape [1, H, W, {spec.INPUT_CHANNELS}], got "
          f"{[list(d['shape']) for d in inputs]}")
    if "depth" in inputs[0]["name"]:
      raise ModelSignatureError(f"{name}: input {inputs[0]['name']!r} is a depth-mode model; "
                                "the runtime feeds the network the amplitude image")
    self.input_height, self.input_width = shape[1], shape[2]
    h, w = sensor_shape
    self._sensor_scale = np.array([w / self.input_width, h / self.input_height])
    self._names = expected_outputs(self.input_height, self.input_width)
    names_by_shape = {v: k for k, v in self._names.items()}
    output_names = []
    for detail in outputs:
      out_shape = tuple(int(d) for d in detail["shape"])
      if out_shape not in names_by_shape:
        raise ModelSignatureError(
            f"{name}: output {detail['name']!r} of shape {list(out_shape)} is none of "
            f"{ {k: list(v) for k, v in self._names.items()} }")
      output_names.append(names_by_shape.pop(out_shape))
    if spec.KEYPOINTS not in output_names:
      raise ModelSignatureError(f"{name}: no keypoints output of shape "
                                f"{list(self._names[spec.KEYPOINTS])}")
    self.output_names = tuple(output_names)
    self._backend = backend
    self._refine = refine
    self.mirror_ensemble = mirror_ensemble
    if backend == "tflm":
      self._tflm = litert.tflm_interpreter(model, tflm_arena_bytes)
      got = [tuple(self._tflm.get_output_details(i)["shape"]) for i in range(len(outputs))]
      if got != [tuple(d["shape"]) for d in outputs]:
        raise ModelSignatureError(f"{name}: TFLM lists output shapes {got}, LiteRT "
                                  f"{[tuple(d['shape']) for d in outputs]}")

  @classmethod
  def from_file(cls, path: str | os.PathLike, sensor_shape: tuple[int, int], **kwargs
                ) -> "TfliteModel":
    """Loads a .tflite file (see `read_model` and __init__ for the errors, which name it)."""
    return cls(read_model(path), sensor_shape, name=os.fspath(path), **kwargs)

  def infer(self, amplitude: np.ndarray) -> dict[str, np.ndarray]:
    x = network_input(amplitude, self.input_height, self.input_width)
    if not self.mirror_ensemble:
      return self._run(x)
    return mirror.ensemble(self._run(x), self._run(np.ascontiguousarray(mirror.mirror_images(x))))

  def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
    """One pass of the network on a [1, h, w, 1] input: outputs by name (float)."""
    if self._backend == "litert":
      return self._litert([x], self._names)
    self._tflm.set_input(litert.quantize(x, self._litert.inputs[0]), 0)
    self._tflm.invoke()
    return {name: litert.dequantize(np.array(self._tflm.get_output(i)), detail)
            for i, (name, detail) in enumerate(zip(self.output_names, self._litert.outputs))}

  def decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    xy, confidence = decoding.decode_outputs(outputs, self._refine)
    # Network input pixels -> sensor pixels, pixel centres aligned.
    xy = (xy[0] + 0.5) * self._sensor_scale - 0.5
    shape = (spec.NUM_SIDES, spec.NUM_PRIMARY_KEYPOINTS)
    return xy.reshape(shape + (2,)), confidence[0].reshape(shape)
