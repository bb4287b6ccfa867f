"""Bring your own data: COCO-keypoints-style JSON + 16-bit PNGs <-> frame records.

The JSON layout (documented in docs/data_format.md):
  images: [{id, file_name (16-bit amplitude PNG, ADC counts), depth_file
            (16-bit depth PNG, millimetres, 0 = invalid), mask_file (optional
            8-bit greyscale or palette PNG of spec.SEGMENTATION_CLASSES
            indices; absent: the mask is unknown), user_id (optional; absent:
            unknown), width, height (optional, checked)}]
  annotations: [{id, image_id, side ('left' | 'right'), keypoints (17 x
                 [x, y, v], v: 0 unlabelled, 1 labelled but occluded,
                 2 visible), num_keypoints, iscrowd, category_id (optional,
                 checked), pose (optional name in spec.POSE_CLASSES; absent:
                 unknown), roll_deg (optional; absent: the orientation is
                 unknown), keypoints_depth
                 (optional 17 metres; default: the depth image at each
                 keypoint)}]
  categories: [{id, keypoints (optional: the order of the 17
                spec.KEYPOINT_NAMES in this file; default: that order)}]
Paths are relative to the image root and must stay inside it.

Nothing is skipped or converted silently: input outside that contract is
refused with a CocoError naming the JSON file and the image or annotation id
(docs/data_format.md, "What the import refuses"), so bad input never becomes
a bad label; a label the file does not give is stored as unknown (the
records' label-known flags), not as a negative label. The image files are
read by hand25d.data.coco_images.

import_coco writes one split per call into a directory that holds imports
only: it never overwrites a file it did not write (a generated data set is
refused), and keeps users and frames disjoint between splits.
"""

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from typing import Iterator

import numpy as np

from hand25d import atomic
from hand25d import progress
from hand25d import spec
from hand25d.data import coco_images
from hand25d.data import records
from hand25d.data import scene

import tensorflow as tf

VISIBILITY_FLAGS = (0, 1, 2)  # COCO: unlabelled, labelled but occluded, visible.
_K = spec.NUM_KEYPOINTS
_MAX_ID = 2**63 - 1  # Ids are stored as int64 (frame_id, user_id).
_MAX_FLOAT = float(np.finfo(np.float32).max)  # Float labels are stored as float32.


class CocoError(ValueError):
  """A COCO file, image or annotation is missing, malformed or outside the contract."""


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _is_id(x) -> bool:
  return _is_int(x) and 0 <= x <= _MAX_ID


def _is_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number_problem(x) -> str | None:
  """Why x cannot be stored as a float32 label, or None if it can."""
  if isinstance(x, bool):
    return f"{json.dumps(x)}, a boolean, not a number"
  if not isinstance(x, (int, float)):
    return f"a {type(x).__name__}, not a number"
  try:
    value = float(x)
  except OverflowError:  # An integer beyond float64, e.g. 1e400 written without a point.
    return f"an integer of {len(str(abs(x)))} digits, outside the float32 range of the records"
  if not math.isfinite(value):
    return f"{x!r}, not finite"
  if abs(value) > _MAX_FLOAT:
    return f"{x!r}, outside the float32 range of the records (magnitude {_MAX_FLOAT:.4g})"
  return None


def _few(items) -> str:
  """'a, b, c, d and 4 more': a readable start of a long list."""
  items = [str(i) for i in items]
  more = f" and {len(items) - 4} more" if len(items) > 4 else ""
  return ", ".join(items[:4]) + more


def _load_json(json_path: str) -> dict:
  try:
    with open(json_path, "rb") as fp:
      coco = json.load(fp)
  except OSError as e:
    raise CocoError(f"{json_path}: cannot be read: {e}") from e
  except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError.
    raise CocoError(f"{json_path}: not valid JSON: {e}") from e
  if not isinstance(coco, dict):
    raise CocoError(f"{json_path}: the top level must be an object with an 'images' list, got "
                    f"{type(coco).__name__}")
  if "images" not in coco:
    raise CocoError(f"{json_path}: missing key 'images' (the list of image entries)")
  for key in ("images", "annotations", "categories"):
    if key in coco and not isinstance(coco[key], list):
      raise CocoError(f"{json_path}: '{key}' must be a list, got {type(coco[key]).__name__}")
  return coco


