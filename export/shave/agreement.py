"""How closely a SHAVE program reproduces the float32 TFLite model on real frames.

The deployment check of docs/embedded.md ("Matching TFLite"): the program (from a blob) runs in the
simulator (or in the C kernel, `compare(..., run=...)`) and the float32 TFLite
model of the same Keras model runs in ai-edge-litert, on the same frames; then

  * every output: max |simulated - TFLite| over the frames relative to the
    range (max - min) of the TFLite output over the frames (the fp32 target
    is 1e-4);
  * every score map (an output of rank 3 but the hand mask; hand25d's
    keypoint maps): whether the arg-max position of each channel
    ("keypoint") is the same (the fp16 target is 99% of keypoints);
  * how far each decoded keypoint moves, in input pixels (decoded as the
    runtime decodes them, hand25d/decoding.py: the keypoint maps with the
    model's hand mask if it has one, arg-max, local soft-argmax refinement):
    what a near-tie swap costs the user, since the refinement reads the
    cells around the peak too;
  * with the frames' labels (`load_labelled_frames`): the same over the
    visible keypoints, and the mean 2D error of each against the labels.

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
from hand25d import decoding
from hand25d import litert as litert_lib
from hand25d import spec
from hand25d.data import pipeline

# Error bound of a simulated output relative to its range, per storage type:
# the tolerances the simulator is tested to (fp16 rounds the output of every layer
# but the network's outputs, planner.fp32_stored).
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
    shift_px: [keypoints] float64, per keypoint (frame-major), the distance
      in input pixels between the keypoint decoded from the simulated map
      and from the TFLite map (hand25d.decoding.decode, refined).
    visible: [keypoints] bool, the keypoints labelled visible (all False
      without labels).
    tflite_px_error, program_px_error: mean 2D error (input pixels) over the
      visible keypoints of the TFLite model and of the program (NaN without
      labels or visible keypoints).
  """
  frames: int
  relative_error: dict[str, float]
  keypoints: int
  argmax_equal: int
  decisive: int
  decisive_equal: int
  bound: float
  mismatch_margin: float
  shift_px: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
  visible: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
  tflite_px_error: float = float("nan")
  program_px_error: float = float("nan")

  @property
  def argmax_agreement(self) -> float:
    """Fraction of all keypoints with the same arg-max (NaN without score maps)."""
    return self.argmax_equal / self.keypoints if self.keypoints else float("nan")

  def shift_within(self, pixels: float, visible_only: bool = False) -> float:
    """Fraction of keypoints whose decoded position moves by at most `pixels` (NaN if none).

    With `visible_only`, of the keypoints labelled visible.
    """
    shift = self.shift_px[self.visible] if visible_only else self.shift_px
    return float(np.mean(shift <= pixels)) if shift.size else float("nan")

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
  return [image for image, _ in load_labelled_frames(data_dir, split, program)]


