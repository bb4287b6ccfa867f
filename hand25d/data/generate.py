"""Sharded, resumable, deterministic generation of a synthetic TOF data set.

Frame g of a data set (g = 0 .. num_frames - 1, train frames first, then val,
then test) is rendered from the seed sequence (seed, g) and by the hand shape
of its user, a pure function of (seed, user id). Users are disjoint between
splits (by default 28/4/8 as in the paper), and a split's frames cycle
through its users. Shards hold consecutive frames of one split and are
written atomically, so:
  * the bytes depend only on the config, never on the number of workers;
    across machines, they are the same on every CPU with AVX2 (numpy's
    simd_level X86_V3 or X86_V4); without AVX2 some pixels differ by one code;
  * a rerun after a kill renders only the shards that are missing or fail
    their check (size, sha256 and record count against the previous
    manifest, or a full read where there is none);
  * a half-written shard is never visible under its final name.
"""

import dataclasses
import json
import multiprocessing
import os
import time
from typing import Callable

from absl import logging
import numpy as np

from hand25d import atomic
from hand25d import paper
from hand25d import progress as progress_lib
from hand25d import spec
from hand25d.data import integrity
from hand25d.data import records
from hand25d.data import scene

# Changes whenever the same config would write other bytes (docs/data_format.md).
GENERATOR_VERSION = "3"
# Earlier versions that wrote the same frames (their records decode to this
# version's arrays) when an AVX2 machine ran them; on AVX-512 machines they
# wrote other depths in a few pixels (docs/data_format.md). A complete data
# set of one is used as it is.
SAME_FRAMES_VERSIONS = ("1", "2")
_RUN_CONFIG = "generation_config.json"
# numpy's x86 SIMD levels, widest first: some of its float32 loops (sin, cos)
# give other last bits under X86_V2 than under the others (docs/data_format.md).
_SIMD_LEVELS = ("X86_V4", "X86_V3", "X86_V2")
# Bounds checked before planning: 10^12 frames once took GBs just to plan.
# 10^7 frames at 120x160 are about 0.5 TB; shard names hold 5 digits.
MAX_NUM_FRAMES = 10_000_000
MAX_SHARDS = 99_999
# Planning lists every user id of a split, and the frames needed for every
# split to get one grow with the users (`frames_for_every_split`).
MAX_USERS = 100_000


class DataSetError(ValueError):
  """The output directory cannot take this data set (says which directory and why)."""


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
  """Raises ValueError naming the field unless low <= value (<= high) is an int (not a bool)."""
  if isinstance(value, bool) or not isinstance(value, int):
    raise ValueError(f"GeneratorConfig.{name} must be an integer, got {value!r}")
  if value < low or (high is not None and value > high):
    bounds = f">= {low}" if high is None else f"in [{low}, {high:,}]"
    raise ValueError(f"GeneratorConfig.{name} must be {bounds}, got {value}")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """Everything that determines a data set's bytes.

  Attributes:
    num_frames: frames in all splits together, 1 .. MAX_NUM_FRAMES.
    seed: data set seed (>= 0): frame g is rendered from the seed sequence
      (seed, g), a user's hand shape from (seed, user id).
    frames_per_shard: frames per shard file (>= 1; at most MAX_SHARDS shards).
    height, width: sensor size in pixels (>= 1), the intrinsics scaled to it.
    with_phase_frames: also store the 4 raw phase frames.
    users_per_split: users of train, val and test (each >= 1, at most
      MAX_USERS together); frames are split in proportion to them.

  Raises:
    ValueError: a field of the wrong type or out of its range, naming the
      field and its value.
  """
  num_frames: int
  seed: int = 0
  frames_per_shard: int = 256
  height: int = spec.SENSOR.height
  width: int = spec.SENSOR.width
  with_phase_frames: bool = False
  users_per_split: tuple[int, int, int] = paper.USERS_PER_SPLIT  # train, val, test.

  def __post_init__(self):
    _check_int("num_frames", self.num_frames, 1)
    if self.num_frames > MAX_NUM_FRAMES:
      raise ValueError(f"num_frames {self.num_frames} is more than {MAX_NUM_FRAMES:,} "
                       "(about 0.5 TB at 120x160); generate in parts (--out per part)")
    _check_int("seed", self.seed, 0)
    _check_int("frames_per_shard", self.frames_per_shard, 1)
    _check_int("height", self.height, 1)
    _check_int("width", self.width, 1)
    if not isinstance(self.with_phase_frames, bool):
      raise ValueError(f"GeneratorConfig.with_phase_frames must be a bool, got "
                       f"{self.with_phase_frames!r}")
    if -(-self.num_frames // self.frames_per_shard) > MAX_SHARDS - len(records.SPLITS):
      raise ValueError(f"{self.num_frames} frames at {self.frames_per_shard} per shard are "
                       f"more than {MAX_SHARDS} shards; raise frames_per_shard")
    users = self.users_per_split
    if (not isinstance(users, (tuple, list)) or len(users) != len(records.SPLITS)
        or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in users)):
      raise ValueError(f"GeneratorConfig.users_per_split must be {len(records.SPLITS)} positive "
                       f"integers (train, val, test), got {users!r}")
    if sum(users) > MAX_USERS:
      raise ValueError(f"GeneratorConfig.users_per_split {tuple(users)} has {sum(users):,} "
                       f"users, more than {MAX_USERS:,}")