def _check_images(coco: dict, json_path: str) -> dict[int, dict]:
  """image id -> image entry, after checking ids and keys."""
  images = {}
  for index, image in enumerate(coco["images"]):
    if not isinstance(image, dict) or "id" not in image:
      raise CocoError(f"{json_path}: images[{index}] must be an object with an 'id'")
    image_id = image["id"]
    where = f"{json_path}: image {image_id!r}"
    if not _is_id(image_id):
      raise CocoError(f"{where}: 'id' must be a non-negative integer")
    if image_id in images:
      raise CocoError(f"{where}: duplicate image id (images[{index}] repeats an earlier entry)")
    for key in ("file_name", "depth_file"):
      if key not in image:
        raise CocoError(f"{where}: missing key '{key}'")
    for key in ("user_id", "width", "height"):
      if key in image and not _is_id(image[key]):
        raise CocoError(f"{where}: '{key}' must be a non-negative integer, got {image[key]!r}")
    images[image_id] = image
  return images


def _keypoint_orders(coco: dict, json_path: str) -> dict[int, np.ndarray | None]:
  """category id -> for each spec keypoint, its index in the file (None: spec order)."""
  orders = {}
  for index, category in enumerate(coco.get("categories", [])):
    if not isinstance(category, dict) or not _is_int(category.get("id")):
      raise CocoError(f"{json_path}: categories[{index}] must be an object with an integer 'id'")
    where = f"{json_path}: category {category['id']}"
    if category["id"] in orders:
      raise CocoError(f"{where}: duplicate category id")
    names = category.get("keypoints")
    if names is None:
      orders[category["id"]] = None
      continue
    if (not isinstance(names, list) or not all(isinstance(n, str) for n in names) or
        len(names) != _K or set(names) != set(spec.KEYPOINT_NAMES)):
      listed = names if isinstance(names, list) else []
      missing = [n for n in spec.KEYPOINT_NAMES if n not in listed]
      unknown = [n for n in listed if n not in spec.KEYPOINT_NAMES]
      raise CocoError(
          f"{where}: 'keypoints' must list the {_K} names of spec.KEYPOINT_NAMES once each, in "
          f"any order; missing: {_few(missing) or 'none'}; unknown: "
          f"{_few(unknown) or 'none'} ({len(listed)} listed)")
    orders[category["id"]] = np.array([names.index(n) for n in spec.KEYPOINT_NAMES])
  return orders


def _category_order(ann: dict, where: str, orders: dict) -> np.ndarray | None:
  if "category_id" in ann:
    category = ann["category_id"]
    if not _is_int(category) or category not in orders:
      raise CocoError(f"{where}: category_id {category!r} names no entry of 'categories'")
    return orders[category]
  if len(orders) > 1:
    raise CocoError(f"{where}: no category_id, but the file has {len(orders)} categories")
  return next(iter(orders.values()), None)


