"""The tf.data input pipeline: decode, resize, augment, and targets for every head.

make_dataset yields batched (features, targets) dicts; the contract (names,
shapes, dtypes, units) is documented in docs/data_format.md. Randomness is
stateless and keyed by (seed, position in the stream), so a pipeline with
the same seed yields the same batches.
"""

import dataclasses
import math

import numpy as np

from hand25d import sensor
from hand25d import spec
from hand25d.data import composite
from hand25d.data import integrity
from hand25d.data import records

import tensorflow as tf

# Input normalisation constants: hand25d/sensor.py.
AMPLITUDE_FULL_SCALE = sensor.AMPLITUDE_FULL_SCALE
DEPTH_FULL_SCALE_M = sensor.DEPTH_FULL_SCALE_M
_S, _K = spec.NUM_SIDES, spec.NUM_KEYPOINTS
# Segmentation class after a horizontal flip (left hand <-> right hand).
_FLIP_SEGMENTATION = np.array(spec.SEGMENTATION_FLIP_PERMUTATION, np.int32)


def normalize_input(image, mode: str):
  """The network input from a raw image; numpy in -> numpy out, tensor in -> tensor out.

  `sensor.normalize_input` (which the runtime uses) for numpy arrays, the same
  arithmetic in TensorFlow for tensors; arguments and result as there.
  """
  if isinstance(image, (np.ndarray, np.generic)):
    return sensor.normalize_input(image, mode)
  sensor.check_input_mode(mode)
  x = tf.cast(image, tf.float32)
  if mode == "amplitude":
    return tf.sqrt(tf.clip_by_value(x / AMPLITUDE_FULL_SCALE, 0.0, 1.0))
  return tf.clip_by_value(x / DEPTH_FULL_SCALE_M, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """On-the-fly augmentation (training only)."""
  scale_range: tuple[float, float] = (0.8, 1.25)
  max_rotation_deg: float = 25.0
  max_translation: float = 0.1  # Fraction of the image size.
  flip_prob: float = 0.5
  gain_range: tuple[float, float] = (0.8, 1.25)  # Amplitude gain.
  noise_std: float = 0.01  # Gaussian noise on the normalised image.
  composite_prob: float = 0.3  # Chance to paste in a hand from the batch neighbour.


NO_AUGMENT = AugmentConfig(scale_range=(1.0, 1.0), max_rotation_deg=0.0, max_translation=0.0,
                           flip_prob=0.0, gain_range=(1.0, 1.0), noise_std=0.0,
                           composite_prob=0.0)

_IMAGES = {"amplitude": tf.uint16, "depth": tf.uint16, "segmentation": tf.uint8}
_LABELS = {name: (tf.float32 if kind == "float" else tf.int64, shape)
           for name, (kind, shape) in records.LABEL_FEATURES.items()}


def parse(path: tf.Tensor, index: tf.Tensor, serialized: tf.Tensor) -> dict:
  """Decodes one record (graph mode); errors name the shard path and record index."""
  spec_ = {"height": tf.io.VarLenFeature(tf.int64), "width": tf.io.VarLenFeature(tf.int64)}
  spec_.update({k: tf.io.VarLenFeature(tf.string) for k in _IMAGES})
  spec_.update({k: tf.io.VarLenFeature(d) for k, (d, _) in _LABELS.items()})
  spec_.update({k: tf.io.VarLenFeature(tf.int64) for k in records.KNOWN_FEATURES})
  f = {k: tf.sparse.to_dense(v) for k, v in tf.io.parse_single_example(serialized, spec_).items()}
  where = ["shard", path, "record", index]

  def checked(name, values, expected):
    ok = tf.equal(tf.size(values, out_type=tf.int64), tf.cast(expected, tf.int64))
    assert_op = tf.debugging.Assert(
        ok, where + [f"feature {name} missing or of wrong size: got", tf.size(values),
                     "values, expected", expected], summarize=8)
    with tf.control_dependencies([assert_op]):
      return tf.identity(values)

  h = checked("height", f["height"], 1)[0]
  w = checked("width", f["width"], 1)[0]
  out = {}
  for name, dtype in _IMAGES.items():
    raw = tf.io.decode_compressed(checked(name, f[name], 1)[0], "ZLIB")
    values = tf.io.decode_raw(raw, dtype, little_endian=True)
    out[name] = tf.reshape(checked(name, values, h * w), tf.stack([h, w]))
  out["amplitude"] = tf.cast(out["amplitude"], tf.float32)
  out["depth"] = tf.cast(out["depth"], tf.float32) / 1000.0
  out["segmentation"] = tf.cast(out["segmentation"], tf.int32)
  for name, (dtype, shape) in _LABELS.items():
    values = checked(name, f[name], int(np.prod(shape)))
    out[name] = tf.reshape(tf.cast(values, tf.float32 if dtype == tf.float32 else tf.int32), shape)
  for name, shape in records.KNOWN_FEATURES.items():  # Absent: all known.
    n = int(np.prod(shape))
    given = f[name]
    values = tf.cond(tf.equal(tf.size(given), 0), lambda: tf.ones([n], tf.int64),
                     lambda: given)
    out[name] = tf.reshape(tf.cast(checked(name, values, n), tf.int32), shape)
  # Class labels outside their spec range would fail much later, in a gather
  # or a loss, naming no record.
  ranges = dict(records.LABEL_CLASSES, segmentation=spec.NUM_SEGMENTATION_CLASSES)
  checks = [tf.debugging.Assert(
      tf.reduce_all((out[name] >= 0) & (out[name] < count)),
      where + [f"{name} outside the spec range [0, {count}): min", tf.reduce_min(out[name]),
               "max", tf.reduce_max(out[name])]) for name, count in ranges.items()]
  with tf.control_dependencies(checks):
    return {k: tf.identity(v) for k, v in out.items()}


def resize(frame: dict, height: int, width: int) -> dict:
  """Resizes a frame's images to height x width and maps its keypoints to match.

  Amplitude is resampled by area averaging (a 2x2 box for the default 2x
  reduction); depth and segmentation by nearest neighbour (no mixing across
  edges or with invalid pixels).
  Keypoints keep pixel-centre alignment: x' = (x + 0.5) * sx - 0.5.
  """
  h = tf.cast(tf.shape(frame["amplitude"])[0], tf.float32)
  w = tf.cast(tf.shape(frame["amplitude"])[1], tf.float32)
  out = dict(frame)
  out["amplitude"] = tf.image.resize(frame["amplitude"][..., None], [height, width],
                                     "area")[..., 0]
  for key in ("depth", "segmentation"):
    out[key] = tf.image.resize(frame[key][..., None], [height, width], "nearest")[..., 0]
  scale = tf.stack([width / w, height / h])
  out["keypoints_xy"] = (frame["keypoints_xy"] + 0.5) * scale - 0.5
  return out


def _at_size(frame: dict, height: int, width: int, where: list) -> dict:
  """The frame with static image shapes [height, width], asserted per record."""
  shape = tf.shape(frame["amplitude"])
  ok = tf.reduce_all(tf.equal(shape, [height, width]))
  check = tf.debugging.Assert(ok, where + ["is", shape, f"pixels, the manifest says "
                                           f"{height}x{width}"])
  out = dict(frame)
  with tf.control_dependencies([check]):
    for key in ("amplitude", "depth", "segmentation"):
      out[key] = tf.ensure_shape(tf.identity(frame[key]), [height, width])
  return out


def _composite_neighbours(batch: dict, prob: float, seed: tf.Tensor) -> dict:
  """With probability `prob` per example, pastes in a hand of its batch neighbour.

  Example i is paired with example i - 1 (cyclically); of the sides the
  neighbour has and example i lacks, one is chosen at random.
  """
  partner = {k: tf.roll(v, 1, axis=0) for k, v in batch.items()}
  n = tf.shape(batch["hand_present"])[0]
  u = tf.random.stateless_uniform([n, 2], seed)
  can = tf.stack([composite.can_composite(batch, partner, s) for s in range(_S)], axis=1)
  first = tf.cast(u[:, 1] < 0.5, tf.int32)  # Which side to try first.
  side = tf.where(tf.gather(can, first, axis=1, batch_dims=1), first, 1 - first)
  apply = (u[:, 0] < prob) & tf.reduce_any(can, axis=1)
  return composite.composite_batch(batch, partner, side, apply)


def _affine(batch: int, height: int, width: int, cfg: AugmentConfig, seed: tf.Tensor):
  """Per-example forward affine maps [B, 3, 3] (input pixel -> output pixel) and flip flags."""
  u = tf.random.stateless_uniform([batch, 5], seed)
  flip = u[:, 0] < cfg.flip_prob
  lo, hi = cfg.scale_range
  scale = lo * tf.exp(u[:, 1] * math.log(hi / lo)) if hi > lo else tf.fill([batch], lo)
  angle = (2 * u[:, 2] - 1) * math.radians(cfg.max_rotation_deg)
  tx = (2 * u[:, 3] - 1) * cfg.max_translation * width
  ty = (2 * u[:, 4] - 1) * cfg.max_translation * height
  cx, cy = (width - 1) / 2, (height - 1) / 2
  c, s = tf.cos(angle) * scale, tf.sin(angle) * scale
  fx = tf.where(flip, -1.0, 1.0)
  # x' = R S F (x - c) + c + t, where F mirrors x about the centre.
  zero, one = tf.zeros_like(c), tf.ones_like(c)
  m = tf.stack([
      tf.stack([c * fx, -s, cx + tx - (c * fx * cx - s * cy)], -1),
      tf.stack([s * fx, c, cy + ty - (s * fx * cx + c * cy)], -1),
      tf.stack([zero, zero, one], -1)], 1)
  return m, flip


def _warp(images: tf.Tensor, inverse: tf.Tensor, interpolation: str) -> tf.Tensor:
  """Applies per-example output->input maps to [B, H, W, C] images; outside = 0."""
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=tf.reshape(inverse, [-1, 9])[:, :8],
      output_shape=tf.shape(images)[1:3], interpolation=interpolation, fill_mode="CONSTANT",
      fill_value=0.0)


