"""Keypoint decoding: arg-max, sub-pixel refinement and the cell/pixel mapping."""

import numpy as np
import pytest

from hand25d import decoding
from hand25d import spec


def _peaked_maps(h, w, points, stride, sigma=1.0):
  """Gaussian log-score maps peaking at `points` given in input pixels."""
  rows, cols = np.mgrid[0:h, 0:w]
  maps = []
  for x, y in points:
    cx, cy = (x + 0.5) / stride - 0.5, (y + 0.5) / stride - 0.5
    maps.append(-((cols - cx) ** 2 + (rows - cy) ** 2) / (2 * sigma**2))
  return np.stack(maps, axis=-1)[None]


def test_cell_pixel_round_trip():
  for stride in (1, 2, 4, 8):
    cells = np.arange(10)
    np.testing.assert_array_equal(
        decoding.pixel_to_cell(decoding.cell_to_pixel(cells, stride), stride), cells)
  assert decoding.cell_to_pixel(0, 2) == 0.5  # Covers input pixels 0 and 1.
  assert decoding.pixel_to_cell(1.4, 2) == 0 and decoding.pixel_to_cell(1.6, 2) == 1


def test_arg_max_without_refinement_snaps_to_cell_centre():
  maps = _peaked_maps(15, 20, [(33.0, 17.0)], stride=8)
  xy, conf = decoding.decode(maps, 8, refine=False)
  # Cell (4, 2) holds x=33, y=17; its centre is at (4.5*8-0.5, 2.5*8-0.5).
  np.testing.assert_allclose(xy[0, 0], [35.5, 19.5])
  assert 0.0 < conf[0, 0] <= 1.0


def test_refinement_recovers_sub_cell_position():
  points = [(33.0, 17.0), (10.3, 50.9), (0.0, 0.0)]
  maps = _peaked_maps(30, 40, points, stride=4)
  coarse, _ = decoding.decode(maps, 4, refine=False)
  fine, _ = decoding.decode(maps, 4, refine=True)
  # The local soft-argmax of a Gaussian log-map is its centre, up to the
  # tails its window cuts off (REFINE_RADIUS cells; 2 for the second point,
  # whose peak cell is 2 from the border).
  np.testing.assert_allclose(fine[0, :2], np.array(points[:2]), atol=0.02)
  assert np.all(np.linalg.norm(fine[0] - points, axis=-1)
                <= np.linalg.norm(coarse[0] - points, axis=-1) + 1e-9)


def test_near_tie_gives_nearly_the_same_keypoint_whichever_cell_wins():
  # Two cells of nearly equal score, two cells apart: the arg-max jumps 4 px
  # between them, the refined keypoint by much less.
  maps = np.full((2, 9, 9, 1), -8.0)
  maps[:, 4, 3, 0] = maps[:, 4, 5, 0] = 3.0
  maps[0, 4, 3, 0] += 1e-3
  maps[1, 4, 5, 0] += 1e-3
  coarse, _ = decoding.decode(maps, 2, refine=False)
  fine, _ = decoding.decode(maps, 2)
  assert np.linalg.norm(coarse[0, 0] - coarse[1, 0]) == pytest.approx(4.0)
  assert np.linalg.norm(fine[0, 0] - fine[1, 0]) < 0.01
  np.testing.assert_allclose(fine[0, 0], [8.5, 8.5], atol=0.01)  # Between them, cell 4.


def test_refinement_reads_only_its_window():
  maps = _peaked_maps(20, 20, [(16.0, 16.0)], stride=2)
  far = maps.copy()
  far[0, 8, 8 + decoding.REFINE_RADIUS + 1, 0] = maps[0, 8, 8, 0] - 0.1  # Just outside.
  near = maps.copy()
  near[0, 8, 8 + decoding.REFINE_RADIUS, 0] = maps[0, 8, 8, 0] - 0.1  # Just inside.
  want, _ = decoding.decode(maps, 2)
  np.testing.assert_allclose(decoding.decode(far, 2)[0], want)
  assert decoding.decode(near, 2)[0][0, 0, 0] > want[0, 0, 0] + 0.5
  # Radius 0 is the peak cell's centre.
  np.testing.assert_allclose(decoding.decode(near, 2, refine_radius=0)[0],
                             decoding.decode(near, 2, refine=False)[0])


