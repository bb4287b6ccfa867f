"""Where the COCO import may write: the checks of its output directory, before any write.

A directory the import writes holds imports only: these checks refuse a
generated or resized data set (or one whose writer has not written its
manifest yet), another file's split, a file the manifest does not list, and
users or frames another split already holds (docs/data_format.md). The
digest of a frame compares frames without user ids by their pixels.
`make_dir` and `remove_dirs` create the output directory and remove what a
refused import created. Used by hand25d/data/coco.py's import_coco.
"""

import hashlib
import os

import numpy as np

from hand25d.data import coco_json
from hand25d.data import records

CocoError = coco_json.CocoError
_few, _is_id, _is_int = coco_json.few, coco_json.is_id, coco_json.is_int

# Where import_coco writes the shards of a split before moving them into place.
STAGING = ".import-"
# An import's manifest: its generator_version, and the only keys it has. A
# manifest with others (a generator's seed and config, a resized copy's
# origin) belongs to another writer.
IMPORTER = "coco-import"
_MANIFEST_KEYS = {"format", "generator_version", "height", "width", "with_phase_frames", "splits"}
# Files other writers keep in a data set directory, also before its manifest.
_OTHER_WRITERS = {"generation_config.json": "a generated data set",
                  "resized_from.json": "a resized copy of a data set"}
_ELSEWHERE = ("importing there would overwrite its shards or mix them with the import; import "
              "into another directory")


def _describe(manifest: dict) -> str:
  """The writer of a manifest the importer did not write, in words."""
  version = manifest.get("generator_version")
  if "resized_from" in manifest:
    origin = manifest["resized_from"]
    return f"a resized copy of {origin.get('data_dir') if isinstance(origin, dict) else origin}"
  if "config" in manifest or "seed" in manifest:
    return (f"a generated data set (generator version {version}, seed {manifest.get('seed')}, "
            f"{manifest.get('num_frames')} frames)")
  extra = sorted(set(manifest) - _MANIFEST_KEYS)
  return (f"a data set the COCO importer did not write (generator_version {version!r}"
          + (f"; keys {_few(extra)}" if extra else "") + ")")


def _check_import_manifest(manifest: dict, path: str) -> None:
  """Refuses an import manifest whose fields are not as import_coco writes them."""
  bad = [key for key in ("height", "width") if not _is_id(manifest.get(key))]
  for split, info in manifest["splits"].items():
    digests = info.get("image_digests", {})
    if (split not in records.SPLITS or not isinstance(info.get("source"), str)
        or not isinstance(info.get("users"), list) or not all(_is_int(u) for u in info["users"])
        or not isinstance(digests, dict) or not all(isinstance(d, str) for d in digests.values())
        or not all(k.isdigit() for k in digests)):
      bad.append(f"splits.{split}")
  if bad:
    raise CocoError(f"{path}: {', '.join(bad)} not as the importer writes them (the manifest was "
                    f"edited or damaged); {_ELSEWHERE}")


def existing_manifest(out_dir: str) -> dict | None:
  """The manifest of the imports already in out_dir; None if it has none yet.

  Raises:
    CocoError: out_dir is not a directory, or holds a data set the importer
      did not write (its manifest, or the files of a generator or resize run
      that has not written one yet), or a manifest that cannot be read.
  """
  if not os.path.lexists(out_dir):
    return None
  if not os.path.isdir(out_dir):
    raise CocoError(f"output directory {out_dir} is an existing file, not a directory")
  path = os.path.join(out_dir, records.MANIFEST)
  manifest, problem = None, None
  if os.path.lexists(path):
    try:
      manifest = records.load_manifest(out_dir)
    except records.RecordError as e:
      problem = e
  if manifest is not None and (manifest.get("generator_version") != IMPORTER
                               or not set(manifest) <= _MANIFEST_KEYS):
    raise CocoError(f"{out_dir} holds {_describe(manifest)}; {_ELSEWHERE}")
  for name, what in _OTHER_WRITERS.items():
    if os.path.lexists(os.path.join(out_dir, name)):
      raise CocoError(f"{out_dir} holds {what} ({name}); {_ELSEWHERE}")
  if problem is not None:
    raise CocoError(f"{out_dir} holds a manifest.json that cannot be read as a data set's "
                    f"({problem}); {_ELSEWHERE}, or move the manifest away")
  if manifest is not None:
    _check_import_manifest(manifest, path)
  return manifest


def check_targets(out_dir: str, manifest: dict | None, split: str, source: str,
                   names: list[str]) -> None:
  """Refuses to replace another source's split, or to overwrite a file that is not its own."""
  old = (manifest or {"splits": {}})["splits"].get(split)
  if old is not None and old["source"] != source:
    raise CocoError(f"{out_dir} already holds split {split!r}, imported from {old['source']}; "
                    f"importing {source} as {split!r} would replace it: import into another "
                    "directory")
  own = {shard["file"] for shard in old["shards"]} if old is not None else set()
  for name in names:
    path = os.path.join(out_dir, name)
    if name not in own and os.path.lexists(path):
      raise CocoError(f"{path} exists and is not a shard of an earlier import of split "
                      f"{split!r} from {source} (the manifest does not list it), so the import "
                      "would overwrite it: move it away or import into another directory")


def check_disjoint(images: dict, manifest: dict | None, split: str, json_path: str,
                    out_dir: str) -> dict[str, tuple[str, int]]:
  """Refuses users of another split of out_dir; returns its frames' digests -> (split, image id).

  Users are disjoint between splits (docs/data_format.md). An image without a
  user_id has no known user, so frames are also compared by their pixels.
  """
  mine = {}
  for image_id, image in images.items():
    if "user_id" in image:
      mine.setdefault(image["user_id"], []).append(image_id)
  seen = {}
  for other, info in (manifest or {"splits": {}})["splits"].items():
    if other == split:
      continue
    shared = sorted(set(mine) & set(info["users"]))
    if shared:
      ids = sorted(i for user in shared for i in mine[user])
      raise CocoError(f"{json_path}: users {_few(shared)} (images {_few(ids)}) are already in "
                      f"split {other!r} of {out_dir} (imported from {info['source']}); users "
                      "must be disjoint between splits")
    if "image_digests" not in info:
      raise CocoError(f"{out_dir}: split {other!r} was imported without image digests (by an "
                      f"earlier version), so its frames cannot be compared with {json_path}'s; "
                      f"import {info['source']} as {other!r} again first")
    seen.update({d: (other, int(i)) for i, d in info["image_digests"].items()})
  return seen


def digest(frame: dict) -> str:
  """The first 16 hex digits of the SHA-256 of a frame's size, amplitude and depth pixels."""
  digest = hashlib.sha256(np.asarray(frame["amplitude"].shape, "<i8").tobytes())
  digest.update(np.ascontiguousarray(frame["amplitude"], "<u2").tobytes())
  digest.update(np.ascontiguousarray(frame["depth"], "<f4").tobytes())
  return digest.hexdigest()[:16]


def make_dir(path: str) -> list[str]:
  """Creates path and its missing parents; returns those it created, deepest first."""
  created, missing = [], os.path.abspath(path)
  while not os.path.lexists(missing):
    created.append(missing)
    missing = os.path.dirname(missing)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    remove_dirs(created)
    raise CocoError(f"cannot create the output directory {path}: {e}") from e
  return created


def remove_dirs(created: list[str]) -> None:
  """Removes the directories a refused import created, deepest first, if they are empty."""
  for directory in created:
    try:
      os.rmdir(directory)
    except OSError:  # Not empty (someone else wrote there) or already gone: keep the rest.
      break
