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


def test_fractional_float_frames_are_refused_not_rounded():
  good = _good()
  for frames, words in [(good.astype(np.float32) + 0.3, f"{good[0, 0, 0] + 0.3:g} at [0, 0, 0]"),
                        (good / 4095, "look normalised to [0, 1]")]:
    with pytest.raises(frames_lib.BadFrameError) as e:
      frames_lib.check_phase_frames(frames)
    assert e.value.kind == frames_lib.WRONG_DTYPE, e.value
    assert "fractional" in str(e.value) and "ADC counts" in str(e.value), e.value
    assert words in str(e.value), e.value
  # Integral-valued floats are counts: accepted, as uint16.
  np.testing.assert_array_equal(frames_lib.check_phase_frames(good.astype(np.float64)), good)


ACCEPTED_DTYPES = ["uint16", ">u2", "<u2", "int16", ">i2", "int32", ">i4", "uint32", "int64",
                   "uint64", "float32", ">f4", "float64"]


@pytest.mark.parametrize("dtype", ACCEPTED_DTYPES)
def test_every_wide_enough_dtype_in_either_byte_order_is_accepted(dtype):
  good = _good()
  for frames in (good.astype(dtype), list(good.astype(dtype))):
    checked = frames_lib.check_phase_frames(frames)
    assert checked.dtype == np.dtype(np.uint16) and checked.dtype.isnative
    np.testing.assert_array_equal(checked, good)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "bool", "complex64", "U4", "object"])
def test_other_dtypes_are_refused_as_an_array_or_frame_by_frame(dtype):
  good = (_good() // 16).astype(np.uint8)  # Fits 8 bits: refused for the dtype alone.
  for frames in (good.astype(dtype), list(good.astype(dtype)),
                 [good[0].astype(dtype)] + list(good[1:].astype(np.uint16))):
    with pytest.raises(frames_lib.BadFrameError) as e:
      frames_lib.check_phase_frames(frames)
    assert e.value.kind == frames_lib.WRONG_DTYPE, e.value
    assert "at least 16 bits" in str(e.value), e.value


@pytest.mark.parametrize("dtype, value", [("int16", -1), (">i2", -1), ("uint32", 4096),
                                          (">u2", 4096), ("int64", 1 << 40), ("float32", -1.0)])
def test_values_outside_the_adc_range_are_refused_whatever_the_dtype(dtype, value):
  frames = _good().astype(dtype)
  frames[1, 2, 3] = value
  with pytest.raises(frames_lib.BadFrameError, match=r"outside the ADC range \[0, 4095\]") as e:
    frames_lib.check_phase_frames(frames)
  assert e.value.kind == frames_lib.WRONG_DTYPE
