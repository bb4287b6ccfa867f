"""Recordings: each format on tiny files, timestamps, and bad files reported by name."""

import dataclasses
import io
import os
import re

import numpy as np
from PIL import Image
import pytest

import damaged_png
from hand25d import sensor
from hand25d.runtime import frames as frames_lib
from hand25d.runtime import recordings

# A tiny sensor keeps the files small.
H, W = 6, 8
CFG = dataclasses.replace(sensor.DEFAULT_SENSOR, height=H, width=W, cx=3.5, cy=2.5)
RNG = np.random.default_rng(0)


def _phase():
  return RNG.integers(100, 3000, (4, H, W)).astype(np.uint16)


def _depth_mm(value: int = 450):
  return np.full((H, W), value, np.uint16)


def _ir():
  return RNG.integers(0, 5000, (H, W)).astype(np.uint16)


def _png(path, image) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path)


def _errors(recording) -> dict[str, str | None]:
  return {f.name: (f.error and str(f.error)) for f in recording}


def test_png_directory_with_timestamps(tmp_path):
  for i in range(3):
    _png(tmp_path / "ir" / f"{i:04d}.png", _ir())
    _png(tmp_path / "depth" / f"{i:04d}.png", _depth_mm(400 + i))
  (tmp_path / "timestamps.csv").write_text("name,timestamp_s\n0000,5.0\n0001,5.04\n0002,5.1\n")
  rec = recordings.open_recording(str(tmp_path), CFG)
  frames = list(rec)
  assert rec.kind == "png" and len(rec) == 3
  assert [f.timestamp_s for f in frames] == [5.0, 5.04, 5.1]
  assert [f.name for f in frames] == [os.path.join("ir", f"{i:04d}.png") for i in range(3)]
  assert frames[2].depth.dtype == np.uint16 and frames[2].depth[0, 0] == 402
  assert frames[0].amplitude.shape == (H, W) and frames[0].phase_frames is None


@pytest.mark.parametrize("image, words", [
    (np.full((H, W), 45, np.uint8), "8-bit greyscale"),
    (np.zeros((H, W, 3), np.uint8), "RGB colour"),
    (np.full((H + 1, W), 450, np.uint16), f"is {H + 1}x{W} pixels, the SensorConfig says {H}x{W}"),
    (np.full((H, W), 45, np.uint16), "nearer than 0.1 m"),  # Centimetres, read as mm.
    (np.full((H, W), 65535, np.uint16), "beyond 10 m"),  # A sentinel for invalid.
])
def test_a_bad_png_is_that_frames_error_naming_the_file(tmp_path, image, words):
  for i in range(2):
    _png(tmp_path / "ir" / f"{i}.png", _ir())
    _png(tmp_path / "depth" / f"{i}.png", image if i == 0 else _depth_mm())
  errors = _errors(recordings.open_recording(str(tmp_path), CFG, fps=10.0))
  first = errors[os.path.join("ir", "0.png")]
  assert first.startswith(frames_lib.UNREADABLE) and words in first, first
  assert str(tmp_path / "depth" / "0.png") in first
  assert errors[os.path.join("ir", "1.png")] is None  # The next frame is read.


def test_a_corrupt_png_is_that_frames_error_not_garbage_pixels(tmp_path):
  for i in range(2):
    _png(tmp_path / "ir" / f"{i}.png", _ir())
    _png(tmp_path / "depth" / f"{i}.png", _depth_mm())
  # One byte flipped on disk: Pillow alone decodes it into a wrong pixel, no error.
  (tmp_path / "depth" / "0.png").write_bytes(damaged_png.silently_damaged(_depth_mm()))
  frames = list(recordings.open_recording(str(tmp_path), CFG))
  assert frames[0].error.kind == frames_lib.UNREADABLE and frames[0].depth is None
  assert (f"{tmp_path / 'depth' / '0.png'}: corrupt PNG: broken PNG file (bad header checksum "
          "in b'IDAT')" in str(frames[0].error))
  assert frames[1].error is None


