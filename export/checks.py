"""The checks of one exported model: its size budget, TensorFlow Lite Micro, its Keras reference.

  check_size        a float32 model over its size budget raises BudgetError
  tflm_arena        the smallest TFLM tensor arena; a model TFLM cannot run
                    raises BudgetError
  output_names, max_abs, max_diff
                    the LiteRT outputs by name, the largest values and
                    differences over the evaluation frames
  check_agreement   a model further from its Keras reference than
                    FLOAT32_MAX_RELATIVE_DIFF or INT8_MAX_DIFF_STEPS allow raises
                    AgreementError

`export.exporter` runs them on every mode before anything is written
(docs/export.md, "Budgets"; the tolerances: docs/data_format.md).
"""

from typing import Optional

import numpy as np

from export import config as export_config
from hand25d import litert

# How far an exported model may be from its Keras reference (largest
# difference of an output over the evaluation frames) before the export is
# refused as a conversion that changed what the network computes.
# float32: as a fraction of the output's largest magnitude. Measured: the
# shipped model's keypoint logits differ by 1.7e-4 on 4,000 test frames and
# reach a magnitude of ~37 (on testdata/tof_tiny's 12 frames): ~5e-6; the
# demo's differ by 6.6e-5. 1e-4 leaves a margin of ~20.
FLOAT32_MAX_RELATIVE_DIFF = 1e-4
# int8: in output quantization steps (the int8 output spans 256). Measured:
# PTQ (against the float model) 34 and 41 steps on the demo's keypoint logits;
# QAT (against the QAT model) 24 on the shipped model, 16-19 on the demo's.
# 96 is over twice the largest measured and under half the output's range.
INT8_MAX_DIFF_STEPS = 96


def check_size(quant: str, size: int, budget: int) -> None:
  """Refuses a float32 model of more than `budget` bytes (other modes have a target only).

  Raises:
    BudgetError: saying by how much the model is over.
  """
  if quant == "float32" and size > budget:
    over = size - budget
    raise export_config.BudgetError(f"float32 model is {size:,} bytes: {over:,} bytes "
                                    f"({100 * over / budget:.1f}%) over the size budget of "
                                    f"{budget:,} bytes (ExportConfig.max_float32_bytes); make "
                                    "the network smaller")


def tflm_arena(quant: str, model: bytes, image: np.ndarray, lite: litert.LiteRtModel) -> int:
  """The smallest TFLM tensor arena that runs `model` on `image` (quantized as `lite`'s input).

  Raises:
    BudgetError: TensorFlow Lite Micro cannot run the model (an op it lacks,
      a kernel refusing its tensor types, ...).
  """
  try:
    return litert.smallest_arena(model, [litert.quantize(image, lite.inputs[0])])
  except litert.TflmError as e:
    hint = "; build those layers from ops TFLM has" if e.unsupported_ops else ""
    raise export_config.BudgetError(
        f"{quant} model does not run in TensorFlow Lite Micro: {e}{hint}") from e


def output_names(lite: litert.LiteRtModel, names: dict[str, tuple[int, ...]]) -> list[str]:
  """The output name of each LiteRT output, in the model's order (matched by shape)."""
  return [next(n for n, shape in names.items() if shape == tuple(d["shape"]))
          for d in lite.outputs]


def max_abs(values: dict[str, np.ndarray], into: dict) -> None:
  """Keeps in into[name] the largest |value| seen so far, per named output."""
  for name, value in values.items():
    into[name] = max(into.get(name, 0.0), float(np.max(np.abs(value))))


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], into: dict) -> None:
  """Keeps in into[name] the largest |a - b| seen so far, per named output."""
  max_abs({name: a[name] - b[name] for name in a}, into)


def check_agreement(quant: str, checkpoint: str, reference: str, frames: int,
                    diff: dict[str, float], magnitude: dict[str, float],
                    steps: Optional[dict[str, float]]) -> None:
  """Refuses a model further from its Keras reference than the tolerance of its mode.

  Args:
    diff: per output, the largest |TFLite - Keras| over the frames.
    magnitude: per output, the largest |Keras| over the frames (float32).
    steps: per output, the output quantization step (int8), else None.

  Raises:
    AgreementError: naming the model, the output, the measured and the
      allowed difference.
  """
  model = f"{export_config.model_name(quant)}.tflite"
  for name, d in diff.items():
    if steps is None:
      allowed = FLOAT32_MAX_RELATIVE_DIFF * magnitude[name]
      if d > allowed:
        raise export_config.AgreementError(
            f"{model} of {checkpoint} differs from its Keras reference "
            f"({reference}) by {d:.3g} on output {name!r} over {frames} frames, over the "
            f"{allowed:.3g} allowed ({FLOAT32_MAX_RELATIVE_DIFF:g} of the output's largest "
            f"magnitude {magnitude[name]:.3g}, checks.FLOAT32_MAX_RELATIVE_DIFF): the "
            "conversion changed what the network computes")
    elif d > INT8_MAX_DIFF_STEPS * steps[name]:
      raise export_config.AgreementError(
          f"{model} of {checkpoint} differs from its Keras reference "
          f"({reference}) by {d:.3g} = {d / steps[name]:.0f} output quantization steps (of "
          f"{steps[name]:.3g}) on output {name!r} over {frames} frames, over the "
          f"{INT8_MAX_DIFF_STEPS} steps allowed (checks.INT8_MAX_DIFF_STEPS): the "
          "conversion changed what the network computes")