def augment(batch: dict, cfg: AugmentConfig, seed: tf.Tensor) -> dict:
  """Scale, rotation, translation and horizontal flip of a batch (images + labels).

  A flip mirrors the image, swaps the two sides of every per-side label (the
  keypoint block via spec.AUX_FLIP_PERMUTATION) and the left/right
  segmentation classes; the roll and orientation bin are mirror symmetric by
  construction (see poses.hand_frame) and stay as they are.
  """
  b = tf.shape(batch["amplitude"])[0]
  height, width = batch["amplitude"].shape[1], batch["amplitude"].shape[2]
  m, flip = _affine(b, height, width, cfg, seed)
  inv = tf.linalg.inv(m)
  out = dict(batch)
  out["amplitude"] = _warp(batch["amplitude"][..., None], inv, "BILINEAR")[..., 0]
  # Depth and segmentation in one nearest-neighbour warp (class ids are exact in float).
  near = _warp(tf.stack([batch["depth"], tf.cast(batch["segmentation"], tf.float32)], -1), inv,
               "NEAREST")
  out["depth"] = near[..., 0]
  seg = tf.cast(near[..., 1], tf.int32)
  out["segmentation"] = tf.where(flip[:, None, None], tf.gather(_FLIP_SEGMENTATION, seg), seg)
  xy = batch["keypoints_xy"]
  xy = tf.einsum("bij,bskj->bski", m[:, :2, :2], xy) + m[:, None, None, :2, 2]
  flat = tf.reshape(xy, [-1, _S * _K, 2])
  swapped = tf.reshape(tf.gather(flat, spec.AUX_FLIP_PERMUTATION, axis=1), [-1, _S, _K, 2])
  out["keypoints_xy"] = tf.where(flip[:, None, None, None], swapped, xy)
  for key in composite.PER_SIDE_KEYS + composite.PER_SIDE_FLAGS:
    if key == "keypoints_xy" or key not in batch:
      continue
    v = batch[key]
    f = tf.reshape(flip, [-1] + [1] * (v.shape.rank - 1))
    out[key] = tf.where(f, tf.reverse(v, axis=[1]), v)
  return out


