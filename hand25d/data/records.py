"""The frame record: tf.train.Example encoding, decoding and checked shard reading.

The feature spec is documented in docs/data_format.md. Images are stored as
zlib-compressed little-endian raw arrays with explicit height and width, so
TensorFlow decodes them with native ops (tf.io.decode_compressed +
tf.io.decode_raw) inside tf.data and numpy decodes them here. The zlib
streams are written by ISA-L (python-isal), about 4x faster than zlib's
fastest level at about the same size; any zlib inflater reads them.
"""

import hashlib
import json
import os
import re
import zlib

from isal import isal_zlib
import numpy as np

from hand25d import atomic
from hand25d import spec

import tensorflow as tf

FORMAT = "hand25d-tof-v1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
_S, _K = spec.NUM_SIDES, spec.NUM_KEYPOINTS

# Image features: name -> (numpy dtype, leading dims before [H, W], scale to the frame's units).
# depth and true_depth are stored in millimetres (0 = invalid / no surface).
IMAGE_FEATURES = {
    "amplitude": (np.uint16, (), 1.0),
    "depth": (np.uint16, (), 1000.0),
    "true_depth": (np.uint16, (), 1000.0),
    "segmentation": (np.uint8, (), 1.0),
    "phase_frames": (np.uint16, (spec.NUM_PHASE_FRAMES,), 1.0),
}
OPTIONAL_FEATURES = ("phase_frames",)
# ISA-L's level (0-3) for images: 2 is as fast as 1 and within 2% of the size
# zlib's level 1 gave (generator version 1); 0 is 20% larger.
_ISAL_LEVEL = isal_zlib.ISAL_DEFAULT_COMPRESSION
# Label features: name -> (kind, shape).
LABEL_FEATURES = {
    "keypoints_xy": ("float", (_S, _K, 2)),
    "keypoints_depth": ("float", (_S, _K)),
    "keypoint_visible": ("int", (_S, _K)),
    "hand_present": ("int", (_S,)),
    "pose": ("int", (_S,)),
    "orientation_bin": ("int", (_S,)),
    "roll_deg": ("float", (_S,)),
    "user_id": ("int", ()),
    "frame_id": ("int", ()),
}
# Label-known flags: name -> shape; 1 = labelled, 0 = unknown (e.g. a COCO file
# without mask_file, pose or roll_deg). A missing label is not a negative one:
# the loss and the metrics skip unknown labels. A record without a flag reads
# as all known, and encode writes a flag only when it holds an unknown, so
# fully labelled data (every generated data set) keeps its bytes.
KNOWN_FEATURES = {
    "segmentation_known": (),
    "pose_known": (_S,),
    "orientation_known": (_S,),
}


# Label features with a class range: name -> number of classes (values in [0, n)).
LABEL_CLASSES = {
    "keypoint_visible": 2,
    "hand_present": 2,
    "pose": spec.NUM_POSE_CLASSES,
    "orientation_bin": spec.NUM_ORIENTATION_BINS,
    **{name: 2 for name in KNOWN_FEATURES},
}
# How to recover from a bad shard (docs/data_format.md, "What is refused, and why").
RECOVERY = ("regenerate that shard (rerun the command that wrote the data set: the generator "
            "re-renders shards that fail verification), or train with --skip_corrupt_records "
            "to skip and count the bad records")


class RecordError(ValueError):
  """A record or shard is corrupt or does not match the documented format."""


def known_flags(frame: dict) -> dict[str, np.ndarray]:
  """The frame's label-known flags (int64), 1 (known) for any it does not hold."""
  return {name: np.asarray(frame.get(name, np.ones(shape)), np.int64).reshape(shape)
          for name, shape in KNOWN_FEATURES.items()}


def check_labels(frame: dict, where: str) -> None:
  """Raises RecordError if a class label or segmentation class is outside its spec range."""
  ranges = dict(LABEL_CLASSES, segmentation=spec.NUM_SEGMENTATION_CLASSES)
  for name, count in ranges.items():
    if name not in frame and name in KNOWN_FEATURES:
      continue
    value = np.asarray(frame[name])
    if value.size and (value.min() < 0 or value.max() >= count):
      raise RecordError(f"{where}: {name} holds {value.min()}..{value.max()}, outside the "
                        f"spec range [0, {count})")


