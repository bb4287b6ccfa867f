"""A Fig.-2-style image: predictions on depth and on amplitude input, and the segmentation.

As the paper's Fig. 2: the top row shows the 2D keypoints a depth-input model
predicts on the depth image, the middle row those of an amplitude-input model
on the amplitude image, the bottom row the amplitude model's segmentation
output, for the same test frames. Predictions are gated by the model's own
hand-presence and keypoint-visibility outputs (as the runtime does) when it
has those heads; ground-truth visible keypoints are drawn as small rings.
"""

import io
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from hand25d import decoding
from hand25d import spec
from hand25d.data import pipeline
from hand25d.training import evaluation

_SIDE_COLOURS = ("tab:cyan", "tab:red")
_SEGMENTATION_COLOURS = np.array([[0.0, 0.0, 0.0], [0.2, 0.8, 0.9], [0.9, 0.2, 0.2]])
# Candidate frames: the first test batch of this size.
_CANDIDATES = 64


def _primary_parent(k: int) -> int:
  """Index (0..7) of the nearest primary ancestor of primary keypoint k, or -1."""
  node = spec.KEYPOINT_PARENTS[spec.PRIMARY_KEYPOINT_INDICES[k]]
  while node >= 0 and node not in spec.PRIMARY_KEYPOINT_INDICES:
    node = spec.KEYPOINT_PARENTS[node]
  return spec.PRIMARY_KEYPOINT_INDICES.index(node) if node >= 0 else -1


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
  xy, _ = decoding.decode(pred["outputs"][spec.KEYPOINTS], spec.OUTPUT_STRIDE)
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
                    i: int, title: str) -> None:
  valid = image[image > 0]  # Depth 0 is invalid; scale to the valid pixels for contrast.
  ax.imshow(image, cmap="gray", vmin=0.0,
            vmax=float(np.percentile(valid, 99)) if valid.size else 1.0)
  for side in range(spec.NUM_SIDES):
    colour = _SIDE_COLOURS[side]
    true = targets["keypoints_xy"][i, side, list(spec.PRIMARY_KEYPOINT_INDICES)]
    vis = targets["keypoint_visible"][i, side, list(spec.PRIMARY_KEYPOINT_INDICES)] > 0.5
    ax.scatter(true[vis, 0], true[vis, 1], s=22, facecolors="none", edgecolors="white", lw=0.6)
    for k in range(spec.NUM_PRIMARY_KEYPOINTS):
      parent = _primary_parent(k)
      if parent >= 0 and shown[i, side, k] and shown[i, side, parent]:
        ax.plot(xy[i, side, [k, parent], 0], xy[i, side, [k, parent], 1], color=colour, lw=0.8)
    ax.scatter(xy[i, side, shown[i, side], 0], xy[i, side, shown[i, side], 1], s=7,
               color=colour)
  ax.set_xlim(-0.5, image.shape[1] - 0.5)
  ax.set_ylim(image.shape[0] - 0.5, -0.5)
  ax.set_title(title, fontsize=7)


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
  amp_xy, amp_shown = _keypoints(amp)
  depth_xy, depth_shown = _keypoints(depth)
  fig, axes = plt.subplots(3, len(with_hand), figsize=(2.6 * len(with_hand), 6.0),
                           squeeze=False)
  info = {"amplitude_checkpoint": amp["checkpoint"], "depth_checkpoint": depth["checkpoint"],
          "frames": []}
  for col, i in enumerate(with_hand):
    frame_id = int(targets["frame_id"][i])
    errors = {"depth_px": _frame_error(depth_xy, targets, i),
              "amplitude_px": _frame_error(amp_xy, targets, i)}
    info["frames"].append({"frame_id": frame_id, **errors})
    _draw_keypoints(axes[0, col], depth["image"][i], depth_xy, depth_shown, targets, i,
                    f"frame {frame_id}: depth, {_error_text(errors['depth_px'])}")
    _draw_keypoints(axes[1, col], amp["image"][i], amp_xy, amp_shown, targets, i,
                    f"amplitude, {_error_text(errors['amplitude_px'])}")
    ax = axes[2, col]
    if spec.SEGMENTATION in amp["outputs"]:
      classes = np.argmax(amp["outputs"][spec.SEGMENTATION][i], axis=-1)
      ax.imshow(_SEGMENTATION_COLOURS[classes], interpolation="nearest")
      ax.set_title("segmentation (bg / left / right)", fontsize=7)
    else:
      ax.text(0.5, 0.5, "no segmentation head", ha="center", va="center", fontsize=7)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=90)
  plt.close(fig)
  return buf.getvalue(), info