def _parse_annotation(ann, index: int, json_path: str, images: dict, orders: dict) -> dict:
  """Checks an annotation's values (not those that need its image) and puts them in spec order."""
  if not isinstance(ann, dict) or not _is_int(ann.get("id")):
    raise CocoError(f"{json_path}: annotations[{index}] must be an object with an integer 'id'")
  where = f"{json_path}: annotation {ann['id']}"
  image_id = ann.get("image_id")
  if not _is_int(image_id):
    raise CocoError(f"{where}: image_id must be an integer image id, got {image_id!r}")
  if image_id not in images:
    raise CocoError(f"{where}: image_id {image_id} matches no entry of 'images'")
  where = f"{json_path}: image {image_id} annotation {ann['id']}"
  crowd = ann.get("iscrowd", 0)
  if not _is_number(crowd) or crowd not in (0, 1):
    raise CocoError(f"{where}: iscrowd must be 0 or 1, got {_number_problem(crowd) or crowd}")
  if crowd == 1:
    raise CocoError(f"{where}: iscrowd 1 is refused: a crowd region labels no single hand, so it "
                    "cannot become a hand label; annotate each hand on its own (or remove the "
                    "image)")
  order = _category_order(ann, where, orders)
  if ann.get("side") not in spec.SIDES:
    raise CocoError(f"{where}: side {ann.get('side')!r} is not one of {spec.SIDES}")
  # The keypoint names in the file's order, to name a bad value where the file has it.
  names = (spec.KEYPOINT_NAMES if order is None else
           [spec.KEYPOINT_NAMES[i] for i in np.argsort(order)])
  kp = ann.get("keypoints")
  wanted = f"keypoints must be {3 * _K} finite numbers (x, y, v for {_K} keypoints)"
  if not isinstance(kp, list) or len(kp) != 3 * _K:
    got = f"{len(kp)} values" if isinstance(kp, list) else repr(kp)
    raise CocoError(f"{where}: {wanted}, got {got}")
  for i, x in enumerate(kp):
    if problem := _number_problem(x):
      raise CocoError(f"{where}: {wanted}; keypoints[{i}] ({'xyv'[i % 3]} of {names[i // 3]}) "
                      f"is {problem}")
  kp = np.asarray(kp, np.float64).reshape(_K, 3)
  if order is not None:
    kp = kp[order]
  bad = ~np.isin(kp[:, 2], VISIBILITY_FLAGS)
  if np.any(bad):
    raise CocoError(
        f"{where}: visibility flags must be 0 (unlabelled), 1 (labelled, occluded) or 2 "
        f"(visible), got " +
        _few(f"{spec.KEYPOINT_NAMES[i]}={kp[i, 2]:g}" for i in np.flatnonzero(bad)))
  labelled = int(np.count_nonzero(kp[:, 2] > 0))
  if "num_keypoints" in ann and not _is_number(ann["num_keypoints"]):
    raise CocoError(f"{where}: num_keypoints must be a number, got "
                    f"{_number_problem(ann['num_keypoints'])}")
  if "num_keypoints" in ann and ann["num_keypoints"] != labelled:
    raise CocoError(f"{where}: num_keypoints is {ann['num_keypoints']!r} but {labelled} "
                    "keypoints are labelled (v > 0)")
  if not labelled:
    raise CocoError(f"{where}: no keypoint is labelled (every v is 0); such a hand would train as "
                    "present with every keypoint 'not visible'; remove the annotation")
  pose = ann.get("pose")
  if pose is not None and pose not in spec.POSE_CLASSES:
    raise CocoError(f"{where}: pose {pose!r} is not one of {spec.POSE_CLASSES}")
  roll = ann.get("roll_deg")
  if roll is not None and (problem := _number_problem(roll)):
    raise CocoError(f"{where}: roll_deg must be a finite number of degrees within the float32 "
                    f"range, got {problem}")
  kd = ann.get("keypoints_depth")
  if kd is not None:
    max_m = coco_images.MAX_DEPTH_MM / 1000.0
    wanted = f"keypoints_depth must be {_K} numbers in metres within [0, {max_m:g}]"
    if not isinstance(kd, list) or len(kd) != _K:
      got = f"{len(kd)} values" if isinstance(kd, list) else repr(kd)
      raise CocoError(f"{where}: {wanted}, got {got}")
    for i, x in enumerate(kd):
      problem = _number_problem(x)
      if problem is None and not 0.0 <= x <= max_m:
        problem = f"{x!r}, outside that range"
      if problem:
        raise CocoError(f"{where}: {wanted}; keypoints_depth[{i}] ({names[i]}) is {problem}")
    kd = np.asarray(kd, np.float32)
    if order is not None:
      kd = kd[order]
  return {"id": ann["id"], "image_id": image_id, "side": spec.SIDES.index(ann["side"]),
          "keypoints": kp, "pose": None if pose is None else spec.POSE_INDEX[pose],
          "roll_deg": None if roll is None else float(roll),
          "keypoints_depth": kd}