def _bytes(v: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def encode(frame: dict[str, np.ndarray], frame_id: int) -> bytes:
  """Serialises a frame (scene.render_scene's dict) into a tf.train.Example.

  Raises:
    RecordError: if an array has the wrong shape or a keypoint label is not finite.
  """
  height, width = frame["amplitude"].shape
  feats = {"height": tf.train.Feature(int64_list=tf.train.Int64List(value=[height])),
           "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[width]))}
  for name, (dtype, lead, scale) in IMAGE_FEATURES.items():
    if name not in frame:
      if name in OPTIONAL_FEATURES:
        continue
      raise RecordError(f"frame {frame_id}: missing image {name!r}")
    img = np.asarray(frame[name])
    if img.shape != lead + (height, width):
      raise RecordError(f"frame {frame_id}: {name} has shape {img.shape}, expected "
                        f"{lead + (height, width)}")
    if scale != 1.0:
      img = np.clip(np.round(img * scale), 0, np.iinfo(dtype).max)
    feats[name] = _bytes(isal_zlib.compress(
        np.ascontiguousarray(img, np.dtype(dtype).newbyteorder("<")), _ISAL_LEVEL))
  check_labels(frame, f"frame {frame_id}")
  labels = dict(frame, frame_id=frame_id)
  for name, (kind, shape) in LABEL_FEATURES.items():
    value = np.asarray(labels[name])
    if value.shape != shape:
      raise RecordError(f"frame {frame_id}: {name} has shape {value.shape}, expected {shape}")
    if kind == "float":
      if not np.all(np.isfinite(value)):
        raise RecordError(f"frame {frame_id}: {name} has non-finite values")
      feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value.ravel()))
    else:
      feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value.ravel()))
  for name, value in known_flags(frame).items():
    if not np.all(value):  # Absent means known.
      feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value.ravel()))
  # deterministic=True sorts the feature map: same frame, same bytes in any process.
  return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString(
      deterministic=True)


def decode(serialized: bytes, where: str = "record") -> dict[str, np.ndarray]:
  """Parses a serialised record back into a frame dict (numpy; depths in metres).

  Args:
    serialized: a tf.train.Example.
    where: names the record in errors, e.g. 'train-00000-of-00004.tfrecord record 17'.

  Raises:
    RecordError: naming `where` and what is wrong (not an Example, a missing
      feature, a wrong size, a label outside its spec range).
  """
  try:
    ex = tf.train.Example.FromString(serialized)
  except Exception as e:  # The protobuf library raises its own DecodeError.
    raise RecordError(f"{where}: not a tf.train.Example ({e})") from e
  f = ex.features.feature

  def need(name):
    if name not in f:
      raise RecordError(f"{where}: missing feature {name!r}")
    return f[name]

  size = [need(n).int64_list.value for n in ("height", "width")]
  if [len(v) for v in size] != [1, 1] or min(size[0][0], size[1][0]) < 1:
    raise RecordError(f"{where}: height and width must be one positive integer each, got "
                      f"{[list(v) for v in size]}")
  height, width = size[0][0], size[1][0]
  frame = {}
  for name, (dtype, lead, scale) in IMAGE_FEATURES.items():
    if name not in f and name in OPTIONAL_FEATURES:
      continue
    try:
      raw = zlib.decompress(need(name).bytes_list.value[0])
    except zlib.error as e:
      raise RecordError(f"{where}: feature {name!r} is not zlib data ({e})") from e
    expected = int(np.prod(lead + (height, width))) * np.dtype(dtype).itemsize
    if len(raw) != expected:
      raise RecordError(f"{where}: feature {name!r} has {len(raw)} bytes, expected {expected} "
                        f"for shape {lead + (height, width)} {np.dtype(dtype).name}")
    img = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).reshape(lead + (height, width))
    frame[name] = (img / scale).astype(np.float32) if scale != 1.0 else img.astype(dtype)
  for name, (kind, shape) in LABEL_FEATURES.items():
    feat = need(name)
    values = feat.float_list.value if kind == "float" else feat.int64_list.value
    if len(values) != int(np.prod(shape)):
      raise RecordError(f"{where}: feature {name!r} has {len(values)} values, expected "
                        f"{int(np.prod(shape))} for shape {shape}")
    frame[name] = np.array(values, np.float32 if kind == "float" else np.int64).reshape(shape)
  for name, shape in KNOWN_FEATURES.items():
    values = f[name].int64_list.value if name in f else [1] * int(np.prod(shape))
    if len(values) != int(np.prod(shape)):
      raise RecordError(f"{where}: feature {name!r} has {len(values)} values, expected "
                        f"{int(np.prod(shape))} for shape {shape}")
    frame[name] = np.array(values, np.int64).reshape(shape)
  check_labels(frame, where)
  return frame


def error_message(e: tf.errors.OpError) -> str:
  """A TensorFlow error's message without the op and function names around it."""
  return re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", "", e.message).strip()


