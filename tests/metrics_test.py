"""Evaluation metrics on hand-made cases."""

import numpy as np
import pytest

from hand25d import metrics
from hand25d import spec

H, W = 30, 40  # Score maps at stride 2 of a 60x80 input.
S = spec.OUTPUT_STRIDE


def _one_hot_maps(cells):
  """Score maps [1, H, W, 16] with a sharp peak at cells[c] = (row, col)."""
  maps = np.full((1, H, W, spec.NUM_PRIMARY_CHANNELS), -50.0)
  for c, (r, q) in enumerate(cells):
    maps[0, r, q, c] = 50.0
  return maps


def _targets(xy, visible, present=(1, 1)):
  full = np.zeros((1, 2, 17, 2))
  vis = np.zeros((1, 2, 17))
  for c, (p, v) in enumerate(zip(xy, visible)):
    side, k = divmod(c, spec.NUM_PRIMARY_KEYPOINTS)
    full[0, side, spec.PRIMARY_KEYPOINT_INDICES[k]] = p
    vis[0, side, spec.PRIMARY_KEYPOINT_INDICES[k]] = v
  return {"keypoints_xy": full, "keypoint_visible": vis,
          "hand_present": np.array([present], np.float32)}


def test_keypoint_error_pck_and_masking():
  cells = [(5, 5)] * 16
  centre = (5 * S + 0.5, 5 * S + 0.5)  # Cell centre in input pixels: (10.5, 10.5).
  xy = [(centre[0] + 3.0, centre[1] + 4.0)] * 8 + [centre] * 8  # left: 5 px off
  visible = [1] * 15 + [0]
  ev = metrics.Evaluator()
  ev.update({spec.KEYPOINTS: _one_hot_maps(cells)}, _targets(xy, visible))
  res = ev.result()
  assert res["num_keypoints"] == 15
  assert res["per_side_px_error"]["left"] == pytest.approx(5.0, abs=1e-6)
  assert res["per_side_px_error"]["right"] == pytest.approx(0.0, abs=1e-6)
  assert res["mean_px_error"] == pytest.approx(8 * 5.0 / 15, abs=1e-6)
  assert res["pck"] == pytest.approx({"2px": 7 / 15, "4px": 7 / 15, "8px": 1.0})
  assert res["per_keypoint_px_error"]["right/middle_mcp"] is None  # Never visible.


def test_accumulates_over_batches():
  ev = metrics.Evaluator()
  cells = [(0, 0)] * 16
  for offset in (1.0, 3.0):
    xy = [(0.5 + offset, 0.5)] * 16
    ev.update({spec.KEYPOINTS: _one_hot_maps(cells)}, _targets(xy, [1] * 16))
  assert ev.result()["mean_px_error"] == pytest.approx(2.0)
  assert ev.num_examples == 2


def test_classification_f1_and_miou():
  targets = _targets([(0, 0)] * 16, [1] * 16, present=(1, 0))
  targets["pose"] = np.array([[2, 5]])
  targets["orientation"] = spec.ORIENTATION_SOFT_LABELS[[[3, 0]]]
  seg_true = np.zeros((1, 2, 2), np.int64)
  seg_true[0, 0, 0] = 1
  targets["segmentation"] = seg_true
  pose = np.zeros((1, 2, 9))
  pose[0, 0, 2] = pose[0, 1, 0] = 1.0  # Right hand wrong, but absent: ignored.
  orient = np.zeros((1, 2, 8))
  orient[0, 0, 4] = 1.0  # Wrong bin.
  vis = np.full((1, 2, 17), -1.0)
  vis[0, 0, :10] = 1.0  # Truth: the 16 primary. TP 8, FP 2 (thumb_ip, middle_pip), FN 8.
  seg = np.zeros((1, 2, 2, 3))
  seg[..., 0] = 1.0  # Everything predicted background.
  res_ev = metrics.Evaluator()
  res_ev.update({spec.POSE: pose, spec.ORIENTATION: orient, spec.VISIBILITY: vis,
                 spec.PRESENCE: np.array([[3.0, 3.0]]), spec.SEGMENTATION: seg}, targets)
  res = res_ev.result()
  assert res["pose_accuracy"] == 1.0
  assert res["orientation_accuracy"] == 0.0
  assert res["visibility_f1"] == pytest.approx(16 / (16 + 2 + 8))
  assert res["presence_f1"] == pytest.approx(2 / 3)  # 1 TP, 1 FP.
  assert res["segmentation_iou"] == pytest.approx(
      {"background": 0.75, "left_hand": 0.0, "right_hand": None})
  assert res["segmentation_miou"] == pytest.approx(0.375)
  assert "mean_px_error" in res and res["mean_px_error"] is None
  table = metrics.format_markdown(res)
  assert "| pose accuracy | 1.000 |" in table and "n/a" in table


def test_unknown_labels_are_skipped_not_counted_wrong():
  targets = {"keypoints_xy": np.zeros((2, 2, 17, 2)), "keypoint_visible": np.zeros((2, 2, 17)),
             "hand_present": np.ones((2, 2), np.float32), "pose": np.zeros((2, 2), np.int32),
             "orientation": spec.ORIENTATION_SOFT_LABELS[np.zeros((2, 2), int)],
             "segmentation": np.zeros((2, 3, 4), np.int32),
             "pose_known": np.array([[1, 1], [0, 0]], np.float32),
             "orientation_known": np.array([[1, 0], [1, 0]], np.float32),
             "segmentation_known": np.array([1, 0], np.float32)}
  pose = np.zeros((2, 2, spec.NUM_POSE_CLASSES))
  pose[1, :, 1] = 9.0  # Wrong, but on unknown poses.
  orientation = np.zeros((2, 2, spec.NUM_ORIENTATION_BINS))
  orientation[:, 0, 0] = 9.0
  orientation[:, 1, 3] = 9.0  # Wrong, but on unknown orientations.
  seg = np.zeros((2, 3, 4, spec.NUM_SEGMENTATION_CLASSES))
  seg[0, ..., 0] = 9.0
  seg[1, ..., 2] = 9.0  # Wrong, but on an unknown mask.
  ev = metrics.Evaluator()
  ev.update({spec.POSE: pose, spec.ORIENTATION: orientation, spec.SEGMENTATION: seg}, targets)
  res = ev.result()
  assert res["pose_accuracy"] == 1.0
  assert res["orientation_accuracy"] == 1.0
  assert res["segmentation_iou"]["background"] == 1.0