def _parse(json_path: str) -> tuple[dict[int, dict], dict[int, list[dict]]]:
  """Reads and checks the JSON: (image id -> image entry, image id -> its parsed annotations)."""
  coco = _load_json(json_path)
  images = _check_images(coco, json_path)
  orders = _keypoint_orders(coco, json_path)
  by_image, ann_ids = {}, set()
  for index, ann in enumerate(coco.get("annotations", [])):
    hand = _parse_annotation(ann, index, json_path, images, orders)
    if hand["id"] in ann_ids:
      raise CocoError(f"{json_path}: annotation {hand['id']}: duplicate annotation id")
    ann_ids.add(hand["id"])
    hands = by_image.setdefault(hand["image_id"], [])
    for other in hands:
      if other["side"] == hand["side"]:
        raise CocoError(f"{json_path}: image {hand['image_id']} annotation {hand['id']}: a second "
                        f"{spec.SIDES[hand['side']]} hand (annotation {other['id']} is the first)")
    hands.append(hand)
  return images, by_image


def _read_images(image: dict, image_root: str, json_path: str):
  """(amplitude, depth in mm, mask or None) of an image entry, each checked by its role."""
  files = [("amplitude", image["file_name"]), ("depth", image["depth_file"])]
  if image.get("mask_file") is not None:
    files.append(("mask", image["mask_file"]))
  where = f"{json_path}: image {image['id']}"
  arrays = []
  for role, rel in files:
    try:
      path = coco_images.resolve(image_root, rel, role)
      if os.path.isdir(path):
        raise coco_images.ImageFileError(f"{role} file {path} is a directory, not a PNG file")
      arrays.append(coco_images.read_png(path, role))
    except coco_images.ImageFileError as e:
      raise CocoError(f"{where}: {e}") from e
  for (role, rel), array in zip(files[1:], arrays[1:]):
    if array.shape != arrays[0].shape:
      raise CocoError(f"{where}: {role} file {rel} is {array.shape}, amplitude is "
                      f"{arrays[0].shape}")
  h, w = arrays[0].shape
  for key, size in (("width", w), ("height", h)):
    if key in image and image[key] != size:
      raise CocoError(f"{where}: {key} is {image[key]} but the amplitude file is {w}x{h}")
  return arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None


def _frame(image: dict, hands: list[dict], image_root: str, json_path: str) -> dict:
  amp, depth_mm, seg = _read_images(image, image_root, json_path)
  h, w = amp.shape
  depth = depth_mm.astype(np.float32) / 1000.0
  frame = dict(scene.empty_labels(), amplitude=amp, depth=depth, true_depth=depth,
               segmentation=seg if seg is not None else np.zeros((h, w), np.uint8),
               user_id=np.int64(image.get("user_id", 0)),
               # Labels the file does not give are unknown, not "background" or "other".
               segmentation_known=np.int64(seg is not None),
               pose_known=np.ones(spec.NUM_SIDES, np.int64),
               orientation_known=np.ones(spec.NUM_SIDES, np.int64))
  for hand in hands:
    kp, side = hand["keypoints"], hand["side"]
    visible = kp[:, 2] == 2
    outside = visible & ((kp[:, 0] < -0.5) | (kp[:, 0] > w - 0.5) | (kp[:, 1] < -0.5) |
                         (kp[:, 1] > h - 0.5))
    if np.any(outside):
      names = [spec.KEYPOINT_NAMES[i] for i in np.flatnonzero(outside)]
      raise CocoError(f"{json_path}: image {image['id']} annotation {hand['id']}: visible "
                      f"keypoints {names} lie outside the {w}x{h} image")
    kd = hand["keypoints_depth"]
    if kd is None:
      col = np.clip(np.round(kp[:, 0]).astype(int), 0, w - 1)
      row = np.clip(np.round(kp[:, 1]).astype(int), 0, h - 1)
      kd = depth[row, col]
    frame["keypoints_xy"][side] = kp[:, :2]
    frame["keypoints_depth"][side] = kd
    frame["keypoint_visible"][side] = visible
    frame["hand_present"][side] = 1
    if hand["pose"] is None:
      frame["pose_known"][side] = 0
    else:
      frame["pose"][side] = hand["pose"]
    if hand["roll_deg"] is None:
      frame["orientation_known"][side] = 0
    else:
      frame["roll_deg"][side] = hand["roll_deg"]
      frame["orientation_bin"][side] = spec.orientation_bin(hand["roll_deg"])
  return frame


