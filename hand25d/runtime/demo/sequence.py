"""Frame sources for the runtime: synthetic clips from the data engine, or a directory.

A source is a sized iterable of `Frame`s: the phase frames of one capture,
optional ground truth, and the clip it belongs to (frames of one clip are a
continuous recording; jitter is measured within clips).

Directory format (`DirectorySource`): one `.npz` file per frame, taken in
file-name order, each with
  phase_frames      [4, H, W] ADC counts (uint16), spec.SENSOR.phase_offsets_deg
and optionally
  clip              int scalar, the continuous recording the frame belongs to
                    (default 0)
  keypoints_xy      [2, 17, 2] float, sensor pixels        \\ ground truth, all
  keypoints_depth   [2, 17] float, camera z in metres       | four or none (as
  keypoint_visible  [2, 17] 0/1                             | scene.render_frame
  hand_present      [2] 0/1                                 / returns them)
  true_depth        [H, W] float, rendered z in metres (0: no surface), with
                    the ground truth, for the lifting's surface error
A file that cannot be read, lacks `phase_frames` or has part of the four
ground-truth arrays becomes a Frame with an `error` (kind frames.UNREADABLE)
that the runtime reports and skips.
"""

import dataclasses
import glob
import os
from typing import Iterator
import zipfile

import numpy as np

from hand25d.data import scene
from hand25d.runtime import frames as frames_lib

# Ground-truth arrays a frame may carry (all of them or none), and an optional one.
TRUTH_KEYS = ("keypoints_xy", "keypoints_depth", "keypoint_visible", "hand_present")
TRUE_DEPTH = "true_depth"


@dataclasses.dataclass(frozen=True)
class Frame:
  """One capture as it arrives at the runtime.

  Attributes:
    name: where it came from (file name, or clip and frame number).
    phase_frames: [4, H, W] phase frames; None if the frame could not be read.
    truth: TRUTH_KEYS (and TRUE_DEPTH, if known) -> array, or None.
    clip: index of the continuous recording it belongs to.
    error: why the frame could not be read, else None.
  """
  name: str
  phase_frames: np.ndarray | None
  truth: dict[str, np.ndarray] | None = None
  clip: int = 0
  error: frames_lib.BadFrameError | None = None


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Synthetic input: clips of continuous hand motion (scene.render_sequence).

  In every clip each hand moves and morphs from one sampled pose and
  placement to another while the sensor noise is new in every frame.
  """
  seed: int = 0
  num_clips: int = 2
  frames_per_clip: int = 30
  scene_config: scene.SceneConfig = scene.SceneConfig()

  def __post_init__(self):
    if self.num_clips < 1 or self.frames_per_clip < 1:
      raise ValueError(f"need at least one clip of one frame, got {self.num_clips} clips of "
                       f"{self.frames_per_clip}")


class SyntheticSource:
  """Renders the clips of a SyntheticConfig, one clip at a time."""

  def __init__(self, config: SyntheticConfig = SyntheticConfig()):
    self.config = config

  def __len__(self) -> int:
    return self.config.num_clips * self.config.frames_per_clip

  def __iter__(self) -> Iterator[Frame]:
    c = self.config
    for clip in range(c.num_clips):
      rendered = scene.render_sequence(np.random.SeedSequence([c.seed, clip]), c.frames_per_clip,
                                       c.scene_config)
      for i, frame in enumerate(rendered):
        yield Frame(name=f"clip{clip:03d}_frame{i:04d}", phase_frames=frame["phase_frames"],
                    truth={k: frame[k] for k in TRUTH_KEYS + (TRUE_DEPTH,)}, clip=clip)


class DirectorySource:
  """The .npz frames of a directory (see the module docstring for the format)."""

  def __init__(self, path: str):
    if not os.path.isdir(path):
      raise ValueError(f"input directory {path!r} does not exist")
    self.paths = sorted(glob.glob(os.path.join(path, "*.npz")))
    if not self.paths:
      raise ValueError(f"input directory {path!r} has no .npz frames")

  def __len__(self) -> int:
    return len(self.paths)

  def __iter__(self) -> Iterator[Frame]:
    for path in self.paths:
      yield load_frame(path)


def load_frame(path: str) -> Frame:
  """Reads one .npz frame; an unreadable file gives a Frame with `error` set."""
  name = os.path.basename(path)
  try:
    with np.load(path, allow_pickle=False) as data:
      phase_frames = data["phase_frames"]
      clip = int(data["clip"]) if "clip" in data.files else 0
      present = [k for k in TRUTH_KEYS if k in data.files]
      if present and len(present) != len(TRUTH_KEYS):
        raise ValueError(f"has ground truth {present} but not "
                         f"{sorted(set(TRUTH_KEYS) - set(present))}")
      truth = ({k: data[k] for k in TRUTH_KEYS + (TRUE_DEPTH,) if k in data.files}
               if present else None)
  except (OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError, ValueError) as e:
    error = frames_lib.BadFrameError(frames_lib.UNREADABLE, f"{path}: {type(e).__name__}: {e}")
    return Frame(name=name, phase_frames=None, error=error)
  return Frame(name=name, phase_frames=phase_frames, truth=truth, clip=clip)


def open_source(where: str, synthetic: SyntheticConfig = SyntheticConfig()
                ) -> SyntheticSource | DirectorySource:
  """'synthetic' -> SyntheticSource(synthetic); anything else is a directory."""
  return SyntheticSource(synthetic) if where == "synthetic" else DirectorySource(where)
