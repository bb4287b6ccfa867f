"""A PNG contact sheet of frames: amplitude with named keypoints, depth, segmentation.

Drawn with hand25d/drawing.py, in the colours of every hand25d picture
(hand25d/colours.py).
"""

from absl import logging
import numpy as np

from hand25d import drawing
from hand25d import sensor
from hand25d import spec
from hand25d.data import records
from hand25d.data import scene

SPLITS = records.SPLITS  # The splits of a stored data set.
DPI = 100  # The pictures are saved at this dpi; font sizes below are for it.
_FONT = 8.0  # Points: 11 px at DPI.
_SMALL_FONT = 7.5  # Keypoint names: 10.4 px at DPI.
# Short names drawn next to the primary keypoints.
_SHORT = {"wrist_center": "wrist", "hand_center": "ctr", "thumb_mcp": "T-mcp",
          "thumb_tip": "T-tip", "index_mcp": "I-mcp", "index_pip": "I-pip",
          "index_tip": "I-tip", "middle_mcp": "M-mcp"}


class PreviewError(ValueError):
  """A data set's frames cannot be drawn: no data set, no such or an empty split, a bad shard."""


def rendered_frames(seed: int, num_frames: int) -> list[dict]:
  """Frames rendered directly from seeds seed, seed + 1, ... (no data set needed).

  Raises:
    ValueError: seed below 0 or num_frames below 1.
  """
  if seed < 0 or num_frames < 1:
    raise ValueError(f"need a seed >= 0 and num_frames >= 1, got seed {seed}, num_frames "
                     f"{num_frames}")
  return [scene.render_frame(seed + i, with_phase_frames=False) for i in range(num_frames)]


def stored_frames(data_dir: str, split: str, num_frames: int) -> list[dict]:
  """The first frames of a split of a stored data set; all of them if it has fewer (a warning).

  Raises:
    ValueError: num_frames below 1.
    PreviewError: no data set at data_dir, no such split or an empty one, a
      missing or damaged shard (records.RecordError's message).
  """
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  frames = []
  try:
    for path in records.shard_paths(data_dir, records.load_manifest(data_dir), split):
      for frame in records.read_shard(path):
        frames.append(frame)
        if len(frames) == num_frames:
          return frames
  except records.RecordError as e:
    raise PreviewError(str(e)) from e
  logging.warning("split %r of %s has %d frames: drawing all %d, not %d", split, data_dir,
                  len(frames), len(frames), num_frames)
  return frames


