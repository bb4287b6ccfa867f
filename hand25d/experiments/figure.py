"""A Fig.-2-style image: predictions on depth and on amplitude input, and the segmentation.

As the paper's Fig. 2: the top row shows the 2D keypoints a depth-input model
predicts on the depth image, the middle row those of an amplitude-input model
on the amplitude image, the bottom row the amplitude model's segmentation
output, for the same test frames. Predictions are gated by the model's own
hand-presence and keypoint-visibility outputs (as the runtime does) when it
has those heads; ground-truth visible keypoints are drawn as white rings.
The depth row is in the depth colour map of every hand25d picture, with its
colour bar and invalid pixels black; sides and segmentation classes take
the sides' colours (hand25d/colours.py, drawn by hand25d/drawing.py).
"""

from typing import Optional, Sequence

from matplotlib import figure
import numpy as np

from hand25d import decoding
from hand25d import drawing
from hand25d import sensor
from hand25d import spec
from hand25d.data import pipeline
from hand25d.training import evaluation

# Candidate frames: the first test batch of this size.
_CANDIDATES = 64
DPI = 100  # The figure is saved at this dpi; font sizes below are for it.
_FONT = 8.0  # Points: 11 px at DPI.


def _predict(checkpoint: str, data_dir: str) -> dict:
  """A model's inputs, outputs and targets on the first test frames."""
  model, cfg, prefix = evaluation.load_model(checkpoint)
  data = pipeline.make_dataset(data_dir, "test", _CANDIDATES, input_mode=cfg.model.input_mode,
                               training=False, input_height=cfg.model.input_height,
                               input_width=cfg.model.input_width, with_extras=True)
  features, targets = next(iter(data))
  outputs = model(features["image"], training=False)
  return {"checkpoint": prefix, "input_mode": cfg.model.input_mode,
          "image": features["image"].numpy()[..., 0],
          "outputs": {k: v.numpy() for k, v in outputs.items()},
          "targets": {k: v.numpy() for k, v in targets.items()}}


def _keypoints(pred: dict) -> tuple[np.ndarray, np.ndarray]:
  """Predicted primary keypoints [B, 2, 8, 2] and whether each is shown [B, 2, 8]."""
  xy, _ = decoding.decode_outputs(pred["outputs"])
  n = spec.NUM_PRIMARY_KEYPOINTS
  xy = xy.reshape(-1, spec.NUM_SIDES, n, 2)
  shown = np.ones(xy.shape[:3], bool)
  if spec.VISIBILITY in pred["outputs"]:
    visible = pred["outputs"][spec.VISIBILITY][:, :, list(spec.PRIMARY_KEYPOINT_INDICES)] > 0
    present = pred["outputs"][spec.PRESENCE] > 0
    shown = visible & present[:, :, None]
  return xy, shown


def _frame_error(pred_xy: np.ndarray, targets: dict, i: int) -> Optional[float]:
  """Mean error (px) of frame i over its visible primary keypoints; None if none."""
  true = targets["keypoints_xy"][i][:, list(spec.PRIMARY_KEYPOINT_INDICES)]
  mask = targets["keypoint_visible"][i][:, list(spec.PRIMARY_KEYPOINT_INDICES)] > 0.5
  err = np.linalg.norm(pred_xy[i] - true, axis=-1)
  return float(err[mask].mean()) if mask.any() else None


def _error_text(px: Optional[float]) -> str:
  return "no visible keypoint" if px is None else f"{px:.1f} px"


def _draw_keypoints(ax, image: np.ndarray, xy: np.ndarray, shown: np.ndarray, targets: dict,
                    i: int) -> None:
  """Frame i's ground-truth rings and predicted skeletons over its image, drawn on ax."""
  ax.set_xlim(-0.5, image.shape[1] - 0.5)
  ax.set_ylim(image.shape[0] - 0.5, -0.5)
  primary = list(spec.PRIMARY_KEYPOINT_INDICES)
  for side in range(spec.NUM_SIDES):
    true = targets["keypoints_xy"][i, side, primary]
    vis = targets["keypoint_visible"][i, side, primary] > 0.5
    drawing.draw_truth(ax, true[vis])
    drawing.draw_bones(ax, xy[i, side], drawing.PRIMARY_BONES, side, shown=shown[i, side])
    drawing.draw_keypoints(ax, xy[i, side, shown[i, side]], side)


