"""Recorded frames from files, for HandTracker and run_main (docs/runtime.md).

`open_recording(path, sensor_config, fps)` reads, by what `path` is:

  a directory of .npz   one file per frame, in file-name order, holding
                        `phase_frames` [4, H, W] integer ADC counts, or
                        `amplitude` [H, W] (IR counts) and `depth` [H, W] (float
                        metres, or integers in SensorConfig.depth_unit_m);
                        optionally `timestamp_s` and `clip` (scalars) and the
                        ground truth (TRUTH_KEYS, all four or none, and TRUE_DEPTH)
  a directory of .npy   one [4, H, W] phase-frame array per frame
  a directory with      16-bit greyscale PNGs paired by file name, as depth-camera
  ir/ and depth/        and TOF SDKs export them (e.g. Azure Kinect, Orbbec Femto):
                        IR (or amplitude/ for amplitude) counts, and depth in
                        units of SensorConfig.depth_unit_m (millimetres by default)
  a .npz file           a whole sequence: `phase_frames` [T, 4, H, W], or
                        `amplitude` and `depth` [T, H, W]; optional
                        `timestamps_s` [T] (read into memory at once)

Extensions match whatever their case (.PNG, .NPZ), since cameras and Windows
tools write them upper-case. Integer images (phase frames, amplitude, depth)
need at least 16 bits, in an array as in a PNG: nothing is rescaled.

Timestamps: a frame's own (`timestamp_s`, `timestamps_s`), else the
directory's `timestamps.csv` sidecar (UTF-8, with or without the byte-order
mark Excel writes; a header `name,timestamp_s`, then one row per frame; name
is the file name, with or without its extension), else index / fps. They are
seconds and must increase within a clip, so that smoothing runs on real time.

Every array's header (shape, dtype, byte count) is checked against what the
frame must be before anything is read, so a file whose header claims
(4, 100000, 100000) costs nothing; a PNG's chunk CRCs are checked before its
pixels are decoded (hand25d.png). A frame that cannot be read, or breaks the
contract (shape, bit depth, units, a corrupt PNG, ground truth, timestamp,
clip), comes back with `error` (a frames.BadFrameError of kind UNREADABLE
naming the file) and iteration goes on. What spoils the whole recording (no
such path, no frames, two files of one frame, a bad sidecar or sequence file)
raises RecordingError.

numpy only, and Pillow for the PNGs (hand25d.png, imported when the first PNG
is read).
"""

import csv
import dataclasses
import io
import math
import os
from typing import Callable, Iterator
import zipfile

import numpy as np

from hand25d import sensor
from hand25d import spec
from hand25d.runtime import frame_files
from hand25d.runtime import frames as frames_lib

DEFAULT_FPS = 30.0  # Timestamps of frames that carry none: index / fps.
TIMESTAMPS_CSV = "timestamps.csv"
# Subdirectories of an image recording: the amplitude (IR) images, then the depth.
AMPLITUDE_DIRS = ("ir", "amplitude")
DEPTH_DIR = "depth"
# Frame files, matched whatever the case of the extension.
FRAME_EXTENSIONS = (".npz", ".npy", ".png")
# Ground-truth arrays a frame may carry (all of them or none), and an optional one.
TRUTH_KEYS = ("keypoints_xy", "keypoints_depth", "keypoint_visible", "hand_present")
TRUE_DEPTH = "true_depth"
_S, _K = spec.NUM_SIDES, spec.NUM_KEYPOINTS
TRUTH_SHAPES = {"keypoints_xy": (_S, _K, 2), "keypoints_depth": (_S, _K),
                "keypoint_visible": (_S, _K), "hand_present": (_S,)}


class RecordingError(ValueError):
  """A recording that cannot be read at all; the message names the path."""


