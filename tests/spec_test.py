"""Pins the data model of hand25d/spec.py (docs/spec.md)."""

import numpy as np
import pytest

from hand25d import spec


def test_keypoint_counts_and_names():
  assert spec.NUM_KEYPOINTS == 17
  assert spec.KEYPOINT_NAMES[0] == "wrist_center"
  assert spec.KEYPOINT_NAMES[16] == "pinky_tip"
  assert spec.KEYPOINT_INDEX["index_tip"] == 7
  assert len(set(spec.KEYPOINT_NAMES)) == 17
  assert len(spec.KEYPOINT_PARENTS) == 17
  assert all(p < i for i, p in enumerate(spec.KEYPOINT_PARENTS))


def test_primary_keypoints():
  assert spec.NUM_PRIMARY_KEYPOINTS == 8
  assert spec.PRIMARY_KEYPOINT_INDICES == (0, 1, 2, 4, 5, 6, 7, 8)
  assert spec.NUM_PRIMARY_CHANNELS == 16
  assert spec.NUM_AUX_CHANNELS == 34
  assert spec.primary_channel("left", "wrist_center") == 0
  assert spec.primary_channel("right", "wrist_center") == 8
  assert spec.primary_channel("right", "middle_mcp") == 15
  assert spec.channel_names()[3] == "left/thumb_tip"
  assert spec.channel_names(primary=False)[17] == "right/wrist_center"


def test_primary_channel_rejects_bad_names():
  with pytest.raises(ValueError, match="not a primary keypoint"):
    spec.primary_channel("left", "pinky_tip")
  with pytest.raises(ValueError, match="unknown side"):
    spec.primary_channel("middle", "wrist_center")


def test_fingertips_count_double():
  assert spec.FINGERTIP_INDICES == (4, 7, 10, 13, 16)
  w = spec.PRIMARY_CHANNEL_LOSS_WEIGHTS
  assert w.shape == (16,)
  assert np.flatnonzero(w == 2.0).tolist() == [3, 6, 11, 14]  # thumb/index tips
  assert np.count_nonzero(spec.AUX_CHANNEL_LOSS_WEIGHTS == 2.0) == 10


def test_flip_permutation_swaps_hands():
  perm = spec.PRIMARY_FLIP_PERMUTATION
  assert perm[0] == 8 and perm[8] == 0
  assert sorted(perm) == list(range(16))
  assert [perm[p] for p in perm] == list(range(16))  # an involution
  aux = spec.AUX_FLIP_PERMUTATION
  assert aux[0] == 17 and [aux[p] for p in aux] == list(range(34))


def test_classes():
  assert spec.NUM_POSE_CLASSES == 9
  assert spec.POSE_CLASSES[-1] == "other"
  assert spec.NUM_ORIENTATION_BINS == 8
  assert spec.SEGMENTATION_CLASSES == ("background", "left_hand", "right_hand")
  assert spec.SIDE_SEGMENTATION_CLASS == (1, 2)


@pytest.mark.parametrize("roll,expected", [(0.0, 0), (22.4, 0), (22.5, 1), (-22.5, 0),
                                           (-22.6, 7), (180.0, 4), (359.0, 0), (405.0, 1)])
def test_orientation_bins(roll, expected):
  assert spec.orientation_bin(roll) == expected


def test_soft_orientation_labels():
  table = spec.ORIENTATION_SOFT_LABELS
  np.testing.assert_allclose(table.sum(axis=1), 1.0)
  label = spec.soft_orientation_label(0)
  assert label[0] == pytest.approx(0.5)
  assert label[1] == label[7] == pytest.approx(0.25)
  assert np.count_nonzero(label) == 3
  with pytest.raises(ValueError, match="out of range"):
    spec.soft_orientation_label(8)
  with pytest.raises(ValueError, match="finite"):
    spec.orientation_bin(float("nan"))


def test_sensor_and_input():
  s = spec.SENSOR
  assert (s.height, s.width) == (240, 320)
  assert (s.min_depth_m, s.max_depth_m) == (0.15, 0.9)
  assert s.unambiguous_range_m > s.max_depth_m
  assert spec.NUM_PHASE_FRAMES == 4
  assert (spec.INPUT_HEIGHT, spec.INPUT_WIDTH) == (120, 160)
  k = s.intrinsics.scaled(0.5, 0.5)
  assert (k.fx, k.cx, k.cy) == (100.0, 79.5, 59.5)
  assert s.intrinsics.matrix()[0, 2] == 159.5


def test_output_shapes():
  assert spec.output_shape(spec.OUTPUT_STRIDE, spec.NUM_PRIMARY_CHANNELS) == (60, 80, 16)
  assert spec.output_shape(8, 16) == (15, 20, 16)
  assert spec.deep_supervision_output(8) == "ds_keypoints_s8"
  with pytest.raises(ValueError, match="no deep supervision"):
    spec.deep_supervision_output(16)
  with pytest.raises(ValueError, match="not divisible"):
    spec.output_shape(8, 16, height=100)
