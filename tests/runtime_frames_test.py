"""Every kind of bad phase frame is named; good frames pass through."""

import numpy as np
import pytest

from hand25d import spec
from hand25d.runtime import frames as frames_lib

N, H, W = spec.NUM_PHASE_FRAMES, spec.SENSOR.height, spec.SENSOR.width


def _good():
  rng = np.random.default_rng(0)
  return rng.integers(100, 2000, (N, H, W)).astype(np.uint16)


def test_good_frames_pass_as_array_or_list():
  good = _good()
  np.testing.assert_array_equal(frames_lib.check_phase_frames(good), good)
  np.testing.assert_array_equal(frames_lib.check_phase_frames(list(good)), good)
  np.testing.assert_array_equal(frames_lib.check_phase_frames(good.astype(np.float32)), good)


def _bad_cases():
  good = _good()
  nan = good.astype(np.float32)
  nan[1, 5, 5] = np.nan
  saturated = good.copy()
  saturated[2] = 4095
  dead = good.copy()
  dead[3] = 0
  return [
      (good[:, :100], frames_lib.WRONG_SHAPE),
      (list(good[:3]) + [good[3][:10]], frames_lib.WRONG_SHAPE),
      (good.astype(np.int8), frames_lib.WRONG_DTYPE),
      (nan, frames_lib.NON_FINITE),
      (saturated, frames_lib.SATURATED),
      (list(good[:3]) + [None], frames_lib.MISSING_PHASE),
      (good[:3], frames_lib.MISSING_PHASE),
      (dead, frames_lib.MISSING_PHASE),
  ]


@pytest.mark.parametrize("index", range(len(_bad_cases())))
def test_bad_frames_are_named(index):
  frames, kind = _bad_cases()[index]
  with pytest.raises(frames_lib.BadFrameError) as e:
    frames_lib.check_phase_frames(frames)
  assert e.value.kind == kind
  assert kind in str(e.value)


def test_no_valid_depth():
  frames_lib.check_depth(np.full((H, W), 0.5))
  with pytest.raises(frames_lib.BadFrameError, match=frames_lib.NO_VALID_DEPTH):
    frames_lib.check_depth(np.zeros((H, W)))
