"""Keypoint decoding: arg-max, sub-pixel refinement and the cell/pixel mapping."""

import numpy as np
import pytest

from hand25d import decoding


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
  # A parabola fits a Gaussian log-map exactly.
  np.testing.assert_allclose(fine[0, :2], np.array(points[:2]), atol=1e-6)
  assert np.all(np.linalg.norm(fine[0] - points, axis=-1)
                <= np.linalg.norm(coarse[0] - points, axis=-1) + 1e-9)


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