@dataclasses.dataclass(frozen=True)
class Shard:
  """One unit of work: frames [start, stop) of a split, written to `file`."""
  split: str
  file: str
  start: int  # Global frame index.
  stop: int
  users: tuple[int, ...]  # The split's users; frame j of the split uses users[j % len].
  split_start: int  # Global index of the split's first frame.


def simd_level() -> str | None:
  """The widest x86 SIMD group numpy runs its loops with here (None off x86).

  numpy picks its loops by the CPU at import ("X86_V2": SSE4.2, "X86_V3":
  AVX2 and FMA, "X86_V4": AVX-512; NPY_DISABLE_CPU_FEATURES can lower it).
  Generated bytes are the same under X86_V3 and X86_V4; X86_V2's differ.
  """
  features = np._core._multiarray_umath.__cpu_features__  # pylint: disable=protected-access
  return next((level for level in _SIMD_LEVELS if features.get(level)), None)


def split_users(config: GeneratorConfig) -> dict[str, tuple[int, ...]]:
  """The user ids of each split: consecutive, disjoint ranges."""
  bounds = np.cumsum((0,) + tuple(config.users_per_split))
  return {split: tuple(range(lo, hi)) for split, lo, hi in zip(records.SPLITS, bounds, bounds[1:])}


def split_counts(num_frames: int, users_per_split) -> list[int]:
  """Frames of each split (train, val, test): in proportion to its users, rounded."""
  total_users = sum(users_per_split)
  counts = [int(round(num_frames * u / total_users)) for u in users_per_split[:-1]]
  return counts + [num_frames - sum(counts)]


