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
read by hand25d.data.coco_images, the JSON checked by hand25d.data.coco_json.

import_coco writes one split per call into a directory that holds imports
only: it never overwrites a file it did not write (a generated data set is
refused), and keeps users and frames disjoint between splits
(hand25d.data.coco_output checks the directory first).
"""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator

import numpy as np

from hand25d import atomic
from hand25d import progress
from hand25d import spec
from hand25d.data import coco_images
from hand25d.data import coco_json
from hand25d.data import coco_output
from hand25d.data import records
from hand25d.data import scene

import tensorflow as tf

CocoError = coco_json.CocoError
VISIBILITY_FLAGS = coco_json.VISIBILITY_FLAGS


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
  images, by_image = coco_json.parse(json_path)
  return _frames(images, by_image, image_root, json_path)


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
  images, by_image = coco_json.parse(json_path)
  if not images:
    raise CocoError(f"{json_path} has no images")
  if not os.path.isdir(image_root):
    raise CocoError(f"image root {image_root} "
                    f"{'is not a directory' if os.path.exists(image_root) else 'does not exist'}")
  manifest = coco_output.existing_manifest(out_dir)
  source = os.path.abspath(json_path)
  n_shards = -(-len(images) // frames_per_shard)
  names = [f"{split}-{k:05d}-of-{n_shards:05d}.tfrecord" for k in range(n_shards)]
  coco_output.check_targets(out_dir, manifest, split, source, names)
  seen = coco_output.check_disjoint(images, manifest, split, json_path, out_dir)
  created = coco_output.make_dir(out_dir)
  try:
    return _write_split(json_path, images, by_image, image_root, out_dir, split, manifest,
                        names, seen, frames_per_shard)
  except OSError as e:  # E.g. a full disk; e names the file.
    coco_output.remove_dirs(created)
    raise CocoError(f"import into {out_dir} failed: {e}") from e
  except BaseException:
    coco_output.remove_dirs(created)
    raise


def _write_split(json_path: str, images: dict, by_image: dict, image_root: str, out_dir: str,
                 split: str, manifest: dict | None, names: list[str], seen: dict,
                 frames_per_shard: int) -> dict:
  """import_coco's writing, after out_dir and the file were checked against each other."""
  for name in os.listdir(out_dir):  # The staging directory of a killed import.
    if name.startswith(coco_output.STAGING) and os.path.isdir(os.path.join(out_dir, name)):
      shutil.rmtree(os.path.join(out_dir, name))
  atomic.remove_stale(out_dir)  # A manifest or shard it was renaming into place.
  others = {s: info for s, info in (manifest or {"splits": {}})["splits"].items() if s != split}
  staging = tempfile.mkdtemp(prefix=f"{coco_output.STAGING}{split}-", dir=out_dir)
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
      digest = coco_output.digest(frame)
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
  manifest = {"format": records.FORMAT, "generator_version": coco_output.IMPORTER,
              "height": size[0], "width": size[1], "with_phase_frames": False, "splits": others}
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