def figure(frames: list[dict], columns: int = 1):
  """The contact sheet as a matplotlib Figure (`render_png`)."""
  rows = -(-len(frames) // columns)
  fig = drawing.new_figure(9.6 * columns, 2.5 * rows + 0.5, DPI)
  axes = fig.subplots(rows, 3 * columns, squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for i, frame in enumerate(frames):
    r, c = divmod(i, columns)
    ax_amp, ax_depth, ax_seg = axes[r, 3 * c:3 * c + 3]
    amp = np.sqrt(np.asarray(frame["amplitude"], np.float32))
    ax_amp.imshow(amp, cmap="gray", vmin=0, vmax=np.percentile(amp, 99.5) + 1e-6)
    drawing.show_depth(ax_depth, frame["depth"], 0.0, sensor.DEPTH_FULL_SCALE_M)
    ax_seg.imshow(drawing.segmentation_image(frame["segmentation"]), interpolation="nearest")
    poses = []
    for side in range(spec.NUM_SIDES):
      if not frame["hand_present"][side]:
        continue
      poses.append(f"{spec.SIDES[side]}: {spec.POSE_CLASSES[int(frame['pose'][side])]}, "
                   f"bin {int(frame['orientation_bin'][side])}")
      xy = np.asarray(frame["keypoints_xy"][side])
      vis = np.asarray(frame["keypoint_visible"][side]) > 0
      drawing.draw_bones(ax_amp, xy, drawing.BONES, side, lw=0.8, alpha=0.8)
      drawing.draw_keypoints(ax_amp, xy[vis], side, size=12)
      drawing.draw_keypoints(ax_amp, xy[~vis], side, size=12, filled=False)
      for k in spec.PRIMARY_KEYPOINT_INDICES:
        if vis[k]:
          drawing.label(ax_amp, xy[k, 0], xy[k, 1], _SHORT[spec.KEYPOINT_NAMES[k]], _SMALL_FONT)
    ax_amp.set_xlim(0, amp.shape[1] - 1)
    ax_amp.set_ylim(amp.shape[0] - 1, 0)
    ax_amp.set_title("; ".join(poses) or "no hand", fontsize=_FONT)
    ax_depth.set_title("depth", fontsize=_FONT)
    ax_seg.set_title("segmentation (black: background)", fontsize=_FONT)
  drawing.depth_colorbar(fig, list(axes[:, 1::3].ravel()), 0.0, sensor.DEPTH_FULL_SCALE_M,
                         _FONT, rows=rows)
  drawing.legend(fig, drawing.legend_handles(hidden=True, invalid_depth=True), _FONT)
  return fig


def render_png(frames: list[dict], columns: int = 1) -> bytes:
  """PNG bytes: per frame amplitude + skeleton (visible keypoints named), depth, segmentation."""
  return drawing.png_bytes(figure(frames, columns))


def augmented_batch_png(data_dir: str, split: str = "train", num_frames: int = 8,
                        seed: int = 0, columns: int = 4) -> bytes:
  """PNG bytes: a training batch as the network sees it, with its targets drawn over it.

  The frames come out of `pipeline.make_dataset(..., training=True)`:
  augmented (scale, rotation, translation, flip with left/right swap,
  two-hand compositing, gain, noise) and at network resolution. Over each
  input image: the keypoint targets in input pixels (filled dot: visible,
  ring: masked out), the cell each keypoint's one-hot target picks at the
  output stride (small square at the cell centre, `hand25d.decoding`) and at
  the coarsest deep-supervision stride (large square), and the outline of
  the segmentation target per side. A label, flip or stride bug shows as
  markers off the hand or squares away from their dots. A split with fewer
  frames than num_frames repeats them, augmented anew (a warning says so).

  Raises:
    PreviewError: as `stored_frames`.
  """
  from hand25d.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  try:
    # Repeated: the first batch is the same as one pass's, if the split has enough frames.
    dataset = pipeline.make_dataset(data_dir, split, num_frames, training=True, seed=seed,
                                    num_epochs=None)
    have = records.split_info(data_dir, records.load_manifest(data_dir), split)["num_frames"]
    features, targets = next(iter(dataset))
  except records.RecordError as e:
    raise PreviewError(str(e)) from e
  except pipeline.DATA_ERRORS as e:
    raise PreviewError(str(pipeline.name_data_error(data_dir, split, e))) from e
  if have < num_frames:
    logging.warning("split %r of %s has %d frames: the batch of %d repeats them", split,
                    data_dir, have, num_frames)
  title = f"augmented {split} batch (seed {seed})"
  return drawing.png_bytes(batch_figure(features["image"].numpy()[..., 0],
                                        {k: v.numpy() for k, v in targets.items()}, title,
                                        columns))


def batch_figure(images: np.ndarray, t: dict, title: str, columns: int = 4):
  """A batch's network inputs [B, h, w] and targets (numpy) as a Figure (`augmented_batch_png`)."""
  from hand25d import decoding  # pylint: disable=g-import-not-at-top
  rows = -(-len(images) // columns)
  fig = drawing.new_figure(2.4 * columns, 2.2 * rows + 0.8, DPI)
  axes = fig.subplots(rows, columns, squeeze=False)
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
      colour = drawing.side_colour(side)
      mask = t["segmentation"][i] == spec.SIDE_SEGMENTATION_CLASS[side]
      if mask.any():
        ys = (np.arange(mask.shape[0]) + 0.5) * seg_stride - 0.5
        xs = (np.arange(mask.shape[1]) + 0.5) * seg_stride - 0.5
        ax.contour(xs, ys, mask.astype(float), levels=[0.5], colors=[colour], linewidths=0.8)
      xy = t["keypoints_xy"][i, side]
      vis = t["keypoint_visible"][i, side] > 0.5
      drawing.draw_keypoints(ax, xy[vis], side, size=10)
      drawing.draw_keypoints(ax, xy[~vis], side, size=10, filled=False)
      for stride, size in ((spec.OUTPUT_STRIDE, 14), (coarse, 50)):
        index = t[f"keypoint_index_s{stride}"][i, side]
        width = image.shape[1] // stride
        cell = np.stack([index % width, index // width], axis=-1)
        centre = decoding.cell_to_pixel(cell, stride)
        ax.scatter(centre[vis, 0], centre[vis, 1], s=size, marker="s", facecolors="none",
                   edgecolors=[colour], lw=0.6, alpha=0.9)
      pose = (spec.POSE_CLASSES[int(t["pose"][i, side])] if t["pose_known"][i, side] > 0.5
              else "pose ?")
      orientation = (f"bin {int(np.argmax(t['orientation'][i, side]))}"
                     if t["orientation_known"][i, side] > 0.5 else "bin ?")
      labels.append(f"{spec.SIDES[side]}: {pose}, {orientation}")
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    mask_note = "" if t["segmentation_known"][i] > 0.5 else "\n(mask unknown)"
    ax.set_title(("\n".join(labels) or "no hand") + mask_note, fontsize=_FONT)
  fig.suptitle(f"{title}: targets over the network input; squares: the target cells at "
               f"strides {spec.OUTPUT_STRIDE} (small) and {coarse} (large); "
               "outlines: the segmentation target", fontsize=_FONT)
  drawing.legend(fig, drawing.legend_handles(hidden=True), _FONT)
  return fig