@dataclasses.dataclass(frozen=True)
class RecordedFrame:
  """One capture as read from a recording.

  Exactly one of `phase_frames` and (`amplitude`, `depth`) is set, unless
  `error` is: then neither is.

  Attributes:
    name: the file (or, for a sequence file, 'file[index]') it came from.
    timestamp_s: seconds; None only for frames made elsewhere (the runtime
      then assumes its frame interval).
    phase_frames: [4, H, W] phase frames as stored.
    amplitude: [H, W] amplitude or IR counts as stored.
    depth: [H, W] depth as stored: float metres or integer depth units.
    truth: TRUTH_KEYS (and TRUE_DEPTH, if known) -> array, or None.
    clip: the continuous recording it belongs to (smoothing restarts between clips).
    error: why the frame cannot be used, else None.
  """
  name: str
  timestamp_s: float | None
  phase_frames: np.ndarray | None = None
  amplitude: np.ndarray | None = None
  depth: np.ndarray | None = None
  truth: dict[str, np.ndarray] | None = None
  clip: int = 0
  error: frames_lib.BadFrameError | None = None


def check_truth(truth: dict[str, np.ndarray], height: int, width: int) -> None:
  """Refuses ground truth that evaluation could not use.

  Raises:
    ValueError: wrong shapes, flags other than 0/1, or a visible keypoint of a
      present hand with a non-finite coordinate or a depth that is not a
      positive finite number of metres; TRUE_DEPTH not [H, W] finite >= 0.
  """
  for key, shape in TRUTH_SHAPES.items():
    if np.shape(truth[key]) != shape:
      raise ValueError(f"ground truth {key} has shape {np.shape(truth[key])}, expected {shape}")
  for key in ("keypoint_visible", "hand_present"):
    values = np.asarray(truth[key])
    if not np.isin(values, (0, 1)).all():
      raise ValueError(f"ground truth {key} must be 0 or 1, got {np.unique(values)[:8].tolist()}")
  visible = (np.asarray(truth["keypoint_visible"]) > 0) & (
      np.asarray(truth["hand_present"])[:, None] > 0)
  xy, z = np.asarray(truth["keypoints_xy"], np.float64), np.asarray(truth["keypoints_depth"],
                                                                    np.float64)
  bad = visible & ~(np.isfinite(xy).all(axis=-1) & np.isfinite(z) & (z > 0))
  if bad.any():
    side, k = np.argwhere(bad)[0]
    raise ValueError(f"ground truth of {int(bad.sum())} visible keypoints is not finite, e.g. "
                     f"{spec.SIDES[side]} {spec.KEYPOINT_NAMES[k]}: xy {xy[side, k].tolist()}, "
                     f"depth {z[side, k]}")
  if TRUE_DEPTH in truth:
    true_depth = np.asarray(truth[TRUE_DEPTH])
    if true_depth.shape != (height, width) or not (np.isfinite(true_depth).all() and
                                                   true_depth.min() >= 0):
      raise ValueError(f"ground truth {TRUE_DEPTH} must be [{height}, {width}] finite metres "
                       f">= 0, got shape {true_depth.shape}")


def _frame_files(directory: str, extension: str) -> dict[str, str]:
  """Stem -> file name of the frame files in `directory`, in file-name order.

  The extension matches whatever its case (cameras and Windows tools write
  .PNG); hidden files (names starting with '.') are skipped.

  Raises:
    RecordingError: two files of one stem (a.png and a.PNG): which is the frame?
  """
  found = {}
  for name in sorted(os.listdir(directory)):
    stem, ext = os.path.splitext(name)
    if (ext.lower() != extension or name.startswith(".") or
        not os.path.isfile(os.path.join(directory, name))):
      continue
    if stem in found:
      raise RecordingError(f"{directory}: holds both {found[stem]} and {name}; keep one file "
                           "per frame")
    found[stem] = name
  return found


def _stem(name: str) -> str:
  """`name` without its extension if that is a frame file's (.npz, .npy, .png, any case).

  A timestamps.csv name may come with the extension or without it; a stem
  with a dot of its own ('take.001') keeps it.
  """
  stem, ext = os.path.splitext(name)
  return stem if ext.lower() in FRAME_EXTENSIONS else name


