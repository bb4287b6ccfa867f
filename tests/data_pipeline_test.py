"""The tf.data pipeline: the documented targets for every head, flip, determinism."""

import os

import numpy as np
import pytest

from hand25d import atomic
from hand25d import mirror
from hand25d import spec
from hand25d.data import pipeline
from hand25d.data import records

import tensorflow as tf

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
_H, _W = spec.INPUT_HEIGHT, spec.INPUT_WIDTH


def _decoded_batch(n=4):
  """n fixture frames, decoded and resized to the input, as one batch dict."""
  paths = records.shard_paths(FIXTURE, records.load_manifest(FIXTURE), "train")
  ds = tf.data.TFRecordDataset(paths[0]).enumerate().map(
      lambda i, r: pipeline.resize(pipeline.parse(paths[0], i, r), _H, _W))
  return next(iter(ds.batch(n)))


def _expected_shapes(b):
  shapes = {
      "keypoints_xy": ([b, spec.NUM_SIDES, spec.NUM_KEYPOINTS, 2], tf.float32),
      "keypoint_visible": ([b, spec.NUM_SIDES, spec.NUM_KEYPOINTS], tf.float32),
      "hand_present": ([b, spec.NUM_SIDES], tf.float32),
      "orientation": ([b, spec.NUM_SIDES, spec.NUM_ORIENTATION_BINS], tf.float32),
      "pose": ([b, spec.NUM_SIDES], tf.int32),
      "segmentation": ([b, _H // spec.SEGMENTATION_STRIDE, _W // spec.SEGMENTATION_STRIDE],
                       tf.int32),
      "segmentation_known": ([b], tf.float32),
      "hand_mask": ([b, _H // spec.HAND_MASK_STRIDE, _W // spec.HAND_MASK_STRIDE,
                     spec.NUM_SEGMENTATION_CLASSES], tf.float32),
      "pose_known": ([b, spec.NUM_SIDES], tf.float32),
      "orientation_known": ([b, spec.NUM_SIDES], tf.float32),
  }
  for s in spec.DEEP_SUPERVISION_STRIDES:
    shapes[f"keypoint_index_s{s}"] = ([b, spec.NUM_SIDES, spec.NUM_KEYPOINTS], tf.int32)
  return shapes


@pytest.mark.parametrize("training,mode", [(False, "amplitude"), (True, "amplitude"),
                                           (True, "depth")])
def test_pipeline_yields_documented_shapes_for_every_head(training, mode):
  ds = pipeline.make_dataset(FIXTURE, "train", 4, input_mode=mode, training=training, seed=1)
  features, targets = next(iter(ds))
  assert features["image"].shape == (4, _H, _W, 1) and features["image"].dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(features["image"])) and float(tf.reduce_max(
      features["image"])) <= 1.0
  expected = _expected_shapes(4)
  assert set(targets) == set(expected)
  for name, (shape, dtype) in expected.items():
    assert targets[name].shape == shape and targets[name].dtype == dtype, name
  np.testing.assert_allclose(tf.reduce_sum(targets["orientation"], -1), 1.0, rtol=1e-6)
  assert set(np.unique(targets["segmentation"])) <= set(range(spec.NUM_SEGMENTATION_CLASSES))
  assert set(np.unique(targets["keypoint_visible"])) <= {0.0, 1.0}
  assert np.all(targets["keypoint_visible"] <= targets["hand_present"][..., None])
  for s in spec.DEEP_SUPERVISION_STRIDES:
    idx = targets[f"keypoint_index_s{s}"].numpy()
    assert idx.min() >= 0 and idx.max() < (_H // s) * (_W // s)


def test_keypoint_indices_match_keypoint_positions():
  _, t = next(iter(pipeline.make_dataset(FIXTURE, "train", 8)))
  xy, vis = t["keypoints_xy"].numpy(), t["keypoint_visible"].numpy() > 0
  assert vis.sum() > 20
  for s in spec.DEEP_SUPERVISION_STRIDES:
    ws = _W // s
    idx = t[f"keypoint_index_s{s}"].numpy()[vis]
    np.testing.assert_array_equal(idx % ws, np.floor((xy[vis][:, 0] + 0.5) / s))
    np.testing.assert_array_equal(idx // ws, np.floor((xy[vis][:, 1] + 0.5) / s))


def test_visible_keypoints_fall_on_their_sides_segmentation():
  _, t = next(iter(pipeline.make_dataset(FIXTURE, "train", 8)))
  seg, vis = t["segmentation"].numpy(), t["keypoint_visible"].numpy() > 0
  idx = t["keypoint_index_s2"].numpy()
  hits = total = 0
  for b, side, k in zip(*np.nonzero(vis)):
    row, col = divmod(idx[b, side, k], _W // 2)
    window = seg[b, max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
    hits += np.any(window == spec.SIDE_SEGMENTATION_CLASS[side])
    total += 1
  assert hits / total > 0.95


def test_same_seed_same_batches_and_different_seed_differs():
  def first(seed):
    f, t = next(iter(pipeline.make_dataset(FIXTURE, "train", 4, training=True, seed=seed)))
    return f["image"].numpy(), t["keypoints_xy"].numpy()
  a, b, c = first(3), first(3), first(4)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], c[0])


def test_flip_swaps_sides_labels_and_mirrors_the_image():
  batch = _decoded_batch()
  cfg = pipeline.AugmentConfig(scale_range=(1.0, 1.0), max_rotation_deg=0.0,
                               max_translation=0.0, flip_prob=1.0)
  out = pipeline.augment(batch, cfg, tf.constant([0, 0], tf.int64))
  np.testing.assert_allclose(out["amplitude"], batch["amplitude"].numpy()[:, :, ::-1], atol=1e-3)
  np.testing.assert_array_equal(out["depth"], batch["depth"].numpy()[:, :, ::-1])
  seg = batch["segmentation"].numpy()[:, :, ::-1]
  left, right = spec.SIDE_SEGMENTATION_CLASS
  swapped = np.where(seg == left, right, np.where(seg == right, left, seg))
  np.testing.assert_array_equal(out["segmentation"], swapped)
  xy = batch["keypoints_xy"].numpy()
  np.testing.assert_allclose(out["keypoints_xy"][:, spec.LEFT, :, 0],
                             _W - 1 - xy[:, spec.RIGHT, :, 0], atol=1e-3)
  np.testing.assert_allclose(out["keypoints_xy"][:, spec.RIGHT, :, 1], xy[:, spec.LEFT, :, 1],
                             atol=1e-3)
  for key in ("keypoint_visible", "hand_present", "pose", "orientation_bin"):
    np.testing.assert_array_equal(out[key], batch[key].numpy()[:, ::-1], err_msg=key)
  # Flat keypoint channels follow spec.AUX_FLIP_PERMUTATION.
  flat_in = batch["keypoint_visible"].numpy().reshape(-1, spec.NUM_AUX_CHANNELS)
  flat_out = out["keypoint_visible"].numpy().reshape(-1, spec.NUM_AUX_CHANNELS)
  np.testing.assert_array_equal(flat_out, flat_in[:, list(spec.AUX_FLIP_PERMUTATION)])


def test_flip_swaps_label_known_flags_with_the_hands():
  batch = _decoded_batch()
  np.testing.assert_array_equal(batch["segmentation_known"], 1)  # The fixture has no flags.
  batch = dict(batch, pose_known=tf.constant([[1, 0]] * 4), orientation_known=tf.constant(
      [[0, 1]] * 4), segmentation_known=tf.constant([0, 1, 0, 1]))
  cfg = pipeline.AugmentConfig(scale_range=(1.0, 1.0), max_rotation_deg=0.0,
                               max_translation=0.0, flip_prob=1.0)
  out = pipeline.augment(batch, cfg, tf.constant([0, 0], tf.int64))
  np.testing.assert_array_equal(out["pose_known"], [[0, 1]] * 4)
  np.testing.assert_array_equal(out["orientation_known"], [[1, 0]] * 4)
  np.testing.assert_array_equal(out["segmentation_known"], [0, 1, 0, 1])


def test_rotation_moves_keypoints_with_the_image():
  batch = _decoded_batch()
  cfg = pipeline.AugmentConfig(scale_range=(1.2, 1.2), max_rotation_deg=30.0,
                               max_translation=0.1, flip_prob=0.0)
  out = pipeline.augment(batch, cfg, tf.constant([0, 5], tf.int64))
  _, t = pipeline.targets(out, "amplitude")
  seg, vis = t["segmentation"].numpy(), t["keypoint_visible"].numpy() > 0
  idx = t["keypoint_index_s2"].numpy()
  on_hand = [np.any(seg[b, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] ==
                    spec.SIDE_SEGMENTATION_CLASS[s])
             for b, s, k in zip(*np.nonzero(vis)) for r, c in [divmod(idx[b, s, k], _W // 2)]]
  assert len(on_hand) > 10 and np.mean(on_hand) > 0.9


def test_normalize_input_agrees_on_numpy_and_tensors():
  amp = np.array([[0, 512, 2048, 9000]], np.uint16)
  np.testing.assert_allclose(pipeline.normalize_input(amp, "amplitude"), [[0, 0.5, 1, 1]])
  np.testing.assert_allclose(pipeline.normalize_input(tf.constant(amp), "amplitude"),
                             pipeline.normalize_input(amp, "amplitude"))
  depth = np.array([0.0, 0.5, 3.0], np.float32)
  np.testing.assert_allclose(pipeline.normalize_input(depth, "depth"), [0.0, 0.25, 1.0])
  with pytest.raises(ValueError, match="input mode"):
    pipeline.normalize_input(depth, "rgb")


def test_per_worker_shards_are_disjoint_and_cover_the_split():
  def ids(index, count):
    ds = pipeline.make_dataset(FIXTURE, "train", 1, shard_index=index, num_shards=count,
                               with_extras=True)
    return [int(t["frame_id"][0]) for _, t in ds]
  a, b = ids(0, 2), ids(1, 2)
  assert not set(a) & set(b)
  assert sorted(a + b) == sorted(ids(0, 1))


@pytest.mark.parametrize("feature, values", [("pose", None), ("pose_known", [1]),
                                             ("segmentation_known", [2])])
def test_bad_record_fails_naming_shard_and_record(tmp_path, feature, values):
  manifest = records.load_manifest(FIXTURE)
  src = records.shard_paths(FIXTURE, manifest, "val")[0]
  raw = list(tf.data.TFRecordDataset(src).as_numpy_iterator())
  ex = tf.train.Example.FromString(raw[0])
  if values is None:
    ex.features.feature[feature].int64_list.value.append(3)  # Wrong size.
  else:  # A flag of the wrong size (1 value, not 2) or out of range (2, not 0 or 1).
    ex.features.feature[feature].int64_list.value.extend(values)
  path = str(tmp_path / "val-00000-of-00001.tfrecord")
  records.write_shard(path, [ex.SerializeToString()])
  manifest["splits"]["val"]["shards"] = [{"file": os.path.basename(path), "num_frames": 1,
                                          "bytes": os.path.getsize(path)}]
  atomic.write_bytes(str(tmp_path / records.MANIFEST),
                       __import__("json").dumps(manifest).encode())
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"(?s)val-00000-of-00001.tfrecord.*record.*0.*{feature}"):
    next(iter(pipeline.make_dataset(str(tmp_path), "val", 1)))


def _one_hot_maps(index, visible, stride):
  """[B, H/s, W/s, C] maps, 1 at each visible keypoint's target cell (flat index per channel)."""
  h, w = _H // stride, _W // stride
  maps = np.zeros((index.shape[0], h * w, index.shape[1]), np.float32)
  b, c = np.nonzero(visible > 0.5)
  maps[b, index[b, c], c] = 1.0
  return maps.reshape(-1, h, w, index.shape[1])


def test_the_mirror_ensemble_maps_a_flipped_frames_targets_back_to_the_frames():
  """hand25d.mirror's channel and column mapping is the training flip's, for every keypoint
  output and the hand mask (the segmentation head's nearest-sampled targets are a pixel off,
  hand25d/mirror.py)."""
  batch = _decoded_batch()
  cfg = pipeline.AugmentConfig(scale_range=(1.0, 1.0), max_rotation_deg=0.0,
                               max_translation=0.0, flip_prob=1.0, gain_range=(1.0, 1.0),
                               noise_std=0.0, composite_prob=0.0)
  flipped = pipeline.augment(batch, cfg, tf.constant([0, 0], tf.int64))
  maps = []
  for b in (batch, flipped):
    _, t = pipeline.targets(b, "amplitude")
    t = {k: v.numpy() for k, v in t.items()}
    primary = list(spec.PRIMARY_KEYPOINT_INDICES)
    out = {spec.HAND_MASK: t["hand_mask"]}
    for s in spec.DEEP_SUPERVISION_STRIDES:
      index, visible = t[f"keypoint_index_s{s}"], t["keypoint_visible"]
      names = [spec.deep_supervision_output(s)] + (
          [spec.KEYPOINTS] if s == spec.OUTPUT_STRIDE else [])
      for name in names:
        out[name] = _one_hot_maps(index[:, :, primary].reshape(index.shape[0], -1),
                                  visible[:, :, primary].reshape(index.shape[0], -1), s)
      if s == spec.OUTPUT_STRIDE:
        out[spec.AUX_KEYPOINTS] = _one_hot_maps(index.reshape(index.shape[0], -1),
                                                visible.reshape(index.shape[0], -1), s)
    maps.append(out)
  original, back = maps[0], mirror.unmirror(maps[1])
  assert original[spec.AUX_KEYPOINTS].sum() > 20
  for name, value in original.items():
    np.testing.assert_allclose(back[name], value, atol=1e-6, err_msg=name)