def draw(amp: dict, depth: dict, frames: Sequence[int]) -> tuple[figure.Figure, list[dict]]:
  """The figure of test frames `frames` (batch indices) from the two models' predictions.

  Args:
    amp: an amplitude model's inputs, outputs and targets (`_predict`).
    depth: a depth model's, on the same frames.
    frames: batch indices of the frames shown, one column each.

  Returns:
    (figure, records) where records gives each frame's id and mean errors.
  """
  targets = amp["targets"]
  amp_xy, amp_shown = _keypoints(amp)
  depth_xy, depth_shown = _keypoints(depth)
  fig = drawing.new_figure(2.5 * len(frames) + 0.6, 6.8, DPI)
  axes = fig.subplots(3, len(frames), squeeze=False)
  records = []
  for col, i in enumerate(frames):
    frame_id = int(targets["frame_id"][i])
    errors = {"depth_px": _frame_error(depth_xy, targets, i),
              "amplitude_px": _frame_error(amp_xy, targets, i)}
    records.append({"frame_id": frame_id, **errors})
    ax = axes[0, col]
    # The network's depth input: metres / DEPTH_FULL_SCALE_M, 0 = invalid.
    drawing.show_depth(ax, depth["image"][i] * sensor.DEPTH_FULL_SCALE_M, 0.0,
                       sensor.DEPTH_FULL_SCALE_M)
    _draw_keypoints(ax, depth["image"][i], depth_xy, depth_shown, targets, i)
    ax.set_title(f"frame {frame_id}: depth, {_error_text(errors['depth_px'])}", fontsize=_FONT)
    ax = axes[1, col]
    image = amp["image"][i]
    valid = image[image > 0]
    ax.imshow(image, cmap="gray", vmin=0.0,
              vmax=float(np.percentile(valid, 99)) if valid.size else 1.0)
    _draw_keypoints(ax, image, amp_xy, amp_shown, targets, i)
    ax.set_title(f"amplitude, {_error_text(errors['amplitude_px'])}", fontsize=_FONT)
    ax = axes[2, col]
    if spec.SEGMENTATION in amp["outputs"]:
      classes = np.argmax(amp["outputs"][spec.SEGMENTATION][i], axis=-1)
      ax.imshow(drawing.segmentation_image(classes), interpolation="nearest")
      ax.set_title("segmentation (black: background)", fontsize=_FONT)
    else:
      ax.text(0.5, 0.5, "no segmentation head", ha="center", va="center", fontsize=_FONT)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  drawing.depth_colorbar(fig, list(axes[0]), 0.0, sensor.DEPTH_FULL_SCALE_M, _FONT)
  drawing.legend(fig, drawing.legend_handles(truth=True, invalid_depth=True), _FONT)
  return fig, records


def render(amplitude_checkpoint: str, depth_checkpoint: str, data_dir: str,
           num_frames: int = 4) -> tuple[bytes, dict]:
  """The figure as PNG bytes, and what it shows.

  Args:
    amplitude_checkpoint: checkpoint of an amplitude-input run (its
      segmentation head, if any, fills the bottom row).
    depth_checkpoint: checkpoint of a depth-input run.
    data_dir: the data set whose test split is shown.
    num_frames: test frames (columns): the first ones with a hand present.

  Returns:
    (png, info) where info records the checkpoints, the frame ids and each
    panel's mean error over the frame's visible primary keypoints.

  Raises:
    ValueError: the checkpoints do not have the expected input modes, or the
      first test frames hold no hand.
  """
  amp = _predict(amplitude_checkpoint, data_dir)
  depth = _predict(depth_checkpoint, data_dir)
  if (amp["input_mode"], depth["input_mode"]) != ("amplitude", "depth"):
    raise ValueError(f"expected an amplitude and a depth model, got {amp['input_mode']} "
                     f"({amplitude_checkpoint}) and {depth['input_mode']} ({depth_checkpoint})")
  targets = amp["targets"]
  with_hand = np.flatnonzero(targets["hand_present"].sum(axis=1) > 0)[:num_frames]
  if not len(with_hand):
    raise ValueError(f"none of the first {_CANDIDATES} test frames of {data_dir} has a hand")
  fig, frames = draw(amp, depth, with_hand)
  info = {"amplitude_checkpoint": amp["checkpoint"], "depth_checkpoint": depth["checkpoint"],
          "frames": frames}
  return drawing.png_bytes(fig), info
