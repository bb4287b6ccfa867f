"""Bring your own data: COCO-keypoints-style JSON + 16-bit PNGs <-> frame records.

The JSON layout (documented in docs/data_format.md):
  images: [{id, file_name (16-bit amplitude PNG, ADC counts), depth_file
            (16-bit depth PNG, millimetres, 0 = invalid), mask_file (optional
            8-bit PNG of spec.SEGMENTATION_CLASSES indices), user_id (optional)}]
  annotations: [{id, image_id, side ('left' | 'right'), keypoints (17 x
                 [x, y, v] in spec.KEYPOINT_NAMES order, v: 0 unlabelled,
                 1 labelled but occluded, 2 visible), pose (optional name in
                 spec.POSE_CLASSES, default 'other'), roll_deg (optional,
                 default 0), keypoints_depth (optional 17 metres; default:
                 the depth image at each keypoint)}]
Paths are relative to the image root.
"""

import json
import os

import numpy as np

from hand25d import atomic
from hand25d import spec
from hand25d.data import records
from hand25d.data import scene

import tensorflow as tf


class CocoError(ValueError):
  """A COCO file, image or annotation is missing or malformed."""


def _read_png(root: str, rel: str, what: str, image_id) -> np.ndarray:
  path = os.path.join(root, rel)
  if not os.path.exists(path):
    raise CocoError(f"image {image_id}: {what} file {path} does not exist")
  data = tf.io.read_file(path)
  return tf.io.decode_png(data, channels=1, dtype=tf.uint16 if what != "mask" else tf.uint8
                          ).numpy()[..., 0]