def test_bad_refinement_constants_are_a_clear_error():
  with pytest.raises(ValueError, match="integer radius >= 0 and a temperature > 0, got -1 and "):
    decoding.decode(np.zeros((1, 4, 5, 1)), 2, refine_radius=-1)
  with pytest.raises(ValueError, match="got 1.5 and"):
    decoding.decode(np.zeros((1, 4, 5, 1)), 2, refine_radius=1.5)
  with pytest.raises(ValueError, match=r"got \d+ and 0\b"):
    decoding.decode(np.zeros((1, 4, 5, 1)), 2, refine_temperature=0)


def test_infinite_logits_stay_at_the_peak_cell():
  maps = np.zeros((1, 6, 6, 2))
  maps[0, 2, 3, 0] = np.inf  # One infinite peak,
  maps[0, :, :, 1] = -np.inf  # and a map of no finite score at all.
  with np.errstate(all="ignore"):  # The confidence of such maps is NaN.
    xy, _ = decoding.decode(maps, 2)
  np.testing.assert_allclose(xy[0, 0], [3 * 2 + 0.5, 2 * 2 + 0.5])
  assert np.all(np.isfinite(xy))


def test_flat_map_stays_at_cell_and_confidence_is_uniform():
  xy, conf = decoding.decode(np.zeros((1, 4, 5, 2)), 2)
  np.testing.assert_allclose(xy[0, 0], [0.5, 0.5])
  np.testing.assert_allclose(conf, 1.0 / 20)


def test_bad_shape_is_a_clear_error():
  with pytest.raises(ValueError, match=r"\[B, H, W, C\].*\(4, 5\)"):
    decoding.decode(np.zeros((4, 5)), 2)


def test_peak_on_border_is_not_pushed_outside():
  maps = np.full((1, 4, 5, 1), -50.0)
  maps[0, 0, 4, 0] = 50.0  # Top-right corner cell.
  xy, _ = decoding.decode(maps, 2)
  np.testing.assert_allclose(xy[0, 0], [4 * 2 + 0.5, 0.5])


def _two_hand_maps(h=8, w=12):
  """16 primary score maps with two peaks each: on the left hand's cells and the right's."""
  maps = np.full((1, h, w, spec.NUM_PRIMARY_CHANNELS), -10.0)
  maps[0, 2, 2, :] = 5.0  # Where the left hand is.
  maps[0, 6, 9, :] = 5.0  # Where the right hand is.
  maps[0, 6, 9, :spec.NUM_PRIMARY_KEYPOINTS] = 5.5  # Left maps prefer the right hand, a bit;
  maps[0, 2, 2, spec.NUM_PRIMARY_KEYPOINTS:] = 4.5  # the right maps the right hand.
  return maps


