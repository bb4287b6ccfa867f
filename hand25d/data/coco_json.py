"""The COCO-keypoints JSON contract of the import: a file read and checked into hands.

`parse(json_path)` reads a COCO-keypoints-style file (the layout in
hand25d/data/coco.py and docs/data_format.md) and checks every image entry
and annotation against the contract, raising a CocoError that names the
file and the image or annotation id (docs/data_format.md, "What the import
refuses"). It reads no image file: hand25d/data/coco.py turns the parsed
entries and their PNGs into frames.
"""

import json
import math

import numpy as np

from hand25d import spec
from hand25d.data import coco_images

VISIBILITY_FLAGS = (0, 1, 2)  # COCO: unlabelled, labelled but occluded, visible.
_K = spec.NUM_KEYPOINTS
_MAX_ID = 2**63 - 1  # Ids are stored as int64 (frame_id, user_id).
_MAX_FLOAT = float(np.finfo(np.float32).max)  # Float labels are stored as float32.


class CocoError(ValueError):
  """A COCO file, image or annotation is missing, malformed or outside the contract."""


def is_int(x) -> bool:
  """A JSON integer (not a boolean)."""
  return isinstance(x, int) and not isinstance(x, bool)


def is_id(x) -> bool:
  """A JSON integer that fits the records' int64 ids, not negative."""
  return is_int(x) and 0 <= x <= _MAX_ID


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


def few(items) -> str:
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
    if not is_id(image_id):
      raise CocoError(f"{where}: 'id' must be a non-negative integer")
    if image_id in images:
      raise CocoError(f"{where}: duplicate image id (images[{index}] repeats an earlier entry)")
    for key in ("file_name", "depth_file"):
      if key not in image:
        raise CocoError(f"{where}: missing key '{key}'")
    for key in ("user_id", "width", "height"):
      if key in image and not is_id(image[key]):
        raise CocoError(f"{where}: '{key}' must be a non-negative integer, got {image[key]!r}")
    images[image_id] = image
  return images


def _keypoint_orders(coco: dict, json_path: str) -> dict[int, np.ndarray | None]:
  """category id -> for each spec keypoint, its index in the file (None: spec order)."""
  orders = {}
  for index, category in enumerate(coco.get("categories", [])):
    if not isinstance(category, dict) or not is_int(category.get("id")):
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
          f"any order; missing: {few(missing) or 'none'}; unknown: "
          f"{few(unknown) or 'none'} ({len(listed)} listed)")
    orders[category["id"]] = np.array([names.index(n) for n in spec.KEYPOINT_NAMES])
  return orders


def _category_order(ann: dict, where: str, orders: dict) -> np.ndarray | None:
  if "category_id" in ann:
    category = ann["category_id"]
    if not is_int(category) or category not in orders:
      raise CocoError(f"{where}: category_id {category!r} names no entry of 'categories'")
    return orders[category]
  if len(orders) > 1:
    raise CocoError(f"{where}: no category_id, but the file has {len(orders)} categories")
  return next(iter(orders.values()), None)


def _parse_annotation(ann, index: int, json_path: str, images: dict, orders: dict) -> dict:
  """Checks an annotation's values (not those that need its image) and puts them in spec order."""
  if not isinstance(ann, dict) or not is_int(ann.get("id")):
    raise CocoError(f"{json_path}: annotations[{index}] must be an object with an integer 'id'")
  where = f"{json_path}: annotation {ann['id']}"
  image_id = ann.get("image_id")
  if not is_int(image_id):
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
        few(f"{spec.KEYPOINT_NAMES[i]}={kp[i, 2]:g}" for i in np.flatnonzero(bad)))
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


def parse(json_path: str) -> tuple[dict[int, dict], dict[int, list[dict]]]:
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