def test_upper_case_extensions_are_frames_too(tmp_path):
  for i, ext in enumerate(("png", "PNG", "png")):
    _png(tmp_path / "ir" / f"{i:04d}.{ext}", _ir())
    _png(tmp_path / "depth" / f"{i:04d}.{ext.lower() if i == 1 else ext}", _depth_mm(400 + i))
  frames = list(recordings.open_recording(str(tmp_path), CFG, fps=10.0))
  assert [f.name for f in frames] == [os.path.join("ir", n) for n in
                                      ("0000.png", "0001.PNG", "0002.png")]
  assert [f.timestamp_s for f in frames] == [0.0, 0.1, 0.2]
  assert all(f.error is None for f in frames) and frames[1].depth[0, 0] == 401
  npz = tmp_path / "npz"
  npz.mkdir()
  np.savez(npz / "0.npz", phase_frames=_phase())
  os.rename(npz / "0.npz", npz / "0.NPZ")
  np.savez(npz / "1.npz", phase_frames=_phase())
  (npz / "timestamps.csv").write_text("name,timestamp_s\n0.NPZ,1.0\n1,2.0\n")
  rec = recordings.open_recording(str(npz), CFG)
  assert rec.kind == "npz" and [(f.name, f.timestamp_s) for f in rec] == [("0.NPZ", 1.0),
                                                                          ("1.npz", 2.0)]
  sequence = tmp_path / "capture.NPZ"
  np.savez(tmp_path / "capture", phase_frames=_phase()[None])
  os.rename(tmp_path / "capture.npz", sequence)
  assert recordings.open_recording(str(sequence), CFG).kind == "sequence"
  _png(tmp_path / "ir" / "0000.PNG", _ir())  # Beside 0000.png: which is the frame?
  with pytest.raises(recordings.RecordingError, match="holds both 0000.PNG and 0000.png"):
    recordings.open_recording(str(tmp_path), CFG)


def test_png_pairs_missing_a_file_and_timestamps_from_fps(tmp_path):
  _png(tmp_path / "ir" / "a.png", _ir())
  _png(tmp_path / "depth" / "a.png", _depth_mm())
  _png(tmp_path / "ir" / "b.png", _ir())
  frames = list(recordings.open_recording(str(tmp_path), CFG, fps=20.0))
  assert [f.timestamp_s for f in frames] == [0.0, 0.05]
  assert frames[0].error is None
  assert "depth/b.png: missing" in str(frames[1].error)


@pytest.mark.parametrize("csv_text, words", [
    ("frame,t\n", "needs a header with columns name,timestamp_s"),
    ("name,timestamp_s\n0,1.0\n1,soon\n", "timestamps.csv:3: timestamp_s 'soon' is not a number"),
    ("name,timestamp_s\n0,nan\n1,1\n", "timestamps.csv:2: timestamp_s is nan"),
    ("name,timestamp_s\n0,1.0\n", "no timestamp for 1 frames, e.g. ['1']"),
    ("name,timestamp_s\n0,1.0\n1,2.0\n0.npy,3.0\n",
     "timestamps.csv:4: a second row for frame '0' (the first is on line 2)"),
    ("name,timestamp_s\n0,1.0\n" + "1" * 200_000 + ",2.0\n",
     "timestamps.csv:3: not readable as CSV: field larger than field limit"),
])
def test_a_bad_timestamps_csv_is_refused_naming_its_line(tmp_path, csv_text, words):
  for i in range(2):
    np.save(tmp_path / f"{i}.npy", _phase())
  (tmp_path / "timestamps.csv").write_text(csv_text)
  with pytest.raises(recordings.RecordingError, match=re.escape(words)):
    recordings.open_recording(str(tmp_path), CFG)


def test_timestamps_csv_with_a_byte_order_mark_or_not_utf8(tmp_path):
  for name in ("take.001", "take.002"):  # A dot of the stem's own is kept.
    np.save(tmp_path / f"{name}.npy", _phase())
  csv_path = tmp_path / "timestamps.csv"
  csv_path.write_text("name,timestamp_s\ntake.001,1.0\ntake.002.npy,1.5\n", encoding="utf-8-sig")
  assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")  # As Excel writes UTF-8.
  frames = list(recordings.open_recording(str(tmp_path), CFG))
  assert [f.timestamp_s for f in frames] == [1.0, 1.5]
  csv_path.write_text("name,timestamp_s\ntake.001,1.0\ntake.002,1.5 # caf\xe9\n",
                      encoding="latin-1")
  with pytest.raises(recordings.RecordingError, match=re.escape(
      f"{csv_path}:3: is not UTF-8 text (invalid continuation byte, byte 0xe9); save it as "
      "UTF-8")):
    recordings.open_recording(str(tmp_path), CFG)


