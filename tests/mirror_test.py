"""The mirror ensemble (hand25d.mirror): outputs of a mirrored image mapped back, and averaged."""

import numpy as np
import pytest

from hand25d import decoding
from hand25d import mirror
from hand25d import spec

_H, _W = 120, 160  # Network input.


def _outputs(rng: np.random.Generator, batch: int = 2) -> dict[str, np.ndarray]:
  """Random logits of every output the training model can have."""
  maps = {spec.KEYPOINTS: (spec.OUTPUT_STRIDE, spec.NUM_PRIMARY_CHANNELS),
          spec.AUX_KEYPOINTS: (spec.OUTPUT_STRIDE, spec.NUM_AUX_CHANNELS),
          spec.SEGMENTATION: (spec.SEGMENTATION_STRIDE, spec.NUM_SEGMENTATION_CLASSES),
          spec.HAND_MASK: (spec.HAND_MASK_STRIDE, spec.NUM_SEGMENTATION_CLASSES),
          **{spec.deep_supervision_output(s): (s, spec.NUM_PRIMARY_CHANNELS)
             for s in spec.DEEP_SUPERVISION_STRIDES}}
  out = {name: rng.normal(size=(batch, _H // s, _W // s, c)).astype(np.float32)
         for name, (s, c) in maps.items()}
  out[spec.PRESENCE] = rng.normal(size=(batch, spec.NUM_SIDES)).astype(np.float32)
  out[spec.VISIBILITY] = rng.normal(size=(batch, spec.NUM_SIDES, spec.NUM_KEYPOINTS))
  out[spec.POSE] = rng.normal(size=(batch, spec.NUM_SIDES, spec.NUM_POSE_CLASSES))
  out[spec.ORIENTATION] = rng.normal(size=(batch, spec.NUM_SIDES, spec.NUM_ORIENTATION_BINS))
  return out


def test_unmirror_twice_is_the_identity():
  outputs = _outputs(np.random.default_rng(0))
  again = mirror.unmirror(mirror.unmirror(outputs))
  assert set(again) == set(outputs)
  for name, value in outputs.items():
    np.testing.assert_array_equal(again[name], value, err_msg=name)


def test_a_keypoint_found_on_the_mirror_image_decodes_where_it_is():
  """The left wrist at cell (row 7, col 11) is the right wrist at the mirror column there."""
  hs, ws = _H // spec.OUTPUT_STRIDE, _W // spec.OUTPUT_STRIDE
  left_wrist = spec.primary_channel("left", "wrist_center")
  right_wrist = spec.primary_channel("right", "wrist_center")
  image = np.zeros((1, hs, ws, spec.NUM_PRIMARY_CHANNELS), np.float32)
  image[0, 7, 11, left_wrist] = 9.0
  image[0, 7, 12, left_wrist] = 4.0  # A shoulder, so the refinement moves it off the centre.
  mirrored = np.zeros_like(image)
  mirrored[0, 7, ws - 1 - 11, right_wrist] = 9.0
  mirrored[0, 7, ws - 1 - 12, right_wrist] = 4.0
  # The hand mask says the same: the left hand's class there, the right's on the mirror image.
  mask = np.zeros((1, _H // spec.HAND_MASK_STRIDE, _W // spec.HAND_MASK_STRIDE, 3), np.float32)
  mask[0, 1, 2, spec.SIDE_SEGMENTATION_CLASS[0]] = 5.0
  mirrored_mask = np.zeros_like(mask)
  mirrored_mask[0, 1, mask.shape[2] - 1 - 2, spec.SIDE_SEGMENTATION_CLASS[1]] = 5.0

  back = mirror.unmirror({spec.KEYPOINTS: mirrored, spec.HAND_MASK: mirrored_mask})
  np.testing.assert_array_equal(back[spec.KEYPOINTS], image)
  np.testing.assert_array_equal(back[spec.HAND_MASK], mask)
  xy, _ = decoding.decode_outputs(back)
  expected, _ = decoding.decode_outputs({spec.KEYPOINTS: image, spec.HAND_MASK: mask})
  np.testing.assert_allclose(xy[0, left_wrist], expected[0, left_wrist], atol=1e-5)
  assert 11 * spec.OUTPUT_STRIDE < xy[0, left_wrist, 0] < 12 * spec.OUTPUT_STRIDE + 1


def test_per_side_outputs_swap_sides():
  presence = np.array([[1.0, -2.0]], np.float32)
  pose = np.arange(2 * spec.NUM_POSE_CLASSES, dtype=np.float32).reshape(1, 2, -1)
  back = mirror.unmirror({spec.PRESENCE: presence, spec.POSE: pose})
  np.testing.assert_array_equal(back[spec.PRESENCE], [[-2.0, 1.0]])
  np.testing.assert_array_equal(back[spec.POSE][0, 0], pose[0, 1])


def test_the_ensemble_of_a_mirror_symmetric_network_is_its_own_outputs():
  """A network whose outputs on the mirror image are exactly the mirrored outputs."""
  outputs = _outputs(np.random.default_rng(1))
  mirrored = mirror.unmirror(outputs)  # Its own inverse: the outputs on the mirror image.
  merged = mirror.ensemble(outputs, mirrored)
  for name, value in outputs.items():
    np.testing.assert_allclose(merged[name], value, rtol=1e-6, err_msg=name)
    assert merged[name].dtype == np.float32


def test_the_ensemble_is_the_mean_of_the_logits():
  a = {spec.PRESENCE: np.array([[2.0, 0.0]], np.float32)}
  b = {spec.PRESENCE: np.array([[4.0, -6.0]], np.float32)}  # Sides swap: right 4, left -6.
  np.testing.assert_array_equal(mirror.ensemble(a, b)[spec.PRESENCE], [[-2.0, 2.0]])


def test_mirror_images_reverses_the_columns():
  x = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)
  np.testing.assert_array_equal(mirror.mirror_images(x)[0, :, 0], x[0, :, 2])
  with pytest.raises(ValueError, match=r"expected images \[B, H, W, C\], got shape \[2, 3, 4\]"):
    mirror.mirror_images(x[0])


@pytest.mark.parametrize("outputs, match", [
    ({"heatmaps": np.zeros((1, 4, 4, 16))}, "'heatmaps' has no known mirror"),
    ({spec.KEYPOINTS: np.zeros((1, 4, 4, 17))}, r"'keypoints': expected maps \[B, H, W, 16\]"),
    ({spec.PRESENCE: np.zeros((1, 3))}, r"'presence': expected \[B, 2, ...\]"),
])
def test_unknown_or_misshapen_outputs_are_refused_by_name(outputs, match):
  with pytest.raises(ValueError, match=match):
    mirror.unmirror(outputs)


def test_passes_with_different_outputs_are_refused():
  a = {spec.PRESENCE: np.zeros((1, 2), np.float32)}
  with pytest.raises(ValueError, match="different outputs"):
    mirror.ensemble(a, {**a, spec.POSE: np.zeros((1, 2, spec.NUM_POSE_CLASSES))})
  with pytest.raises(ValueError, match="shape"):
    mirror.ensemble(a, {spec.PRESENCE: np.zeros((2, 2), np.float32)})
