"""Frame sources for the runtime's demo: synthetic clips from the data engine, or a recording.

A source is a sized iterable of `recordings.RecordedFrame`s: one capture
(phase frames, or amplitude and depth), optional ground truth, its timestamp
and the clip it belongs to (frames of one clip are a continuous recording;
smoothing restarts and jitter is measured within clips).

Recordings (directories of .npz, .npy or 16-bit PNG frames, or one .npz
sequence) are read by hand25d/runtime/recordings.py, which documents the
formats; synthetic clips are rendered here, with their ground truth. The
sensor a recording was taken with is a SensorConfig JSON file's, or the
simulated one, with single fields set over it (`recording_sensor`).
"""

import dataclasses
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from hand25d import sensor
from hand25d.data import scene
from hand25d.runtime import recordings

# Ground-truth arrays a frame may carry (defined with the recordings that hold them).
TRUTH_KEYS = recordings.TRUTH_KEYS
TRUE_DEPTH = recordings.TRUE_DEPTH


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
    for name, low in (("seed", 0), ("num_clips", 1), ("frames_per_clip", 1)):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"SyntheticConfig.{name} must be an integer >= {low}, got {value!r}"
                         + (" (at least one clip of one frame)" if low else ""))


class SyntheticSource:
  """Renders the clips of a SyntheticConfig, one clip at a time.

  Frames carry no timestamp: the runtime gives them its frame interval.
  """

  def __init__(self, config: SyntheticConfig = SyntheticConfig()):
    self.config = config

  def __len__(self) -> int:
    return self.config.num_clips * self.config.frames_per_clip

  def __iter__(self) -> Iterator[recordings.RecordedFrame]:
    c = self.config
    for clip in range(c.num_clips):
      rendered = scene.render_sequence(np.random.SeedSequence([c.seed, clip]), c.frames_per_clip,
                                       c.scene_config)
      for i, frame in enumerate(rendered):
        yield recordings.RecordedFrame(
            name=f"clip{clip:03d}_frame{i:04d}", timestamp_s=None,
            phase_frames=frame["phase_frames"],
            truth={k: frame[k] for k in TRUTH_KEYS + (TRUE_DEPTH,)}, clip=clip)


def open_source(where: str, synthetic: SyntheticConfig = SyntheticConfig(),
                sensor_config: sensor.SensorConfig = sensor.DEFAULT_SENSOR,
                fps: float = recordings.DEFAULT_FPS
                ) -> SyntheticSource | recordings.Recording:
  """'synthetic' -> SyntheticSource(synthetic); anything else is a recording.

  Raises:
    ValueError: synthetic input with another sensor than the simulated one
      (the data engine renders spec.SENSOR).
    recordings.RecordingError: a recording that cannot be read.
  """
  check_sensor(where, sensor_config)
  if where != "synthetic":
    return recordings.open_recording(where, sensor_config, fps)
  return SyntheticSource(synthetic)


def recording_sensor(path: Optional[str], fields: Mapping[str, Any],
                     source: str = "sensor fields") -> sensor.SensorConfig:
  """The sensor of a recording: a SensorConfig JSON file's, or the simulated one, with fields set.

  Args:
    path: a SensorConfig JSON file (SensorConfig.load); None: the simulated sensor.
    fields: SensorConfig field -> value set over the file's; None keeps the file's.
    source: names where `fields` come from in errors.

  Raises:
    OSError: the file cannot be read.
    sensor.SensorConfigError: the file, or the config with `fields` set, is not a
      valid SensorConfig (naming the file, or `source`).
  """
  base = sensor.SensorConfig.load(path) if path else sensor.DEFAULT_SENSOR
  return sensor.SensorConfig.from_dict(
      dict(base.to_dict(), **{k: v for k, v in fields.items() if v is not None}), source=source)


def check_sensor(where: str, sensor_config: sensor.SensorConfig) -> None:
  """Raises ValueError for synthetic input with another sensor than the simulated one."""
  if where == "synthetic" and sensor_config != sensor.DEFAULT_SENSOR:
    raise ValueError("synthetic input is rendered for the simulated sensor (spec.SENSOR); a "
                     "SensorConfig (--sensor_config, --sensor_* flags) applies to recordings")