def load_labelled_frames(data_dir: str, split: str, program: planner.Program,
                         max_frames: int = 0
                         ) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
  """Every frame of a split (or its first `max_frames`, if > 0) as (network
  input, (keypoints_xy, visible)).

  The input is as `load_frames` makes it; keypoints_xy is [C, 2] float (x, y)
  in input pixels and visible [C] bool, for the C = spec.NUM_PRIMARY_CHANNELS
  channels of the keypoint score maps (spec.primary_channel's order), as
  the evaluation reads them (hand25d/metrics.py).

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
  if max_frames:
    dataset = dataset.take(max_frames)
  frames = []
  for features, targets in dataset:
    xy = targets["keypoints_xy"].numpy()[0][:, spec.PRIMARY_KEYPOINT_INDICES]
    visible = targets["keypoint_visible"].numpy()[0][:, spec.PRIMARY_KEYPOINT_INDICES] > 0.5
    frames.append((features["image"].numpy()[0],
                   (xy.reshape(spec.NUM_PRIMARY_CHANNELS, 2),
                    visible.reshape(spec.NUM_PRIMARY_CHANNELS))))
  return frames


def decoded_shift(reference: np.ndarray, simulated: np.ndarray, stride: int,
                  reference_mask: Optional[np.ndarray] = None,
                  simulated_mask: Optional[np.ndarray] = None) -> np.ndarray:
  """[C] distance (input pixels) between the keypoints decoded from two [H, W, C] score maps.

  Both are decoded as the runtime decodes them (hand25d.decoding.decode:
  with each one's [h, w, 3] hand mask if given, arg-max, then the local
  soft-argmax refinement) at `stride` input pixels per cell.
  """
  batch = lambda a: None if a is None else a[None]  # noqa: E731
  want_xy, _ = decoding.decode(reference[None], stride, hand_mask=batch(reference_mask))
  got_xy, _ = decoding.decode(simulated[None], stride, hand_mask=batch(simulated_mask))
  return np.linalg.norm(got_xy[0] - want_xy[0], axis=-1)


def compare(program: planner.Program, tflite_model: bytes, images: Iterable,
            run: Optional[Callable[[np.ndarray], dict[str, np.ndarray]]] = None) -> Agreement:
  """Runs the program and the float32 TFLite model on each image and compares.

  Raises:
    ValueError: labels whose keypoint count differs from the score maps'.

  Args:
    program: from blob.read_blob (or planner.compile_network).
    tflite_model: float32 TFLite flatbuffer of the same network.
    images: [H, W, C] network inputs, or (input, (keypoints_xy, visible))
      pairs as `load_labelled_frames` gives them; labels are compared with
      the spec.KEYPOINTS output.
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
  shifts, visible, errors_px = [], [], ([], [])
  input_height = network.input_shape[0]
  for frame in images:
    image, labels = frame if isinstance(frame, tuple) else (frame, None)
    want = {k: v[0] for k, v in litert([image[None].astype(np.float32)], names).items()}
    got = run(image) if run else simulator.run(program, image).outputs
    for key, expected in want.items():
      differences[key] = max(differences[key], float(np.abs(got[key] - expected).max()))
      lows[key] = min(lows[key], float(expected.min()))
      highs[key] = max(highs[key], float(expected.max()))
      scale = float(expected.max() - expected.min()) or 1.0  # this frame's range
      if expected.ndim != 3 or key == spec.HAND_MASK:  # Their relative error only.
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
      stride = input_height // expected.shape[0]
      mask = key == spec.KEYPOINTS and spec.HAND_MASK in want  # The mask weighs these only.
      shifts.append(decoded_shift(
          expected, got[key].reshape(expected.shape), stride,
          want[spec.HAND_MASK] if mask else None,
          got[spec.HAND_MASK].reshape(want[spec.HAND_MASK].shape) if mask else None))
      if labels is not None and key == spec.KEYPOINTS:
        true_xy, seen = labels
        if true_xy.shape != (expected.shape[-1], 2) or seen.shape != expected.shape[-1:]:
          raise ValueError(f"frame {frames}: labels of {len(seen)} keypoints for "
                           f"{expected.shape[-1]} {key!r} score maps")
        visible.append(seen)
        # Decoded as the runtime decodes them: with each side's hand mask, if any.
        for outputs, into in ((want, errors_px[0]), (got, errors_px[1])):
          xy, _ = decoding.decode_outputs(
              {k: np.reshape(v, (1,) + want[k].shape) for k, v in outputs.items()})
          into.append(np.linalg.norm(xy[0] - true_xy, axis=-1)[seen])
      else:
        visible.append(np.zeros(same.size, bool))
    frames += 1
  errors = {key: differences[key] / ((highs[key] - lows[key]) or 1.0) for key in names}
  mean_error = [float(np.concatenate(e).mean()) if sum(map(len, e)) else float("nan")
                for e in errors_px]
  return Agreement(frames, errors, keypoints, equal, decisive, decisive_equal, bound,
                   mismatch_margin, np.concatenate(shifts) if shifts else np.zeros(0),
                   np.concatenate(visible) if visible else np.zeros(0, bool), *mean_error)


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
    shift = agreement.shift_px
    lines.append(f"  decoded keypoint moves (input px): mean {shift.mean():.3f}, "
                 f"99th percentile {np.percentile(shift, 99):.3f}, max {shift.max():.2f}; "
                 f"within 0.5 px: {100 * agreement.shift_within(0.5):.1f}%, "
                 f"within 1 px: {100 * agreement.shift_within(1.0):.1f}%")
    if agreement.visible.any():
      seen = shift[agreement.visible]
      lines.append(f"  over the {seen.size} visible keypoints: moves mean {seen.mean():.3f} px, "
                   f"max {seen.max():.2f}; within 0.5 px: "
                   f"{100 * agreement.shift_within(0.5, visible_only=True):.1f}%, within 1 px: "
                   f"{100 * agreement.shift_within(1.0, visible_only=True):.1f}%")
      lines.append(f"  mean 2D error against the labels: TFLite {agreement.tflite_px_error:.3f} px, "
                   f"program {agreement.program_px_error:.3f} px")
  return "\n".join(lines)