def targets(batch: dict, input_mode: str, with_extras: bool = False) -> tuple[dict, dict]:
  """(features, targets) of a batch at network-input resolution (see docs/data_format.md)."""
  height, width = batch["amplitude"].shape[1], batch["amplitude"].shape[2]
  raw = batch["amplitude"] if input_mode == "amplitude" else batch["depth"]
  features = {"image": normalize_input(raw, input_mode)[..., None]}
  xy = batch["keypoints_xy"]
  inside = ((xy[..., 0] > -0.5) & (xy[..., 0] < width - 0.5) &
            (xy[..., 1] > -0.5) & (xy[..., 1] < height - 0.5))
  present = tf.cast(batch["hand_present"], tf.float32)
  visible = tf.cast(batch["keypoint_visible"] > 0, tf.float32) * tf.cast(inside, tf.float32)
  t = {
      "keypoints_xy": xy,
      "keypoint_visible": visible * present[..., None],
      "hand_present": present,
      "orientation": tf.gather(spec.ORIENTATION_SOFT_LABELS, batch["orientation_bin"]),
      "pose": tf.cast(batch["pose"], tf.int32),
      "segmentation_known": tf.cast(batch["segmentation_known"], tf.float32),
      "pose_known": tf.cast(batch["pose_known"], tf.float32),
      "orientation_known": tf.cast(batch["orientation_known"], tf.float32),
      "segmentation": tf.image.resize(
          batch["segmentation"][..., None],
          [height // spec.SEGMENTATION_STRIDE, width // spec.SEGMENTATION_STRIDE],
          "nearest")[..., 0],
      # The share of each class in each block of the hand mask's cells.
      "hand_mask": tf.nn.avg_pool2d(
          tf.one_hot(tf.cast(batch["segmentation"], tf.int32), spec.NUM_SEGMENTATION_CLASSES),
          spec.HAND_MASK_STRIDE, spec.HAND_MASK_STRIDE, "VALID"),
  }
  for s in spec.DEEP_SUPERVISION_STRIDES:
    hs, ws = height // s, width // s
    col = tf.clip_by_value(tf.cast(tf.floor((xy[..., 0] + 0.5) / s), tf.int32), 0, ws - 1)
    row = tf.clip_by_value(tf.cast(tf.floor((xy[..., 1] + 0.5) / s), tf.int32), 0, hs - 1)
    t[f"keypoint_index_s{s}"] = row * ws + col
  if with_extras:
    t["keypoints_depth"] = batch["keypoints_depth"]
    t["roll_deg"] = batch["roll_deg"]
    t["depth_m"] = batch["depth"]
    t["user_id"] = batch["user_id"]
    t["frame_id"] = batch["frame_id"]
  return features, t


def _noise(features: dict, input_mode: str, cfg: AugmentConfig, seed: tf.Tensor) -> dict:
  x = features["image"]
  b = tf.shape(x)[0]
  if input_mode == "amplitude":
    lo, hi = cfg.gain_range
    gain = lo + (hi - lo) * tf.random.stateless_uniform([b, 1, 1, 1], seed)
    x = x * tf.sqrt(gain)  # The input is sqrt(amplitude): a gain g scales it by sqrt(g).
  noise = cfg.noise_std * tf.random.stateless_normal(
      tf.shape(x), tf.random.experimental.stateless_fold_in(seed, 1))
  x = tf.where(x > 0, tf.clip_by_value(x + noise, 0.0, 1.0), x)
  return {"image": x}


# Independent random streams of the pipeline.
_COMPOSITE, _AUGMENT, _NOISE = 1, 2, 3


def _stream_seed(seed: int, stream: int, k: tf.Tensor) -> tf.Tensor:
  """The stateless seed of element k of one random stream."""
  return tf.random.experimental.stateless_fold_in(
      tf.constant([seed, stream], tf.int64), k)


def make_dataset(data_dir: str, split: str, batch_size: int, input_mode: str = "amplitude",
                 training: bool = False, seed: int = 0, augment_config: AugmentConfig | None = None,
                 shard_index: int = 0, num_shards: int = 1, num_epochs: int | None = 1,
                 input_height: int = spec.INPUT_HEIGHT, input_width: int = spec.INPUT_WIDTH,
                 shuffle_buffer: int = 1024, cache: bool = False,
                 with_extras: bool = False, skip_corrupt: bool = False) -> tf.data.Dataset:
  """Batched (features, targets) of one split of a data set written by generate or import.

  Args:
    data_dir: directory with manifest.json and the shards.
    split: 'train', 'val' or 'test'.
    batch_size: examples per batch (the last partial batch is dropped when training).
    input_mode: 'amplitude' or 'depth' (spec.INPUT_MODES).
    training: shuffle, augment (AugmentConfig) and composite two-hand frames.
    seed: seeds shuffling and augmentation; same seed, same batches.
    augment_config: augmentation when training (default AugmentConfig()).
    shard_index, num_shards: keep every num_shards-th record starting at
      shard_index (one part per worker).
    num_epochs: passes over the data; None repeats forever.
    input_height, input_width: network input size.
    shuffle_buffer: records in the shuffle buffer when training.
    cache: keep the serialised records in memory after the first pass.
    with_extras: add evaluation-only targets (keypoints_depth, roll_deg,
      depth_m, user_id, frame_id).
    skip_corrupt: drop records that fail to read or decode (tf.data's
      ignore_errors) instead of failing; a corrupt TFRecord frame ends its
      file. integrity.bad_records counts what is dropped.

  Raises:
    records.RecordError: a missing or wrongly sized shard or manifest; a bad
      record fails at iteration with an InvalidArgumentError naming the shard
      path and record index (a label out of range, a wrong size), or a
      DataLossError or unparsable Example that `name_data_error` locates.
  """
  if input_mode not in spec.INPUT_MODES:
    raise ValueError(f"input mode {input_mode!r} is not one of {spec.INPUT_MODES}")
  max_stride = max(spec.DEEP_SUPERVISION_STRIDES + (spec.SEGMENTATION_STRIDE,))
  if input_height % max_stride or input_width % max_stride:
    raise ValueError(f"input {input_height}x{input_width} must be divisible by {max_stride}")
  manifest = records.load_manifest(data_dir)
  paths = records.shard_paths(data_dir, manifest, split, check_size=not skip_corrupt)
  cfg = (augment_config or AugmentConfig()) if training else NO_AUGMENT

  files = tf.data.Dataset.from_tensor_slices(paths)

  def read(p):
    ds = tf.data.TFRecordDataset(p)
    # ignore_errors inside the interleave: a corrupt file ends, the others go on.
    return (ds.ignore_errors() if skip_corrupt else ds).enumerate().map(lambda i, r: (p, i, r))

  ds = files.interleave(
      read,
      cycle_length=max(1, min(4, len(paths))), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True)
  if num_shards > 1:
    ds = ds.shard(num_shards, shard_index)
  if cache:
    ds = ds.cache()
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat(num_epochs)
  # A data set stored at network resolution (hand25d.data.resize) needs no resize.
  stored_at_input = (manifest.get("height"), manifest.get("width")) == (input_height,
                                                                        input_width)

  def load(p, i, r):
    frame = parse(p, i, r)
    if stored_at_input:
      return _at_size(frame, input_height, input_width, ["shard", p, "record", i])
    return resize(frame, input_height, input_width)

  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if skip_corrupt:
    ds = ds.ignore_errors()
  ds = ds.batch(batch_size, drop_remainder=training)

  def finish(k, batch):
    if training:
      if cfg.composite_prob > 0:
        batch = _composite_neighbours(batch, cfg.composite_prob,
                                      _stream_seed(seed, _COMPOSITE, k))
      batch = augment(batch, cfg, _stream_seed(seed, _AUGMENT, k))
    features, t = targets(batch, input_mode, with_extras)
    if training:
      features = _noise(features, input_mode, cfg, _stream_seed(seed, _NOISE, k))
    return features, t

  ds = ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


# What iterating make_dataset raises for bad data. A record that is not an
# Example can surface as a UnicodeDecodeError: TensorFlow quotes its raw bytes
# in the error message and fails to decode them.
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.InvalidArgumentError, UnicodeDecodeError)


def name_data_error(data_dir: str, split: str, error: Exception) -> records.RecordError:
  """A RecordError naming the shards and records behind a tf.data read error.

  TFRecordDataset's DataLossError ("corrupted record at 122514") and a record
  that is not an Example name no file; this re-checks the split's shards
  (manifest size, sha256 and record count first, then every record of the
  shards that fail, or of all shards if none does) to find them, and says how
  to recover.
  """
  manifest = records.load_manifest(data_dir)
  shards = {records.resolve(data_dir, s["file"]): s["num_frames"]
            for s in manifest["splits"][split]["shards"]}
  failing = integrity.verify(data_dir, [split], manifest)
  found = []
  for path in (failing or shards):
    found += integrity.bad_records(path, shards[path])[0]
  found = found or list(failing.values())
  message = records.error_message(error) if isinstance(error, tf.errors.OpError) else str(error)
  where = ("\n  ".join(found) if found else
           f"no bad record found on a second read of split {split!r} of {data_dir}")
  return records.RecordError(f"reading split {split!r} of {data_dir} failed: "
                             f"{(message.strip().splitlines() or [''])[0][:300]}\n  {where}\n"
                             f"To recover: {records.RECOVERY}.")