def _huge_npy(path) -> None:
  """A .npy whose header claims (4, 100000, 100000) uint16 (74.5 GiB) over 16 bytes of data."""
  buffer = io.BytesIO()
  np.lib.format.write_array_header_1_0(
      buffer, {"descr": "<u2", "fortran_order": False, "shape": (4, 100000, 100000)})
  path.write_bytes(b"\x93NUMPY\x01\x00" + buffer.getvalue()[8:] + bytes(16))


def test_npy_directory_and_a_header_claiming_a_huge_shape(tmp_path):
  good = _phase()
  np.save(tmp_path / "0.npy", good)
  _huge_npy(tmp_path / "1.npy")
  np.save(tmp_path / "2.npy", good[:, :, :4])
  np.save(tmp_path / "3.npy", good)
  frames = list(recordings.open_recording(str(tmp_path), CFG))
  np.testing.assert_array_equal(frames[0].phase_frames, good)
  assert frames[1].error.kind == frames_lib.UNREADABLE
  assert "1.npy: its header says shape (4, 100000, 100000), expected (4, 6, 8)" in str(
      frames[1].error)
  assert "expected (4, 6, 8)" in str(frames[2].error)
  assert frames[3].error is None and frames[3].timestamp_s == pytest.approx(0.1)


def test_a_header_claiming_more_data_than_the_file_has(tmp_path):
  np.save(tmp_path / "0.npy", _phase())
  data = (tmp_path / "0.npy").read_bytes()
  (tmp_path / "0.npy").write_bytes(data[:-10])
  (frame,) = recordings.open_recording(str(tmp_path), CFG)
  assert "truncated?" in str(frame.error) and "0.npy" in str(frame.error)


def test_npz_frames_with_timestamps_and_ground_truth(tmp_path):
  truth = {"keypoints_xy": np.full((2, 17, 2), 3.0), "keypoints_depth": np.full((2, 17), 0.4),
           "keypoint_visible": np.ones((2, 17)), "hand_present": np.array([1, 0])}
  np.savez(tmp_path / "0.npz", phase_frames=_phase(), timestamp_s=1.5, clip=2, **truth)
  bad_truth = dict(truth, keypoints_xy=truth["keypoints_xy"].copy())
  bad_truth["keypoints_xy"][0, 4, 0] = np.nan
  np.savez(tmp_path / "1.npz", phase_frames=_phase(), timestamp_s=1.6, clip=2, **bad_truth)
  np.savez(tmp_path / "2.npz", amplitude=_ir(), depth=_depth_mm().astype(np.float32) / 1e3,
           timestamp_s=1.45, clip=2)  # Before the last good frame of its clip.
  np.savez(tmp_path / "3.npz", amplitude=_ir(), depth=_depth_mm(), timestamp_s=1.7, clip=2,
           **dict(truth, keypoint_visible=np.full((2, 17), 0.9)))
  np.savez(tmp_path / "4.npz", amplitude=_ir(), depth=_depth_mm(), timestamp_s=0.1, clip=3)
  np.savez(tmp_path / "5.npz", amplitude=_ir(), timestamp_s=0.2, clip=3)
  frames = list(recordings.open_recording(str(tmp_path), CFG))
  assert frames[0].error is None and (frames[0].clip, frames[0].timestamp_s) == (2, 1.5)
  assert set(frames[0].truth) == set(recordings.TRUTH_KEYS)
  assert "ground truth of 1 visible keypoints is not finite, e.g. left thumb_tip" in str(
      frames[1].error)
  assert "timestamp 1.45 s does not increase" in str(frames[2].error)
  assert "keypoint_visible must be 0 or 1" in str(frames[3].error)
  assert frames[4].error is None and frames[4].depth.dtype == np.uint16
  assert "needs phase_frames, or amplitude and depth; has ['amplitude']" in str(frames[5].error)
  assert all(str(tmp_path) in str(f.error) for f in frames if f.error)