def frames_for_every_split(users_per_split) -> int:
  """The fewest frames from which on every split gets at least one (`split_counts`)."""
  total, rounded = sum(users_per_split), len(users_per_split) - 1
  # From here on each rounded split's share is over one half, and the last
  # split's share over the halves that rounding the others can take from it.
  n = max([total // (2 * u) + 1 for u in users_per_split[:-1]]
          + [total * rounded // (2 * users_per_split[-1]) + 1])
  while n > 1 and min(split_counts(n - 1, users_per_split)) > 0:
    n -= 1
  return n


def plan(config: GeneratorConfig) -> list[Shard]:
  """The shards of a data set, in a fixed order; frames split in proportion to users."""
  counts = split_counts(config.num_frames, config.users_per_split)
  shards, start = [], 0
  for split, count in zip(records.SPLITS, counts):
    users = split_users(config)[split]
    n_shards = -(-count // config.frames_per_shard)
    for k in range(n_shards):
      lo = start + k * config.frames_per_shard
      shards.append(Shard(split=split, file=f"{split}-{k:05d}-of-{n_shards:05d}.tfrecord",
                          start=lo, stop=min(lo + config.frames_per_shard, start + count),
                          users=users, split_start=start))
    start += count
  return shards


def scene_config(config: GeneratorConfig) -> scene.SceneConfig:
  return scene.SceneConfig().scaled(config.height, config.width)


def render_record(config: GeneratorConfig, shard: Shard, frame_index: int) -> bytes:
  """The serialised record of global frame `frame_index` (inside `shard`)."""
  user = shard.users[(frame_index - shard.split_start) % len(shard.users)]
  frame = scene.render_frame(
      np.random.SeedSequence([config.seed, frame_index]), scene_config(config), user_id=user,
      shape=scene.user_shape(config.seed, user), with_phase_frames=config.with_phase_frames)
  return records.encode(frame, frame_index)


def _write_shard(args) -> tuple[str, int]:
  config, shard, out_dir = args
  serialized = [render_record(config, shard, g) for g in range(shard.start, shard.stop)]
  records.write_shard(os.path.join(out_dir, shard.file), serialized)
  return shard.file, shard.stop - shard.start


def _previous_entries(out_dir: str) -> dict[str, dict]:
  """The shard entries of the manifest a previous run wrote, by file name ({} if none)."""
  try:
    manifest = records.load_manifest(out_dir)
  except records.RecordError:
    return {}
  return {s["file"]: s for info in manifest["splits"].values() for s in info["shards"]}


def _intact(out_dir: str, shard: Shard, entry: dict | None) -> bool:
  """Whether an existing shard file can be kept on a rerun; removes it if not.

  Checked against the previous manifest's entry (size, sha256, record count)
  where there is one, else by its framing, record count and a full read.
  """
  path = os.path.join(out_dir, shard.file)
  if not os.path.exists(path):
    return False
  count = shard.stop - shard.start
  if entry is not None and entry["num_frames"] == count and "sha256" in entry:
    problem = integrity.shard_problem(path, entry)
  else:
    problem = (integrity.shard_problem(path, {"num_frames": count})
               or "; ".join(integrity.bad_records(path, count)[0]) or None)
  if problem:
    logging.warning("%s: rendering it again", problem)
    os.unlink(path)
  return not problem


def _complete_earlier_version(config: GeneratorConfig, out_dir: str, version: str) -> dict:
  """The manifest of a data set an earlier version with the same frames wrote, if complete."""
  previous = _previous_entries(out_dir)
  missing = [s.file for s in plan(config)
             if s.file not in previous or integrity.shard_problem(
                 os.path.join(out_dir, s.file), previous[s.file])]
  if missing:
    raise DataSetError(
        f"{out_dir} holds an incomplete data set of generator version {version} ({len(missing)} "
        f"shards missing or damaged, e.g. {missing[0]}); version {GENERATOR_VERSION} cannot "
        "complete it: delete it and generate again")
  logging.info("%s: a complete data set of generator version %s, used as it is (the same "
               "frames if an AVX2 machine wrote it; from an AVX-512 machine, a few depth "
               "pixels and the fingerprint differ, docs/data_format.md)", out_dir, version)
  return records.load_manifest(out_dir)


def _warn_of_empty_splits(config: GeneratorConfig) -> None:
  counts = split_counts(config.num_frames, config.users_per_split)
  empty = [split for split, count in zip(records.SPLITS, counts) if count == 0]
  if empty:
    logging.warning(
        "split(s) %s get no frame of %d (frames go to the splits in proportion to their users, "
        "%s): training and evaluation need frames in every split, which they all get from "
        "num_frames=%d on", ", ".join(empty), config.num_frames,
        "/".join(map(str, config.users_per_split)),
        frames_for_every_split(config.users_per_split))


def _refused_config_only(existing: dict, out_dir: str) -> bool:
  """Whether out_dir holds only the config of a run that wrote nothing else, a config refused now.

  Earlier versions wrote generation_config.json before checking it: such a
  directory holds no data set and can take another config.
  """
  fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
  if set(existing) != fields | {"generator_version"} or set(os.listdir(out_dir)) != {_RUN_CONFIG}:
    return False
  try:
    GeneratorConfig(**{k: v for k, v in existing.items() if k in fields})
  except ValueError:
    return True
  return False


def _open_out_dir(out_dir: str, wanted: dict) -> dict | None:
  """Creates out_dir or checks it against `wanted`; returns the config found there, if any.

  Raises:
    DataSetError: out_dir is not a directory (or cannot be made), its
      generation_config.json cannot be read, or it holds a data set another
      writer made (a manifest or shards without generation_config.json).
  """
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise DataSetError(f"output directory {out_dir} exists and is not a directory")
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise DataSetError(f"cannot create output directory {out_dir}: {e.strerror or e}") from e
  run_config = os.path.join(out_dir, _RUN_CONFIG)
  if not os.path.exists(run_config):
    # A data set another writer made (a COCO import, say): generating there
    # would replace its shards and its manifest.
    found = sorted(name for name in os.listdir(out_dir) if not name.startswith(".") and
                   (name == records.MANIFEST or name.endswith(".tfrecord")))
    if found:
      raise DataSetError(f"{out_dir} holds a data set the generator did not write "
                         f"({', '.join(found[:3])}{', ...' if len(found) > 3 else ''} without "
                         f"{_RUN_CONFIG}); generating there would replace it: use another --out")
    return None
  try:
    with open(run_config, encoding="utf-8") as fp:
      existing = json.load(fp)
  except (OSError, ValueError) as e:
    raise DataSetError(f"{run_config} cannot be read as the config of a generated data set "
                       f"({e}); use another --out or delete it") from e
  if not isinstance(existing, dict):
    raise DataSetError(f"{run_config} holds {type(existing).__name__}, not the config of a "
                       "generated data set; use another --out or delete it")
  if existing != wanted and _refused_config_only(existing, out_dir):
    logging.warning("%s: replacing the config of a run that was refused (%s)", run_config,
                    existing)
    os.unlink(run_config)
    return None
  return existing


def generate(config: GeneratorConfig, out_dir: str, workers: int = 1,
             progress: Callable[[int, int, float], None] | None = None) -> dict:
  """Generates (or completes) a data set in `out_dir` and writes its manifest.

  Progress (frames done, frames to do, frames/s, ETA) is logged at most every
  progress.INTERVAL_S seconds, as shards complete. A split that gets no
  frame (too few frames for its users) is logged as a warning.

  Args:
    config: what to generate.
    out_dir: output directory; created if needed.
    workers: processes rendering shards in parallel; does not change the bytes.
    progress: also called after every shard with (frames done, frames to do,
      seconds since the start).

  Returns:
    The manifest (also written to out_dir/manifest.json).

  A complete data set of the same config written by a version in
  SAME_FRAMES_VERSIONS is verified (every shard's size, sha256 and record
  count) and its manifest returned as it is.

  Raises:
    DataSetError: out_dir is not a directory (or cannot be made), holds a
      data set generated with another config, one another writer made (a
      COCO import), or an incomplete one of an earlier version. Nothing is
      written into out_dir before these checks.
  """
  wanted = dict(dataclasses.asdict(config), generator_version=GENERATOR_VERSION)
  wanted["users_per_split"] = list(config.users_per_split)
  existing = _open_out_dir(out_dir, wanted)
  if existing is not None:
    if (existing.get("generator_version") in SAME_FRAMES_VERSIONS
        and dict(existing, generator_version=GENERATOR_VERSION) == wanted):
      return _complete_earlier_version(config, out_dir, existing["generator_version"])
    if existing != wanted:
      raise DataSetError(f"{out_dir} holds a data set generated with {existing}, not {wanted}; "
                         "use another --out or delete it")
  else:
    atomic.write_bytes(os.path.join(out_dir, _RUN_CONFIG), json.dumps(wanted, indent=2).encode())
  _warn_of_empty_splits(config)
  for name in os.listdir(out_dir):  # Temporary shards of a killed run (any writer).
    if name.startswith(".") and ".tfrecord" in name:
      os.unlink(os.path.join(out_dir, name))
  atomic.remove_stale(out_dir)  # And of the manifest.

  shards = plan(config)
  previous = _previous_entries(out_dir)
  todo = [s for s in shards if not _intact(out_dir, s, previous.get(s.file))]
  total = sum(s.stop - s.start for s in todo)
  logging.info("%d of %d shards to render (%d frames) with %d workers", len(todo), len(shards),
               total, workers)
  done, t0 = 0, time.time()
  tasks = [(config, s, out_dir) for s in todo]
  if workers > 1 and len(todo) > 1:
    pool = multiprocessing.get_context("spawn").Pool(workers)
    results = pool.imap_unordered(_write_shard, tasks)
  else:
    pool, results = None, map(_write_shard, tasks)
  try:
    with progress_lib.Progress("generate", total, "frames") as reporter:
      for name, count in results:
        done += count
        logging.debug("wrote %s", name)
        reporter.update(count)
        if progress is not None:
          progress(done, total, time.time() - t0)
  finally:
    if pool is not None:
      pool.terminate()
      pool.join()

  manifest = {
      "format": records.FORMAT,
      "generator_version": GENERATOR_VERSION,
      "config": wanted,
      "seed": config.seed,
      "num_frames": config.num_frames,
      "height": config.height,
      "width": config.width,
      "intrinsics": dataclasses.asdict(scene_config(config).intrinsics),
      "modulation_hz": spec.SENSOR.modulation_hz,
      "phase_offsets_deg": list(spec.SENSOR.phase_offsets_deg),
      "with_phase_frames": config.with_phase_frames,
      "splits": {},
  }
  for split in records.SPLITS:
    mine = [s for s in shards if s.split == split]
    manifest["splits"][split] = {
        "num_frames": sum(s.stop - s.start for s in mine),
        "users": [int(u) for u in split_users(config)[split]],
        "shards": [dict(file=s.file, num_frames=s.stop - s.start,
                        **records.file_digest(os.path.join(out_dir, s.file))) for s in mine],
    }
  atomic.write_bytes(os.path.join(out_dir, records.MANIFEST),
                       json.dumps(manifest, indent=2).encode())
  return manifest
