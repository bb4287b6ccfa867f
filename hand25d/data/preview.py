"""A PNG contact sheet of frames: amplitude with named keypoints, depth, segmentation."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from hand25d import spec
from hand25d.data import records
from hand25d.data import scene

_SIDE_COLOURS = ("tab:cyan", "tab:red")
# Short names drawn next to the primary keypoints.
_SHORT = {"wrist_center": "wrist", "hand_center": "ctr", "thumb_mcp": "T-mcp",
          "thumb_tip": "T-tip", "index_mcp": "I-mcp", "index_pip": "I-pip",
          "index_tip": "I-tip", "middle_mcp": "M-mcp"}


def rendered_frames(seed: int, num_frames: int) -> list[dict]:
  """Frames rendered directly from seeds seed, seed + 1, ... (no data set needed)."""
  return [scene.render_frame(seed + i, with_phase_frames=False) for i in range(num_frames)]


def stored_frames(data_dir: str, split: str, num_frames: int) -> list[dict]:
  """The first frames of a split of a stored data set."""
  frames = []
  for path in records.shard_paths(data_dir, records.load_manifest(data_dir), split):
    for frame in records.read_shard(path):
      frames.append(frame)
      if len(frames) == num_frames:
        return frames
  return frames


def render_png(frames: list[dict], columns: int = 2, dpi: int = 60) -> bytes:
  """PNG bytes: per frame amplitude + skeleton (visible keypoints named), depth, segmentation."""
  rows = -(-len(frames) // columns)
  fig, axes = plt.subplots(rows, 3 * columns, figsize=(9 * columns, 2.3 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for i, frame in enumerate(frames):
    r, c = divmod(i, columns)
    ax_amp, ax_depth, ax_seg = axes[r, 3 * c:3 * c + 3]
    amp = np.sqrt(np.asarray(frame["amplitude"], np.float32))
    ax_amp.imshow(amp, cmap="gray", vmin=0, vmax=np.percentile(amp, 99.5) + 1e-6)
    ax_depth.imshow(np.asarray(frame["depth"]), cmap="turbo", vmin=0, vmax=2.0)
    ax_seg.imshow(np.asarray(frame["segmentation"]), cmap="viridis", vmin=0,
                  vmax=spec.NUM_SEGMENTATION_CLASSES - 1, interpolation="nearest")
    poses = []
    for side in range(spec.NUM_SIDES):
      if not frame["hand_present"][side]:
        continue
      poses.append(f"{spec.SIDES[side]}: {spec.POSE_CLASSES[int(frame['pose'][side])]}, "
                   f"bin {int(frame['orientation_bin'][side])}")
      xy = np.asarray(frame["keypoints_xy"][side])
      vis = np.asarray(frame["keypoint_visible"][side]) > 0
      colour = _SIDE_COLOURS[side]
      for k, parent in enumerate(spec.KEYPOINT_PARENTS):
        if parent >= 0:
          ax_amp.plot(xy[[k, parent], 0], xy[[k, parent], 1], color=colour, lw=0.6, alpha=0.7)
      ax_amp.scatter(xy[vis, 0], xy[vis, 1], s=5, color=colour)
      ax_amp.scatter(xy[~vis, 0], xy[~vis, 1], s=5, facecolors="none", edgecolors=colour, lw=0.5)
      for k in spec.PRIMARY_KEYPOINT_INDICES:
        if vis[k]:
          ax_amp.text(xy[k, 0] + 2, xy[k, 1], _SHORT[spec.KEYPOINT_NAMES[k]], color=colour,
                      fontsize=5)
    ax_amp.set_xlim(0, amp.shape[1] - 1)
    ax_amp.set_ylim(amp.shape[0] - 1, 0)
    ax_amp.set_title("; ".join(poses) or "no hand", fontsize=7)
    ax_depth.set_title("depth (0-2 m, black = invalid)", fontsize=7)
    ax_seg.set_title("segmentation (bg / left / right)", fontsize=7)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  plt.close(fig)
  return buf.getvalue()


def augmented_batch_png(data_dir: str, split: str = "train", num_frames: int = 8,
                        seed: int = 0, columns: int = 4, dpi: int = 80) -> bytes:
  """PNG bytes: a training batch as the network sees it, with its targets drawn over it.

  The frames come out of `pipeline.make_dataset(..., training=True)`:
  augmented (scale, rotation, translation, flip with left/right swap,
  two-hand compositing, gain, noise) and at network resolution. Over each
  input image: the keypoint targets in input pixels (filled dot: visible,
  ring: masked out), the cell each keypoint's one-hot target picks at the
  output stride (small square at the cell centre, `hand25d.decoding`) and at
  the coarsest deep-supervision stride (large square), and the outline of
  the segmentation target per side. A label, flip or stride bug shows as
  markers off the hand or squares away from their dots.
  """
  from hand25d import decoding  # pylint: disable=g-import-not-at-top
  from hand25d.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  features, targets = next(iter(pipeline.make_dataset(
      data_dir, split, num_frames, training=True, seed=seed)))
  images = features["image"].numpy()[..., 0]
  t = {k: v.numpy() for k, v in targets.items()}
  rows = -(-len(images) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  coarse = max(spec.DEEP_SUPERVISION_STRIDES)
  seg_stride = spec.SEGMENTATION_STRIDE
  for i, image in enumerate(images):
    ax = axes.ravel()[i]
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    labels = []
    for side in range(spec.NUM_SIDES):
      if t["hand_present"][i, side] < 0.5:
        continue
      colour = _SIDE_COLOURS[side]
      mask = t["segmentation"][i] == spec.SIDE_SEGMENTATION_CLASS[side]
      if mask.any():
        ys = (np.arange(mask.shape[0]) + 0.5) * seg_stride - 0.5
        xs = (np.arange(mask.shape[1]) + 0.5) * seg_stride - 0.5
        ax.contour(xs, ys, mask.astype(float), levels=[0.5], colors=[colour], linewidths=0.6)
      xy = t["keypoints_xy"][i, side]
      vis = t["keypoint_visible"][i, side] > 0.5
      ax.scatter(xy[vis, 0], xy[vis, 1], s=6, color=colour)
      ax.scatter(xy[~vis, 0], xy[~vis, 1], s=6, facecolors="none", edgecolors=colour, lw=0.5)
      for stride, size in ((spec.OUTPUT_STRIDE, 10), (coarse, 40)):
        index = t[f"keypoint_index_s{stride}"][i, side]
        width = image.shape[1] // stride
        cell = np.stack([index % width, index // width], axis=-1)
        centre = decoding.cell_to_pixel(cell, stride)
        ax.scatter(centre[vis, 0], centre[vis, 1], s=size, marker="s", facecolors="none",
                   edgecolors=colour, lw=0.4, alpha=0.8)
      pose = (spec.POSE_CLASSES[int(t["pose"][i, side])] if t["pose_known"][i, side] > 0.5
              else "pose ?")
      orientation = (f"bin {int(np.argmax(t['orientation'][i, side]))}"
                     if t["orientation_known"][i, side] > 0.5 else "bin ?")
      labels.append(f"{spec.SIDES[side]}: {pose}, {orientation}")
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    mask_note = "" if t["segmentation_known"][i] > 0.5 else " (mask unknown)"
    ax.set_title(("; ".join(labels) or "no hand") + mask_note, fontsize=7)
  fig.suptitle(f"augmented {split} batch (seed {seed}): targets over the network input; "
               f"squares = target cells at strides {spec.OUTPUT_STRIDE} and {coarse}; "
               "cyan = left, red = right", fontsize=8)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  plt.close(fig)
  return buf.getvalue()
