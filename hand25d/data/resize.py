"""A data set stored at network resolution: every record resized once, ahead of training.

The training pipeline resizes each frame from the sensor's 240x320 to the
network's 120x160 on every pass (`pipeline.resize`). `resize_dataset` does
it once, writing a copy of a data set (generated or imported) whose images
are already at the target size: 4x fewer pixels to decompress, decode and
resample per epoch, and 4x less disk (20,000 frames: 2.9 GB -> 0.7 GB). The
pipeline then skips its resize (`pipeline.make_dataset` reads the size from
the manifest).

The resampling is the pipeline's: amplitude and phase frames by area (the
mean of each block; the size must divide by an integer factor), depth, true
depth and segmentation by nearest neighbour (TensorFlow's half-pixel
centres: the pixel at (f * i + f // 2) of each f x f block), keypoints with
pixel-centre alignment, x' = (x + 0.5) / f - 0.5. Amplitude is stored as
uint16 counts, so a block mean is rounded to the nearest count.
"""

import copy
import dataclasses
import json
import os

import numpy as np

from hand25d import atomic
from hand25d import progress
from hand25d import spec
from hand25d.data import records

_AREA = ("amplitude", "phase_frames")
_NEAREST = ("depth", "true_depth", "segmentation")


def factors(height: int, width: int, target_height: int, target_width: int) -> tuple[int, int]:
  """Integer (fy, fx) reduction factors, or ValueError naming the sizes."""
  if (target_height < 1 or target_width < 1 or height % target_height
      or width % target_width):
    raise ValueError(f"cannot resize {height}x{width} to {target_height}x{target_width}: "
                     "the target must divide the size by an integer factor")
  return height // target_height, width // target_width


def resize_frame(frame: dict[str, np.ndarray], height: int, width: int) -> dict[str, np.ndarray]:
  """A decoded frame (records.decode) with its images and keypoints at height x width."""
  h, w = frame["amplitude"].shape
  fy, fx = factors(h, w, height, width)
  out = dict(frame)
  for name in _AREA:
    if name in frame:
      img = np.asarray(frame[name], np.float64)
      lead = img.shape[:-2]
      blocks = img.reshape(lead + (height, fy, width, fx)).mean(axis=(-3, -1))
      out[name] = np.round(blocks).astype(frame[name].dtype)
  for name in _NEAREST:
    if name in frame:
      out[name] = np.asarray(frame[name])[..., fy // 2::fy, fx // 2::fx]
  out["keypoints_xy"] = ((np.asarray(frame["keypoints_xy"], np.float64) + 0.5)
                         / [fx, fy] - 0.5).astype(np.float32)
  return out


def resize_dataset(src: str, dst: str, height: int = spec.INPUT_HEIGHT,
                   width: int = spec.INPUT_WIDTH) -> dict:
  """Writes a copy of the data set `src` at height x width into `dst`; returns its manifest.

  Resumable: shards already in `dst` are kept (each is written atomically);
  the source is known by its real path, so a symlink to it is the same source;
  the manifest is written last. Progress is logged (hand25d.progress).

  Raises:
    records.RecordError: a missing or corrupt source shard (naming it).
    ValueError: a size that does not divide the source's, or a `dst` that
      holds a copy of another data set or size.
  """
  manifest = records.load_manifest(src)
  fy, fx = factors(manifest["height"], manifest["width"], height, width)
  origin = {"data_dir": os.path.realpath(src), "height": manifest["height"],
            "width": manifest["width"]}
  os.makedirs(dst, exist_ok=True)
  marker = os.path.join(dst, "resized_from.json")
  if os.path.exists(marker):
    with open(marker) as f:
      existing = json.load(f)
    wanted = dict(origin, target=[height, width])
    if existing != wanted:
      raise ValueError(f"{dst} holds {existing}, not a copy of {src} at {height}x{width}; "
                       "use another directory or delete it")
  else:
    atomic.write_json(marker, dict(origin, target=[height, width]))
  out = copy.deepcopy(manifest)
  todo = [(shard, path) for split, info in manifest["splits"].items()
          for shard, path in zip(info["shards"], records.shard_paths(src, manifest, split))
          if not os.path.exists(os.path.join(dst, shard["file"]))]
  with progress.Progress("resize", sum(s["num_frames"] for s, _ in todo), "frames") as reporter:
    for shard, path in todo:
      encoded = []
      for frame in records.read_shard(path):
        encoded.append(records.encode(resize_frame(frame, height, width), int(frame["frame_id"])))
        reporter.update()
      records.write_shard(os.path.join(dst, shard["file"]), encoded)
  for split, info in out["splits"].items():
    for shard in info["shards"]:
      path = os.path.join(dst, shard["file"])
      shard.update(records.file_digest(path))
  if "intrinsics" in manifest:  # An import (hand25d.data.coco) may not know its camera's.
    intrinsics = spec.Intrinsics(**manifest["intrinsics"]).scaled(1.0 / fx, 1.0 / fy)
    out["intrinsics"] = dataclasses.asdict(intrinsics)
  out.update(height=height, width=width, resized_from=origin)
  atomic.write_json(os.path.join(dst, records.MANIFEST), out)
  return out