class Recording:
  """The frames of a recording on disk (module docstring); a sized iterable of RecordedFrame."""

  def __init__(self, path: str, sensor_config: sensor.SensorConfig = sensor.DEFAULT_SENSOR,
               fps: float = DEFAULT_FPS):
    """Finds the frames and their timestamps.

    Args:
      path: a directory or a .npz sequence file (module docstring).
      sensor_config: the sensor: every frame must have its resolution;
        integer depth is checked in its depth units.
      fps: frame rate of frames without timestamps.

    Raises:
      RecordingError: no such path, no frames, an unknown layout, a bad
        timestamps.csv or sequence file.
    """
    if not fps > 0:
      raise RecordingError(f"fps must be positive, got {fps}")
    self.path, self.sensor_config, self.fps = path, sensor_config, fps
    # (name, loader) per frame; a loader returns the frame's fields.
    self._entries: list[tuple[str, Callable[[], dict]]] = []
    if os.path.isfile(path) and path.lower().endswith(".npz"):
      self.kind = "sequence"
      self._open_sequence(path)
      return
    if not os.path.isdir(path):
      raise RecordingError(f"recording {path!r} is neither a directory nor a .npz file")
    amplitude_dir = next((os.path.join(path, d) for d in AMPLITUDE_DIRS
                          if os.path.isdir(os.path.join(path, d))), None)
    npz, npy = (_frame_files(path, e) for e in (".npz", ".npy"))
    if amplitude_dir and os.path.isdir(os.path.join(path, DEPTH_DIR)):
      self.kind = "png"
      dirs = (amplitude_dir, os.path.join(path, DEPTH_DIR))
      files = [_frame_files(d, ".png") for d in dirs]
      for stem in sorted(files[0].keys() | files[1].keys()):
        # A file missing from one side is named as .png, and reported when read.
        pair = tuple(os.path.join(d, f.get(stem, stem + ".png")) for d, f in zip(dirs, files))
        self._entries.append((os.path.relpath(pair[0], path), lambda p=pair: self._load_png(*p)))
    elif npz and npy:
      raise RecordingError(f"recording {path!r} holds both .npz and .npy frames; keep one kind")
    elif npz:
      self.kind = "npz"
      self._entries = [(n, lambda p=os.path.join(path, n): self._load_npz(p))
                       for n in npz.values()]
    elif npy:
      self.kind = "npy"
      self._entries = [(n, lambda p=os.path.join(path, n): self._load_npy(p))
                       for n in npy.values()]
    if not self._entries:
      raise RecordingError(
          f"recording {path!r} has no frames: expected .npz or .npy files, or "
          f"{'/ or '.join(AMPLITUDE_DIRS)}/ and {DEPTH_DIR}/ subdirectories of PNGs")
    self._timestamps = self._read_sidecar(os.path.join(path, TIMESTAMPS_CSV))

  def __len__(self) -> int:
    return len(self._entries)

  def __iter__(self) -> Iterator[RecordedFrame]:
    last = {}  # clip -> timestamp of its last good frame
    for i, (name, load) in enumerate(self._entries):
      stem = os.path.splitext(os.path.basename(name))[0]
      timestamp = self._timestamps.get(stem, i / self.fps)
      try:
        fields = load()
        clip = int(fields.pop("clip", 0))
        timestamp = fields.pop("timestamp_s", timestamp)
        if clip in last and not timestamp > last[clip]:
          raise frame_files.FrameFileError(f"{self._full(name)}: timestamp {timestamp} s does not "
                                f"increase (the previous frame of clip {clip} is at "
                                f"{last[clip]} s)")
      except (OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError, ValueError) as e:
        message = str(e) if isinstance(e, frame_files.FrameFileError) else (
            f"{self._full(name)}: {type(e).__name__}: {e}")
        yield RecordedFrame(name=name, timestamp_s=timestamp,
                            error=frames_lib.BadFrameError(frames_lib.UNREADABLE, message))
        continue
      last[clip] = timestamp
      yield RecordedFrame(name=name, timestamp_s=timestamp, clip=clip, **fields)

  def _full(self, name: str) -> str:
    """The path of a frame's file (for a sequence: 'file[index]' beside it)."""
    return os.path.join(os.path.dirname(self.path) if self.kind == "sequence" else self.path,
                        name)

  def _read_sidecar(self, csv_path: str) -> dict[str, float]:
    """Frame name (without extension) -> timestamp from timestamps.csv, if there is one."""
    if not os.path.exists(csv_path):
      return {}
    stems = {os.path.splitext(os.path.basename(name))[0] for name, _ in self._entries}
    try:
      with open(csv_path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise RecordingError(f"{csv_path}: cannot be read: {e}") from e
    try:
      text = data.decode("utf-8-sig")  # -sig: Excel writes UTF-8 with a byte-order mark.
    except UnicodeDecodeError as e:
      line = e.object[:e.start].count(b"\n") + 1
      raise RecordingError(f"{csv_path}:{line}: is not UTF-8 text ({e.reason}, byte "
                           f"{e.object[e.start]:#04x}); save it as UTF-8") from e
    reader = csv.DictReader(io.StringIO(text, newline=""))
    out, lines = {}, {}  # Frame -> timestamp, and the line that gave it.
    try:
      if not {"name", "timestamp_s"} <= set(reader.fieldnames or ()):
        raise RecordingError(f"{csv_path}: needs a header with columns name,timestamp_s, got "
                             f"{reader.fieldnames}")
      for row in reader:
        where = f"{csv_path}:{reader.line_num}"
        try:
          value = float(row["timestamp_s"])
        except (TypeError, ValueError) as e:
          raise RecordingError(f"{where}: timestamp_s {row['timestamp_s']!r} is not a number"
                               ) from e
        if not math.isfinite(value):
          raise RecordingError(f"{where}: timestamp_s is {value}")
        stem = _stem(row["name"] or "")
        if stem in lines:
          raise RecordingError(f"{where}: a second row for frame {stem!r} (the first is on "
                               f"line {lines[stem]}); give each frame one timestamp")
        out[stem], lines[stem] = value, reader.line_num
    except csv.Error as e:  # line_num counts the lines of the records read before this one.
      raise RecordingError(f"{csv_path}:{reader.line_num + 1}: not readable as CSV: {e}"
                           ) from e
    missing = sorted(stems - set(out))
    if missing:
      raise RecordingError(f"{csv_path}: no timestamp for {len(missing)} frames, e.g. "
                           f"{missing[:3]}")
    return out

  def _frame_arrays(self) -> dict[str, tuple[int | None, ...]]:
    h, w = self.sensor_config.shape
    return {"phase_frames": (spec.NUM_PHASE_FRAMES, h, w), "amplitude": (h, w),
            "depth": (h, w)}

  def _images(self, data: dict, name: str, check_units: bool = True) -> dict:
    """The frame's phase frames, or amplitude and depth (checked in the sensor's units)."""
    has_phase = "phase_frames" in data
    has_images = "amplitude" in data or "depth" in data
    if has_phase == has_images or (has_images and not {"amplitude", "depth"} <= set(data)):
      found = sorted(k for k in ("phase_frames", "amplitude", "depth") if k in data)
      raise frame_files.FrameFileError(f"{name}: needs phase_frames, or amplitude and depth; "
                                       f"has {found}")
    for key in ("phase_frames", "amplitude", "depth"):
      if key in data:
        frame_files.check_bits(data[key], f"{name}[{key}]")
    if has_phase:
      return {"phase_frames": data["phase_frames"]}
    if check_units:
      self._check_units(data["amplitude"], data["depth"], name)
    return {"amplitude": data["amplitude"], "depth": data["depth"]}

  def _check_units(self, amplitude: np.ndarray, depth: np.ndarray, name: str) -> None:
    cfg = self.sensor_config
    try:
      frames_lib.check_amplitude_depth(amplitude, depth, cfg.height, cfg.width, cfg.depth_unit_m)
    except frames_lib.BadFrameError as e:
      raise frame_files.FrameFileError(f"{name}: {e}") from e

  def _load_npz(self, path: str) -> dict:
    h, w = self.sensor_config.shape
    expected = dict(self._frame_arrays(), clip=(), timestamp_s=(), **TRUTH_SHAPES)
    expected[TRUE_DEPTH] = (h, w)
    data = frame_files.read_npz(path, expected)
    out = self._images(data, path)
    if "clip" in data:
      out["clip"] = frame_files.clip_index(data["clip"], f"{path}[clip]")
    if "timestamp_s" in data:
      out["timestamp_s"] = frame_files.timestamp_seconds(data["timestamp_s"],
                                                         f"{path}[timestamp_s]")
    present = [k for k in TRUTH_KEYS if k in data]
    if present and len(present) != len(TRUTH_KEYS):
      raise frame_files.FrameFileError(f"{path}: has ground truth {present} but not "
                            f"{sorted(set(TRUTH_KEYS) - set(present))}")
    if present:
      truth = {k: data[k] for k in TRUTH_KEYS + (TRUE_DEPTH,) if k in data}
      try:
        check_truth(truth, h, w)
      except ValueError as e:
        raise frame_files.FrameFileError(f"{path}: {e}") from e
      out["truth"] = truth
    return out

  def _load_npy(self, path: str) -> dict:
    phase_frames = frame_files.read_npy(path, (spec.NUM_PHASE_FRAMES, *self.sensor_config.shape))
    frame_files.check_bits(phase_frames, path)
    return {"phase_frames": phase_frames}

  def _load_png(self, amplitude_path: str, depth_path: str) -> dict:
    h, w = self.sensor_config.shape
    for p in (amplitude_path, depth_path):
      if not os.path.exists(p):
        raise frame_files.FrameFileError(f"{p}: missing (every frame needs both an amplitude "
                                         "and a depth PNG of the same name)")
    amplitude = frame_files.read_png16(amplitude_path, h, w)
    depth = frame_files.read_png16(depth_path, h, w)
    self._check_units(amplitude, depth, depth_path)
    return {"amplitude": amplitude, "depth": depth}

  def _open_sequence(self, path: str) -> None:
    try:
      expected = {k: (None,) + s for k, s in self._frame_arrays().items()}
      data = frame_files.read_npz(path, dict(expected, timestamps_s=(None,)))
      images = self._images(data, path, check_units=False)  # Per frame, when read.
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError) as e:
      raise RecordingError(f"sequence file {path}: {e}") from e
    lengths = {k: len(v) for k, v in data.items()}
    if len(set(lengths.values())) != 1:
      raise RecordingError(f"sequence file {path}: arrays of different lengths {lengths}")
    n = next(iter(lengths.values()))
    times = data.get("timestamps_s")
    if times is not None and times.dtype.kind not in "iuf":
      raise RecordingError(f"sequence file {path}: timestamps_s has dtype {times.dtype}, "
                           "expected numbers of seconds")
    if times is not None and not np.isfinite(times).all():
      raise RecordingError(f"sequence file {path}: timestamps_s has NaN or Inf")
    self._timestamps = {}
    for i in range(n):
      name = f"{os.path.basename(path)}[{i}]"

      def load(i=i, name=name):
        fields = {k: v[i] for k, v in images.items()}
        if "depth" in fields:
          self._check_units(fields["amplitude"], fields["depth"], name)
        if times is not None:
          fields["timestamp_s"] = float(times[i])
        return fields

      self._entries.append((name, load))
    if not self._entries:
      raise RecordingError(f"sequence file {path}: holds no frames")


def open_recording(path: str, sensor_config: sensor.SensorConfig = sensor.DEFAULT_SENSOR,
                   fps: float = DEFAULT_FPS) -> Recording:
  """The recording at `path` (see Recording and the module docstring)."""
  return Recording(path, sensor_config, fps)