@pytest.mark.parametrize("arrays, words", [
    ({"phase_frames": _phase(), "clip": 1.7}, "0.npz[clip]: 1.7 of dtype float64 is not an "
     "integer clip index"),
    ({"phase_frames": _phase(), "clip": True}, "0.npz[clip]: True of dtype bool is not"),
    ({"phase_frames": _phase(), "timestamp_s": True}, "0.npz[timestamp_s]: True of dtype bool "
     "is not a number of seconds"),
    ({"phase_frames": _phase(), "timestamp_s": np.inf}, "0.npz[timestamp_s]: is inf"),
    ({"amplitude": (_ir() // 20).astype(np.uint8), "depth": _depth_mm()},
     "0.npz[amplitude]: dtype uint8, expected integers of at least 16 bits"),
    ({"amplitude": _ir(), "depth": np.full((H, W), 200, np.uint8)}, "0.npz[depth]: dtype uint8"),
    ({"amplitude": _ir().astype(np.int8), "depth": _depth_mm()}, "0.npz[amplitude]: dtype int8"),
    ({"phase_frames": (_phase() // 16).astype(np.uint8)}, "0.npz[phase_frames]: dtype uint8"),
])
def test_npz_values_that_would_be_converted_are_that_frames_error(tmp_path, arrays, words):
  np.savez(tmp_path / "0.npz", **arrays)
  np.savez(tmp_path / "1.npz", phase_frames=_phase(), clip=np.float32(2.0), timestamp_s=7)
  frames = list(recordings.open_recording(str(tmp_path), CFG))
  assert frames[0].error.kind == frames_lib.UNREADABLE and words in str(frames[0].error), str(
      frames[0].error)
  assert str(tmp_path / "0.npz") in str(frames[0].error)
  assert frames[1].error is None and (frames[1].clip, frames[1].timestamp_s) == (2, 7.0)


def test_8_bit_arrays_are_refused_as_8_bit_pngs_are(tmp_path):
  np.save(tmp_path / "0.npy", (_phase() // 16).astype(np.uint8))
  (frame,) = recordings.open_recording(str(tmp_path), CFG)
  assert "0.npy: dtype uint8, expected integers of at least 16 bits" in str(frame.error)
  path = tmp_path / "capture.npz"
  np.savez(path, amplitude=np.stack([_ir()] * 2).astype(np.uint8),
           depth=np.stack([_depth_mm()] * 2))
  with pytest.raises(recordings.RecordingError, match=r"capture.npz\[amplitude\]: dtype uint8"):
    recordings.open_recording(str(path), CFG)
  np.savez(path, phase_frames=np.stack([_phase()] * 2), timestamps_s=np.array([False, True]))
  with pytest.raises(recordings.RecordingError, match="timestamps_s has dtype bool"):
    recordings.open_recording(str(path), CFG)


def test_npz_sequence_file(tmp_path):
  path = tmp_path / "capture.npz"
  phase = np.stack([_phase() for _ in range(3)])
  np.savez(path, phase_frames=phase, timestamps_s=np.array([0.0, 0.033, 0.07]))
  rec = recordings.open_recording(str(path), CFG)
  frames = list(rec)
  assert rec.kind == "sequence" and [f.name for f in frames] == [
      "capture.npz[0]", "capture.npz[1]", "capture.npz[2]"]
  assert [f.timestamp_s for f in frames] == [0.0, 0.033, 0.07]
  np.testing.assert_array_equal(frames[1].phase_frames, phase[1])
  np.savez(path, amplitude=np.stack([_ir()] * 2), depth=np.stack([_depth_mm(), _depth_mm(45)]))
  frames = list(recordings.open_recording(str(path), CFG, fps=10.0))
  assert frames[0].error is None and frames[1].timestamp_s == pytest.approx(0.1)
  assert "capture.npz[1]" in str(frames[1].error) and "nearer than 0.1 m" in str(frames[1].error)
  np.savez(path, phase_frames=phase, timestamps_s=np.zeros(2))
  with pytest.raises(recordings.RecordingError, match="arrays of different lengths"):
    recordings.open_recording(str(path), CFG)


def test_what_is_not_a_recording(tmp_path):
  with pytest.raises(recordings.RecordingError, match="neither a directory nor a .npz"):
    recordings.open_recording(str(tmp_path / "missing"), CFG)
  with pytest.raises(recordings.RecordingError, match="has no frames"):
    recordings.open_recording(str(tmp_path), CFG)
  np.save(tmp_path / "0.npy", _phase())
  np.savez(tmp_path / "1.npz", phase_frames=_phase())
  with pytest.raises(recordings.RecordingError, match="both .npz and .npy"):
    recordings.open_recording(str(tmp_path), CFG)