def _frames(images: dict, by_image: dict, image_root: str,
            json_path: str) -> Iterator[tuple[int, dict]]:
  for image_id, image in images.items():
    yield image_id, _frame(image, by_image.get(image_id, []), image_root, json_path)


def load_frames(json_path: str, image_root: str) -> Iterator[tuple[int, dict]]:
  """(image id, frame dict) for every image of a COCO-keypoints JSON file, in file order.

  The JSON is read and checked when this is called; each image's files are read
  and checked as its frame is reached, so frames stream without being held.

  Raises:
    CocoError: naming the JSON file and the image or annotation id, for input
      outside the contract of docs/data_format.md ("What the import refuses").
  """
  images, by_image = _parse(json_path)
  return _frames(images, by_image, image_root, json_path)


# Where import_coco writes the shards of a split before moving them into place.
_STAGING = ".import-"
# An import's manifest: its generator_version, and the only keys it has. A
# manifest with others (a generator's seed and config, a resized copy's
# origin) belongs to another writer.
_IMPORTER = "coco-import"
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


def _existing_manifest(out_dir: str) -> dict | None:
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
  if manifest is not None and (manifest.get("generator_version") != _IMPORTER
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


def _check_targets(out_dir: str, manifest: dict | None, split: str, source: str,
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


def _check_disjoint(images: dict, manifest: dict | None, split: str, json_path: str,
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


def _digest(frame: dict) -> str:
  """The first 16 hex digits of the SHA-256 of a frame's size, amplitude and depth pixels."""
  digest = hashlib.sha256(np.asarray(frame["amplitude"].shape, "<i8").tobytes())
  digest.update(np.ascontiguousarray(frame["amplitude"], "<u2").tobytes())
  digest.update(np.ascontiguousarray(frame["depth"], "<f4").tobytes())
  return digest.hexdigest()[:16]


def _make_dir(path: str) -> list[str]:
  """Creates path and its missing parents; returns those it created, deepest first."""
  created, missing = [], os.path.abspath(path)
  while not os.path.lexists(missing):
    created.append(missing)
    missing = os.path.dirname(missing)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    _remove_dirs(created)
    raise CocoError(f"cannot create the output directory {path}: {e}") from e
  return created


def _remove_dirs(created: list[str]) -> None:
  """Removes the directories a refused import created, deepest first, if they are empty."""
  for directory in created:
    try:
      os.rmdir(directory)
    except OSError:  # Not empty (someone else wrote there) or already gone: keep the rest.
      break


def import_coco(json_path: str, image_root: str, out_dir: str, split: str = "train",
                frames_per_shard: int = 256) -> dict:
  """Converts a COCO file into shards of `split` in out_dir and updates its manifest.

  Other splits already in out_dir's manifest are kept, so one data set can be
  assembled from one COCO file per split; importing the same file as the same
  split again replaces that split. out_dir must be new or hold only imports:
  a generated or resized data set, a split imported from another file, and a
  file that the manifest does not list under the split's shard names are
  refused, not overwritten. Users are disjoint between splits, and so are
  frames (compared by their pixels, for images without a user_id).

  Frames stream into shards, which are written to a staging directory inside
  out_dir and moved into place only when every image has passed, so a
  refused file leaves out_dir as it was (and a directory the import created
  is removed). What a killed import left (its staging directory, temporary
  files) is removed on start.

  Raises:
    CocoError: see load_frames; also an empty file, a missing image root,
      images of different sizes or a size that differs from the other splits
      in out_dir, and an out_dir refused as above, naming what is there.
  """
  if split not in records.SPLITS:
    raise CocoError(f"split {split!r} is not one of {records.SPLITS}")
  if frames_per_shard < 1:
    raise CocoError(f"frames_per_shard must be at least 1, got {frames_per_shard}")
  images, by_image = _parse(json_path)
  if not images:
    raise CocoError(f"{json_path} has no images")
  if not os.path.isdir(image_root):
    raise CocoError(f"image root {image_root} "
                    f"{'is not a directory' if os.path.exists(image_root) else 'does not exist'}")
  manifest = _existing_manifest(out_dir)
  source = os.path.abspath(json_path)
  n_shards = -(-len(images) // frames_per_shard)
  names = [f"{split}-{k:05d}-of-{n_shards:05d}.tfrecord" for k in range(n_shards)]
  _check_targets(out_dir, manifest, split, source, names)
  seen = _check_disjoint(images, manifest, split, json_path, out_dir)
  created = _make_dir(out_dir)
  try:
    return _write_split(json_path, images, by_image, image_root, out_dir, split, manifest,
                        names, seen, frames_per_shard)
  except OSError as e:  # E.g. a full disk; e names the file.
    _remove_dirs(created)
    raise CocoError(f"import into {out_dir} failed: {e}") from e
  except BaseException:
    _remove_dirs(created)
    raise


def _write_split(json_path: str, images: dict, by_image: dict, image_root: str, out_dir: str,
                 split: str, manifest: dict | None, names: list[str], seen: dict,
                 frames_per_shard: int) -> dict:
  """import_coco's writing, after out_dir and the file were checked against each other."""
  for name in os.listdir(out_dir):  # The staging directory of a killed import.
    if name.startswith(_STAGING) and os.path.isdir(os.path.join(out_dir, name)):
      shutil.rmtree(os.path.join(out_dir, name))
  atomic.remove_stale(out_dir)  # A manifest or shard it was renaming into place.
  others = {s: info for s, info in (manifest or {"splits": {}})["splits"].items() if s != split}
  staging = tempfile.mkdtemp(prefix=f"{_STAGING}{split}-", dir=out_dir)
  reporter = progress.Progress(f"import {split}", len(images), "frames")
  try:
    shards, chunk, digests, size = [], [], {}, None
    for i, (image_id, frame) in enumerate(_frames(images, by_image, image_root, json_path)):
      reporter.update()
      h, w = frame["amplitude"].shape
      if size is None:
        size = (h, w)
        if others and (manifest["height"], manifest["width"]) != size:
          raise CocoError(f"{json_path}: images are {w}x{h} but {out_dir} holds "
                          f"{manifest['width']}x{manifest['height']} frames")
      elif (h, w) != size:
        raise CocoError(f"{json_path}: image {image_id} is {w}x{h}, the images before it are "
                        f"{size[1]}x{size[0]}")
      digest = _digest(frame)
      if digest in seen:
        raise CocoError(f"{json_path}: image {image_id} is the same frame (amplitude and depth) "
                        f"as image {seen[digest][1]} of split {seen[digest][0]!r} in {out_dir}; "
                        "a frame in two splits would be evaluated on what it was trained on")
      digests[str(image_id)] = digest
      try:
        chunk.append(records.encode(frame, image_id))
      except records.RecordError as e:
        raise CocoError(f"{json_path}: image {image_id}: {e}") from e
      if len(chunk) == frames_per_shard or i == len(images) - 1:
        path = os.path.join(staging, names[len(shards)])
        records.write_shard(path, chunk)
        shards.append({"file": names[len(shards)], "num_frames": len(chunk),
                       "bytes": os.path.getsize(path)})
        chunk = []
    for shard in shards:
      os.replace(os.path.join(staging, shard["file"]), os.path.join(out_dir, shard["file"]))
  finally:
    shutil.rmtree(staging, ignore_errors=True)
    reporter.finish()
  replaced = manifest["splits"].get(split) if manifest is not None else None
  manifest = {"format": records.FORMAT, "generator_version": _IMPORTER, "height": size[0],
              "width": size[1], "with_phase_frames": False, "splits": others}
  manifest["splits"][split] = {
      "num_frames": len(images), "source": os.path.abspath(json_path),
      "users": sorted({image["user_id"] for image in images.values() if "user_id" in image}),
      "image_digests": digests, "shards": shards}
  atomic.write_bytes(os.path.join(out_dir, records.MANIFEST),
                     json.dumps(manifest, indent=2).encode())
  for shard in replaced["shards"] if replaced is not None else []:
    if shard["file"] not in names:  # The replaced split's own shards, now listed nowhere.
      with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, shard["file"]))
  return manifest


def _write_png(path: str, image: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_bytes(path, tf.io.encode_png(image[..., None]).numpy())


def write_coco(frames: list[dict], out_dir: str, json_name: str = "annotations.json") -> str:
  """Writes frames (render_frame or records.decode dicts) as COCO JSON + PNGs.

  Labels a frame flags as unknown are left out (no mask_file, pose, roll_deg).

  Returns:
    The path of the JSON file.
  """
  images, annotations = [], []
  for i, frame in enumerate(frames):
    known = records.known_flags(frame)
    names = {"file_name": f"amplitude/{i:06d}.png", "depth_file": f"depth/{i:06d}.png"}
    _write_png(os.path.join(out_dir, names["file_name"]), np.asarray(frame["amplitude"], np.uint16))
    depth_mm = np.clip(np.round(np.asarray(frame["depth"]) * 1000.0), 0, 65535).astype(np.uint16)
    _write_png(os.path.join(out_dir, names["depth_file"]), depth_mm)
    if known["segmentation_known"]:
      names["mask_file"] = f"mask/{i:06d}.png"
      _write_png(os.path.join(out_dir, names["mask_file"]),
                 np.asarray(frame["segmentation"], np.uint8))
    h, w = frame["amplitude"].shape
    images.append(dict(id=i, width=w, height=h, user_id=int(frame["user_id"]), **names))
    for side in range(spec.NUM_SIDES):
      if not frame["hand_present"][side]:
        continue
      xy = np.asarray(frame["keypoints_xy"][side], np.float64)
      vis = np.asarray(frame["keypoint_visible"][side]) > 0
      kp = np.concatenate([xy, np.where(vis, 2, 1)[:, None]], axis=1)
      ann = {"id": len(annotations), "image_id": i, "side": spec.SIDES[side],
             "keypoints": kp.ravel().tolist(),
             "keypoints_depth": np.asarray(frame["keypoints_depth"][side], np.float64).tolist()}
      if known["pose_known"][side]:
        ann["pose"] = spec.POSE_CLASSES[int(frame["pose"][side])]
      if known["orientation_known"][side]:
        ann["roll_deg"] = float(frame["roll_deg"][side])
      annotations.append(ann)
  coco = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "hand", "keypoints": list(spec.KEYPOINT_NAMES),
                          "skeleton": [[i, p] for i, p in enumerate(spec.KEYPOINT_PARENTS)
                                       if p >= 0]}]}
  path = os.path.join(out_dir, json_name)
  atomic.write_bytes(path, json.dumps(coco).encode())
  return path