def _hand_mask(h=8, w=12, stride=2, mask_stride=8):
  """Mask logits at mask_stride: the left hand around cell (2, 2), the right around (6, 9)."""
  f = mask_stride // stride
  mask = np.zeros((1, h // f, w // f, 3))
  mask[..., 0] = 4.0  # Background elsewhere.
  mask[0, 2 // f, 2 // f] = [-4.0, 4.0, -4.0]
  mask[0, 6 // f, 9 // f] = [-4.0, -4.0, 4.0]
  return mask


def test_hand_mask_moves_a_left_keypoint_off_the_right_hand():
  maps, mask = _two_hand_maps(), _hand_mask()
  without, _ = decoding.decode(maps, 2, refine=False)
  with_mask, _ = decoding.decode(maps, 2, refine=False, hand_mask=mask)
  n = spec.NUM_PRIMARY_KEYPOINTS
  # Without the mask every left-hand keypoint is found on the right hand...
  np.testing.assert_allclose(without[0, :n], [[9 * 2 + 0.5, 6 * 2 + 0.5]] * n)
  # ... with it, on the left hand; the right hand's stay where they were.
  np.testing.assert_allclose(with_mask[0, :n], [[2 * 2 + 0.5, 2 * 2 + 0.5]] * n)
  np.testing.assert_allclose(with_mask[0, n:], without[0, n:])
  # decode_outputs uses the mask when the outputs have one.
  xy, _ = decoding.decode_outputs({spec.KEYPOINTS: maps, spec.HAND_MASK: mask}, refine=False)
  np.testing.assert_allclose(xy, with_mask)
  xy, _ = decoding.decode_outputs({spec.KEYPOINTS: maps}, refine=False)
  np.testing.assert_allclose(xy, without)


def test_uniform_hand_mask_changes_nothing():
  maps = _peaked_maps(8, 12, [(5.0, 3.0)] * spec.NUM_PRIMARY_CHANNELS, stride=2)
  flat = np.zeros((1, 2, 3, 3))  # Every class equally likely everywhere.
  want, _ = decoding.decode(maps, 2)
  got, _ = decoding.decode(maps, 2, hand_mask=flat)
  np.testing.assert_allclose(got, want)


def test_hand_mask_log_prior_is_bilinear_with_centres_aligned():
  mask = np.zeros((1, 1, 2, 3))
  mask[0, 0, 0] = [0.0, 50.0, 0.0]  # Left hand certain in the left cell,
  mask[0, 0, 1] = [50.0, 0.0, 0.0]  # background in the right one.
  prior = decoding.hand_mask_log_prior(mask, mask_stride=8, stride=2)
  assert prior.shape == (1, 4, 8, spec.NUM_SIDES)
  left = np.exp(prior[0, 0, :, 0])
  # Fine cells 0-1 lie left of the first coarse centre (clamped), 6-7 right of the second.
  np.testing.assert_allclose(left, [1, 1, 0.875, 0.625, 0.375, 0.125, 1e-4, 1e-4], atol=1e-6)
  np.testing.assert_allclose(prior[..., 1], np.log(1e-4), rtol=1e-5)


def test_hand_mask_that_does_not_fit_is_a_clear_error():
  maps = np.zeros((1, 8, 12, spec.NUM_PRIMARY_CHANNELS))
  with pytest.raises(ValueError, match=r"hand mask \(1, 3, 3, 3\).*score maps \(1, 8, 12, 16\)"):
    decoding.decode(maps, 2, hand_mask=np.zeros((1, 3, 3, 3)))
  with pytest.raises(ValueError, match=r"\[B, h, w, 3\]"):
    decoding.decode(maps, 2, hand_mask=np.zeros((1, 2, 3, 2)))
  with pytest.raises(ValueError, match="not a multiple"):
    decoding.hand_mask_log_prior(np.zeros((1, 2, 3, 3)), mask_stride=6, stride=4)


def test_with_a_hand_mask_refinement_and_confidence_read_the_maps_alone():
  # One peak per map, off-centre between its neighbours; a mask whose left-hand
  # probability falls steeply across the peak: it must not pull the keypoint.
  maps = _peaked_maps(8, 12, [(5.3, 3.0)] * spec.NUM_PRIMARY_CHANNELS, stride=2)
  mask = np.zeros((1, 2, 3, 3))
  mask[0, :, 0] = [-4.0, 4.0, 4.0]  # Both hands likely on the left third,
  mask[0, :, 1] = [0.0, 0.0, 0.0]  # even in the middle one, where the peak is,
  mask[0, :, 2] = [4.0, -4.0, -4.0]  # unlikely on the right.
  want_xy, want_conf = decoding.decode(maps, 2)
  got_xy, got_conf = decoding.decode(maps, 2, hand_mask=mask, mask_weight=1.0)
  np.testing.assert_allclose(got_xy, want_xy)
  np.testing.assert_allclose(got_conf, want_conf)
