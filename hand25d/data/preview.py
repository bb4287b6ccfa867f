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
