"""How closely a SHAVE program reproduces the float32 TFLite model on real frames.

The deployment check of docs/embedded.md ("Matching TFLite"): the program (from a blob) runs in the
simulator (or in the C kernel, `compare(..., run=...)`) and the float32 TFLite
model of the same Keras model runs in ai-edge-litert, on the same frames; then

  * every output: max |simulated - TFLite| over the frames relative to the
    range (max - min) of the TFLite output over the frames (the fp32 target
    is 1e-4);
  * every score map (an output of rank 3, hand25d's keypoint maps): whether
    the arg-max position of each channel ("keypoint") is the same (the fp16
    target is 99% of keypoints).

An arg-max is only defined up to the arithmetic's error. With untrained
weights many score maps are near ties whose order fp16 rounding may swap, so
the agreement is also given over the *decisive* keypoints: those whose TFLite
top-2 margin (highest minus second-highest score) exceeds twice the error
bound of the storage type (ERROR_BOUNDS, relative to the map's range). A
simulator whose error stays within the bound cannot change their arg-max.
"""

import dataclasses
from typing import Callable, Iterable, Optional

import numpy as np

from export.shave import planner
from export.shave import simulator
from hand25d import litert as litert_lib
from hand25d import spec
from hand25d.data import pipeline

# Error bound of a simulated output relative to its range, per storage type:
# the tolerances the simulator is tested to (fp16 rounds every layer's output).
ERROR_BOUNDS = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-4}


@dataclasses.dataclass(frozen=True)
class Agreement:
  """Simulated program vs TFLite over some frames.

  Attributes:
    frames: frames compared.
    relative_error: output name -> max over frames of max |simulated -
      TFLite| / range of the TFLite output over the frames.
    keypoints: score-map channels compared (frames x channels).
    argmax_equal: of those, with the same arg-max position.
    decisive: keypoints whose TFLite top-2 margin exceeds 2 x bound x the
      range of that frame's map.
    decisive_equal: of those, with the same arg-max position.
    bound: the error bound used (ERROR_BOUNDS of the program's type).
    mismatch_margin: the largest TFLite top-2 margin, relative to the range,
      of a keypoint whose arg-max differs (0 if none does): how near a tie
      the disagreements are.
  """
  frames: int
  relative_error: dict[str, float]
  keypoints: int
  argmax_equal: int
  decisive: int
  decisive_equal: int
  bound: float
  mismatch_margin: float

  @property
  def argmax_agreement(self) -> float:
    """Fraction of all keypoints with the same arg-max (NaN without score maps)."""
    return self.argmax_equal / self.keypoints if self.keypoints else float("nan")

  @property
  def decisive_agreement(self) -> float:
    """Fraction of decisive keypoints with the same arg-max (NaN if there are none)."""
    return self.decisive_equal / self.decisive if self.decisive else float("nan")


def load_frames(data_dir: str, split: str, program: planner.Program) -> list[np.ndarray]:
  """The [H, W, 1] network inputs of every frame of a split, as the input pipeline makes them.

  The input mode is the name of the network input (hand25d's inference model
  names its input after ModelConfig.input_mode).

  Raises:
    ValueError: if the network input is not named after an input mode.
  """
  mode = program.network.input_name
  if mode not in spec.INPUT_MODES:
    raise ValueError(f"the network input is named {mode!r}, not one of {spec.INPUT_MODES}: "
                     "cannot tell which image of the data set it takes")
  height, width, _ = program.network.input_shape
  dataset = pipeline.make_dataset(data_dir, split, 1, input_mode=mode, input_height=height,
                                  input_width=width)
  return [features["image"].numpy()[0] for features, _ in dataset]


def compare(program: planner.Program, tflite_model: bytes, images: Iterable[np.ndarray],
            run: Optional[Callable[[np.ndarray], dict[str, np.ndarray]]] = None) -> Agreement:
  """Runs the program and the float32 TFLite model on each image and compares.

  Args:
    program: from blob.read_blob (or planner.compile_network).
    tflite_model: float32 TFLite flatbuffer of the same network.
    images: [H, W, C] network inputs.
    run: what executes the program: image -> outputs (Keras shapes without
      batch); by default the simulator (simulator.run). The C kernel's is
      native.Runner(blob).run(image).outputs.
  """
  network = program.network
  litert = litert_lib.LiteRtModel(tflite_model)
  names = {key: (1,) + tuple(shape) for key, shape in network.output_shapes.items()}
  bound = ERROR_BOUNDS[program.dtype]
  # Largest |difference| and the output's range (min, max) over all frames: a
  # small output such as presence (2 values) has no meaningful range in one frame.
  differences = {key: 0.0 for key in names}
  lows = {key: np.inf for key in names}
  highs = {key: -np.inf for key in names}
  frames = keypoints = equal = decisive = decisive_equal = 0
  mismatch_margin = 0.0
  for image in images:
    want = {k: v[0] for k, v in litert([image[None].astype(np.float32)], names).items()}
    got = run(image) if run else simulator.run(program, image).outputs
    for key, expected in want.items():
      differences[key] = max(differences[key], float(np.abs(got[key] - expected).max()))
      lows[key] = min(lows[key], float(expected.min()))
      highs[key] = max(highs[key], float(expected.max()))
      scale = float(expected.max() - expected.min()) or 1.0  # this frame's range
      if expected.ndim != 3:
        continue
      # [H, W, C] score maps -> [H * W, C]: per channel, arg-max and top-2 margin.
      reference = expected.reshape(-1, expected.shape[-1])
      same = reference.argmax(0) == got[key].reshape(reference.shape).argmax(0)
      top2 = np.sort(reference, axis=0)[-2:]
      margin = (top2[1] - top2[0]) / scale
      clear = margin > 2 * bound
      keypoints += same.size
      equal += int(same.sum())
      decisive += int(clear.sum())
      decisive_equal += int((same & clear).sum())
      mismatch_margin = max([mismatch_margin, *margin[~same].tolist()])
    frames += 1
  errors = {key: differences[key] / ((highs[key] - lows[key]) or 1.0) for key in names}
  return Agreement(frames, errors, keypoints, equal, decisive, decisive_equal, bound,
                   mismatch_margin)


def format_agreement(agreement: Agreement) -> str:
  """The comparison as text."""
  lines = [f"vs float32 TFLite over {agreement.frames} frames:"]
  for key, error in agreement.relative_error.items():
    lines.append(f"  {key}: max |difference| = {error:.2e} of the output range")
  if agreement.keypoints:
    lines.append(f"  arg-max identical on {agreement.argmax_equal}/{agreement.keypoints} "
                 f"keypoints ({100 * agreement.argmax_agreement:.1f}%)")
    lines.append(f"  decisive keypoints (top-2 margin > 2 x {agreement.bound:g} of the range): "
                 f"{agreement.decisive_equal}/{agreement.decisive} identical")
    lines.append(f"  largest top-2 margin of a differing arg-max: "
                 f"{agreement.mismatch_margin:.2e} of the range")
  return "\n".join(lines)