def _write_png(path: str, image: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_bytes(path, tf.io.encode_png(image[..., None]).numpy())


def load_frames(json_path: str, image_root: str):
  """Yields (frame_id, frame dict) for every image of a COCO-keypoints JSON file.

  Raises:
    CocoError: naming the image or annotation id and what is wrong (missing
      file, wrong image size, keypoints of the wrong length or outside the
      image, unknown side or pose, two hands of one side in an image).
  """
  with open(json_path) as fp:
    coco = json.load(fp)
  by_image = {}
  for ann in coco.get("annotations", []):
    by_image.setdefault(ann.get("image_id"), []).append(ann)
  for image in coco["images"]:
    image_id = image["id"]
    amp = _read_png(image_root, image["file_name"], "amplitude", image_id)
    depth_mm = _read_png(image_root, image["depth_file"], "depth", image_id)
    if depth_mm.shape != amp.shape:
      raise CocoError(f"image {image_id}: depth is {depth_mm.shape}, amplitude is {amp.shape}")
    h, w = amp.shape
    seg = (_read_png(image_root, image["mask_file"], "mask", image_id)
           if image.get("mask_file") else np.zeros((h, w), np.uint8))
    if seg.shape != amp.shape:
      raise CocoError(f"image {image_id}: mask is {seg.shape}, amplitude is {amp.shape}")
    depth = depth_mm.astype(np.float32) / 1000.0
    frame = dict(scene.empty_labels(), amplitude=amp, depth=depth, true_depth=depth,
                 segmentation=seg, user_id=np.int64(image.get("user_id", 0)))
    for ann in by_image.get(image_id, []):
      _add_annotation(frame, ann, h, w)
    yield image_id, frame


def _add_annotation(frame: dict, ann: dict, h: int, w: int) -> None:
  ann_id = ann.get("id")
  if ann.get("side") not in spec.SIDES:
    raise CocoError(f"annotation {ann_id}: side {ann.get('side')!r} is not one of {spec.SIDES}")
  side = spec.SIDES.index(ann["side"])
  if frame["hand_present"][side]:
    raise CocoError(f"annotation {ann_id}: a second {ann['side']} hand in image {ann['image_id']}")
  kp = np.asarray(ann.get("keypoints", []), np.float64)
  if kp.shape != (3 * spec.NUM_KEYPOINTS,) or not np.all(np.isfinite(kp)):
    raise CocoError(f"annotation {ann_id}: keypoints must be {3 * spec.NUM_KEYPOINTS} finite "
                    f"numbers (x, y, v for {spec.NUM_KEYPOINTS} keypoints), got shape {kp.shape}")
  kp = kp.reshape(spec.NUM_KEYPOINTS, 3)
  visible = kp[:, 2] == 2
  outside = visible & ((kp[:, 0] < -0.5) | (kp[:, 0] > w - 0.5) | (kp[:, 1] < -0.5) |
                       (kp[:, 1] > h - 0.5))
  if np.any(outside):
    names = [spec.KEYPOINT_NAMES[i] for i in np.flatnonzero(outside)]
    raise CocoError(f"annotation {ann_id}: visible keypoints {names} lie outside the "
                    f"{w}x{h} image")
  pose = ann.get("pose", "other")
  if pose not in spec.POSE_CLASSES:
    raise CocoError(f"annotation {ann_id}: pose {pose!r} is not one of {spec.POSE_CLASSES}")
  if "keypoints_depth" in ann:
    kd = np.asarray(ann["keypoints_depth"], np.float32)
    if kd.shape != (spec.NUM_KEYPOINTS,):
      raise CocoError(f"annotation {ann_id}: keypoints_depth has shape {kd.shape}, expected "
                      f"({spec.NUM_KEYPOINTS},)")
  else:
    col = np.clip(np.round(kp[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.round(kp[:, 1]).astype(int), 0, h - 1)
    kd = frame["depth"][row, col]
  roll = float(ann.get("roll_deg", 0.0))
  frame["keypoints_xy"][side] = kp[:, :2]
  frame["keypoints_depth"][side] = kd
  frame["keypoint_visible"][side] = visible
  frame["hand_present"][side] = 1
  frame["pose"][side] = spec.POSE_INDEX[pose]
  frame["roll_deg"][side] = roll
  frame["orientation_bin"][side] = spec.orientation_bin(roll)


def import_coco(json_path: str, image_root: str, out_dir: str, split: str = "train",
                frames_per_shard: int = 256) -> dict:
  """Converts a COCO file into shards of `split` in out_dir and updates its manifest.

  Other splits already in out_dir's manifest are kept, so one data set can be
  assembled from one COCO file per split.
  """
  if split not in records.SPLITS:
    raise CocoError(f"split {split!r} is not one of {records.SPLITS}")
  os.makedirs(out_dir, exist_ok=True)
  frames = list(load_frames(json_path, image_root))
  if not frames:
    raise CocoError(f"{json_path} has no images")
  sizes = {f["amplitude"].shape for _, f in frames}
  if len(sizes) != 1:
    raise CocoError(f"{json_path}: images have different sizes {sorted(sizes)}")
  n_shards = -(-len(frames) // frames_per_shard)
  shards = []
  for k in range(n_shards):
    chunk = frames[k * frames_per_shard:(k + 1) * frames_per_shard]
    name = f"{split}-{k:05d}-of-{n_shards:05d}.tfrecord"
    records.write_shard(os.path.join(out_dir, name),
                        [records.encode(frame, int(image_id)) for image_id, frame in chunk])
    shards.append({"file": name, "num_frames": len(chunk),
                   "bytes": os.path.getsize(os.path.join(out_dir, name))})
  manifest_path = os.path.join(out_dir, records.MANIFEST)
  h, w = frames[0][1]["amplitude"].shape
  manifest = (records.load_manifest(out_dir) if os.path.exists(manifest_path) else
              {"format": records.FORMAT, "generator_version": "coco-import", "height": h,
               "width": w, "with_phase_frames": False, "splits": {}})
  if (manifest["height"], manifest["width"]) != (h, w):
    raise CocoError(f"{json_path}: images are {w}x{h} but {out_dir} holds "
                    f"{manifest['width']}x{manifest['height']} frames")
  manifest["splits"][split] = {
      "num_frames": len(frames), "source": os.path.abspath(json_path),
      "users": sorted({int(f["user_id"]) for _, f in frames}), "shards": shards}
  atomic.write_bytes(manifest_path, json.dumps(manifest, indent=2).encode())
  return manifest


def write_coco(frames: list[dict], out_dir: str, json_name: str = "annotations.json") -> str:
  """Writes frames (render_frame or records.decode dicts) as COCO JSON + PNGs.

  Returns:
    The path of the JSON file.
  """
  images, annotations = [], []
  for i, frame in enumerate(frames):
    names = {"file_name": f"amplitude/{i:06d}.png", "depth_file": f"depth/{i:06d}.png",
             "mask_file": f"mask/{i:06d}.png"}
    _write_png(os.path.join(out_dir, names["file_name"]), np.asarray(frame["amplitude"], np.uint16))
    depth_mm = np.clip(np.round(np.asarray(frame["depth"]) * 1000.0), 0, 65535).astype(np.uint16)
    _write_png(os.path.join(out_dir, names["depth_file"]), depth_mm)
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
      annotations.append({
          "id": len(annotations), "image_id": i, "side": spec.SIDES[side],
          "keypoints": kp.ravel().tolist(), "pose": spec.POSE_CLASSES[int(frame["pose"][side])],
          "roll_deg": float(frame["roll_deg"][side]),
          "keypoints_depth": np.asarray(frame["keypoints_depth"][side], np.float64).tolist()})
  coco = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "hand", "keypoints": list(spec.KEYPOINT_NAMES),
                          "skeleton": [[i, p] for i, p in enumerate(spec.KEYPOINT_PARENTS)
                                       if p >= 0]}]}
  path = os.path.join(out_dir, json_name)
  atomic.write_bytes(path, json.dumps(coco).encode())
  return path