def read_shard(path: str):
  """Yields the decoded frames of one shard, checking every record.

  Raises:
    RecordError: naming the shard file and record index, for a truncated or
      corrupt file (bad length or CRC) or a record that does not decode.
  """
  if not os.path.exists(path):
    raise RecordError(f"shard {path} does not exist")
  index = 0
  try:
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
      yield decode(serialized, f"shard {path} record {index}")
      index += 1
  except tf.errors.DataLossError as e:
    raise RecordError(f"shard {path} record {index}: corrupt or truncated TFRecord data "
                      f"({error_message(e)})") from e


def load_manifest(data_dir: str) -> dict:
  """The data set's manifest, checked for consistency.

  Raises:
    RecordError: naming the file, if it is absent, unreadable, of another
      format, or its frame counts disagree with its shards.
  """
  path = os.path.join(data_dir, MANIFEST)
  try:
    with open(path) as fp:
      manifest = json.load(fp)
  except (OSError, json.JSONDecodeError) as e:
    raise RecordError(f"cannot read manifest {path}: {e}") from e
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
    raise RecordError(f"{path}: format {found!r}, expected {FORMAT!r}")
  if not isinstance(manifest.get("splits"), dict):
    raise RecordError(f"{path}: no 'splits' mapping")
  for split, info in manifest["splits"].items():
    try:
      total = int(info["num_frames"])
      counts = [int(shard["num_frames"]) for shard in info["shards"]]
    except (KeyError, TypeError, ValueError) as e:
      raise RecordError(f"{path}: split {split!r} lacks num_frames or shards, or a shard "
                        f"its num_frames ({e!r})") from e
    if not all(isinstance(shard.get("file"), str) for shard in info["shards"]):
      raise RecordError(f"{path}: split {split!r} has a shard without a file name")
    if min(counts, default=1) < 1 or sum(counts) != total:
      raise RecordError(f"{path}: split {split!r} says {total} frames, its shards hold "
                        f"{counts}; the manifest does not match its shards")
  return manifest


def resolve(data_dir: str, name: str) -> str:
  """The path of a shard named in the manifest, which must lie inside data_dir.

  The name is checked as written (a shard may be a symlink to another disk).

  Raises:
    RecordError: for an absolute name or one that leaves the data directory
      (e.g. '../x.tfrecord' or '/etc/hostname').
  """
  norm = os.path.normpath(str(name))
  if os.path.isabs(norm) or norm in (".", "") or norm.split(os.sep)[0] == "..":
    raise RecordError(f"{os.path.join(data_dir, MANIFEST)}: shard {name!r} is not a file "
                      f"inside the data directory {data_dir}; refused")
  return os.path.join(data_dir, norm)


def split_info(data_dir: str, manifest: dict, split: str) -> dict:
  """The manifest entry of a split; raises RecordError naming the splits there are."""
  if split not in manifest["splits"]:
    raise RecordError(f"{data_dir}: no split {split!r}; the manifest has "
                      f"{sorted(manifest['splits'])}")
  return manifest["splits"][split]


def shard_paths(data_dir: str, manifest: dict, split: str, check_size: bool = True) -> list[str]:
  """Paths of a split's shards, checked to exist with the size the manifest records.

  check_size=False lets a truncated shard through (to be read up to its cut).

  Raises:
    RecordError: for an unknown or empty split, a shard outside data_dir, or a
      missing or wrongly sized shard (e.g. truncated after the manifest was
      written).
  """
  paths = []
  for shard in split_info(data_dir, manifest, split)["shards"]:
    path = resolve(data_dir, shard["file"])
    if not os.path.isfile(path):
      raise RecordError(f"shard {path} listed in the manifest does not exist; {RECOVERY}")
    size = os.path.getsize(path)
    if check_size and "bytes" in shard and size != shard["bytes"]:
      raise RecordError(f"shard {path} has {size} bytes, the manifest says {shard['bytes']}: "
                        f"it is truncated or was changed; {RECOVERY}")
    paths.append(path)
  if not paths:
    raise RecordError(f"{data_dir}: split {split!r} has no frames")
  return paths


def file_digest(path: str) -> dict:
  """{"bytes": size, "sha256": hex digest} of a file, as the manifest records a shard."""
  digest = hashlib.sha256()
  with open(path, "rb") as fp:
    for block in iter(lambda: fp.read(1 << 20), b""):
      digest.update(block)
  return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def write_shard(path: str, records: list[bytes]) -> None:
  """Writes serialised records as one TFRecord file, atomically (temp + rename)."""
  with atomic.replacing(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
    for r in records:
      writer.write(r)
