"""Frame records, shard reading errors and resumable deterministic generation."""

import hashlib
import os
import shutil
import zlib

import numpy as np
import pytest

from hand25d import spec
from hand25d.data import generate
from hand25d.data import records
from hand25d.data import scene

import tensorflow as tf

_TINY = dict(height=48, width=64, frames_per_shard=2, users_per_split=(2, 1, 1))


def _shard_bytes(out_dir):
  return {name: open(os.path.join(out_dir, name), "rb").read()
          for name in sorted(os.listdir(out_dir)) if name.endswith(".tfrecord")}


def test_encode_decode_round_trip():
  frame = scene.render_frame(4, scene.SceneConfig().scaled(60, 80))
  back = records.decode(records.encode(frame, 17))
  np.testing.assert_array_equal(back["amplitude"], frame["amplitude"])
  np.testing.assert_array_equal(back["phase_frames"], frame["phase_frames"])
  np.testing.assert_array_equal(back["segmentation"], frame["segmentation"])
  np.testing.assert_allclose(back["depth"], frame["depth"], atol=0.0006)
  np.testing.assert_allclose(back["true_depth"], frame["true_depth"], atol=0.0006)
  for key in ("keypoints_xy", "keypoints_depth", "keypoint_visible", "hand_present", "pose",
              "orientation_bin", "roll_deg"):
    np.testing.assert_allclose(back[key], frame[key], rtol=1e-6)
  assert back["frame_id"] == 17


def test_label_known_flags_absent_means_known_and_are_written_only_when_unknown():
  frame = scene.render_frame(4, scene.SceneConfig().scaled(60, 80))
  plain = records.encode(frame, 17)
  back = records.decode(plain)  # The generator writes no flags: all known.
  assert back["segmentation_known"] == 1
  np.testing.assert_array_equal(back["pose_known"], [1, 1])
  np.testing.assert_array_equal(back["orientation_known"], [1, 1])
  # All known: the same bytes as a record without flags (old data sets stay as they are).
  assert records.encode(back, 17) == plain
  unknown = dict(frame, segmentation_known=0, pose_known=[1, 0], orientation_known=[0, 1])
  back = records.decode(records.encode(unknown, 17))
  assert back["segmentation_known"] == 0
  np.testing.assert_array_equal(back["pose_known"], [1, 0])
  np.testing.assert_array_equal(back["orientation_known"], [0, 1])
  with pytest.raises(records.RecordError, match="pose_known holds"):
    records.encode(dict(frame, pose_known=[2, 0]), 17)


def test_encode_rejects_wrong_shape():
  frame = scene.render_frame(4, scene.SceneConfig().scaled(60, 80))
  frame["keypoints_xy"] = frame["keypoints_xy"][:, :5]
  with pytest.raises(records.RecordError, match="keypoints_xy has shape"):
    records.encode(frame, 3)


@pytest.mark.slow  # Generates the data set three times, with worker processes.
def test_generation_is_deterministic_across_worker_counts_and_splits_by_user(tmp_path):
  config = generate.GeneratorConfig(num_frames=8, seed=5, **_TINY)
  one = generate.generate(config, str(tmp_path / "one"), workers=1)
  generate.generate(config, str(tmp_path / "two"), workers=2)
  assert _shard_bytes(tmp_path / "one") == _shard_bytes(tmp_path / "two")
  assert sum(s["num_frames"] for s in one["splits"].values()) == 8
  users = {split: set(info["users"]) for split, info in one["splits"].items()}
  assert not users["train"] & users["val"] and not users["train"] & users["test"]
  for split, info in one["splits"].items():
    for shard in info["shards"]:
      for frame in records.read_shard(str(tmp_path / "one" / shard["file"])):
        assert int(frame["user_id"]) in users[split]
        assert frame["amplitude"].shape == (48, 64)


# sha256 of every shard of GeneratorConfig(num_frames=64, seed=3, frames_per_shard=16) at
# the sensor resolution (240x320), without and with phase frames, as generator
# version 3 writes them on every CPU with AVX2 (generate.simd_level X86_V3 or
# X86_V4): version 2's bytes on AVX2 machines (first computed on an AMD EPYC).
# Version 1's faster ray caster, sensor model and encoder were checked against
# version 1's digests (computed by the generator of commit 83d3e2e). A change
# that alters these bytes must bump generate.GENERATOR_VERSION
# (docs/data_format.md) and update them.
_SAME_BYTES_LEVELS = ("X86_V3", "X86_V4")
_PINNED_SHARD_SHA256 = {
    False: {
        "test-00000-of-00001.tfrecord":
            "733a1d97fa25b3e2e8ff050ee51c5f5bd412edde466075d6c1f149f64009c72e",
        "train-00000-of-00003.tfrecord":
            "86e1c93627651fabf640a548d3f9f087d12cce9691a094d4f531db40b593f865",
        "train-00001-of-00003.tfrecord":
            "a185c4354307c15dba791f4616e0dcee4a66f0c1837eb0f8efd27d89d6c5303b",
        "train-00002-of-00003.tfrecord":
            "700b00567cd7c9d090b23e6fcffe17d9491966623a6f220720df1e7749e94a8e",
        "val-00000-of-00001.tfrecord":
            "7f634e1fa23438f6a37efdb0536617e5a4cf9fb21ba157e49e42ebe0d80dedf4",
    },
    True: {
        "test-00000-of-00001.tfrecord":
            "4a42f1f7ac331f2a8db8622efa9442ec1d03e8da0295f2cd8da6a08041429fb6",
        "train-00000-of-00003.tfrecord":
            "a15bc82e94ea922eafeb23dc93c3cd0567602711b3d20758783de48eeb710b5f",
        "train-00001-of-00003.tfrecord":
            "1688c3bea68794841acb87efdce2654fea9a24ada0e7679ba2eaa0e2deec46b1",
        "train-00002-of-00003.tfrecord":
            "8c09a19b64c354b9d76759988dc8f84e3bc8e1e0c07803d024341843c24df520",
        "val-00000-of-00001.tfrecord":
            "a14f28b3e064ff13fab9f23e54144763ff47ded87feab9c0d5ea0554f7bf8c65",
    },
}
# sha256 of the same shards' records with every image decompressed
# (_decoded_digest), computed by the generator of commit 83d3e2e (version 1,
# zlib): the frames themselves, which the change of compressor did not alter.
_PINNED_DECODED_SHA256 = {
    False: {
        "test-00000-of-00001.tfrecord":
            "48aebbaedf167f7ce9ab789f3d05f9d84537e66a3e5fe70f2d3969b297e8082a",
        "train-00000-of-00003.tfrecord":
            "57b56b88571b8b09679e6939ac38f5818867abdf2a161560865446423755e081",
        "train-00001-of-00003.tfrecord":
            "f44de234535224bb8c609439c11dd4461f10ecdc5e01f552c63ce4c297d8c596",
        "train-00002-of-00003.tfrecord":
            "7111c88739c1672e0c4491cc0a24d3ad137ce59ab9ee1c83f7356c65c096731c",
        "val-00000-of-00001.tfrecord":
            "9bec5b379e7f8f8d82e8ed42693e04e62756f481a55943b11be7863d1f46f5eb",
    },
    True: {
        "test-00000-of-00001.tfrecord":
            "8385ef31b75d60e03ff2746227ad302aad53ed978f31c01009612525e8c5b909",
        "train-00000-of-00003.tfrecord":
            "b51baf674692bfb24a403fcc8f39e8921cd5d0d474c5a40e73385e03a5dea173",
        "train-00001-of-00003.tfrecord":
            "2e49d83fd270731a7e2252f74d5f40b8ee53743853002cf779a88b30db6fefda",
        "train-00002-of-00003.tfrecord":
            "775a075da1b93547a4da081bbe0e3a3370763f9f81049ccabcd2fbc9a71ed374",
        "val-00000-of-00001.tfrecord":
            "f5eb5e9350e22d2bc9705e02014f14169684843bc2aebf4d2a740f11a2ca2baa",
    },
}


def _decoded_digest(path):
  """sha256 of a shard's records, each with its image features decompressed."""
  digest = hashlib.sha256()
  for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
    example = tf.train.Example.FromString(serialized)
    for name in records.IMAGE_FEATURES:
      if name in example.features.feature:
        values = example.features.feature[name].bytes_list.value
        values[0] = zlib.decompress(values[0])
    digest.update(example.SerializeToString(deterministic=True))
  return digest.hexdigest()


@pytest.mark.parametrize("with_phase_frames", [False, True])
def test_sensor_resolution_shards_keep_their_pinned_digests(tmp_path, with_phase_frames):
  level = generate.simd_level()
  if level not in _SAME_BYTES_LEVELS:
    pytest.skip(f"no digests pinned for numpy's SIMD level {level} (docs/data_format.md)")
  config = generate.GeneratorConfig(num_frames=64, seed=3, frames_per_shard=16,
                                    with_phase_frames=with_phase_frames)
  assert (config.height, config.width) == (240, 320)
  generate.generate(config, str(tmp_path))
  shards = _shard_bytes(tmp_path)
  assert {name: _decoded_digest(str(tmp_path / name)) for name in shards} == (
      _PINNED_DECODED_SHA256[with_phase_frames])
  assert {name: hashlib.sha256(data).hexdigest() for name, data in shards.items()} == (
      _PINNED_SHARD_SHA256[with_phase_frames])


def test_rerun_after_a_kill_completes_only_missing_shards_with_the_same_bytes(tmp_path):
  config = generate.GeneratorConfig(num_frames=6, seed=2, **_TINY)
  full = str(tmp_path / "full")
  generate.generate(config, full)
  expected = _shard_bytes(full)
  # A killed run: one shard missing, one half-written temporary file, no manifest.
  partial = str(tmp_path / "partial")
  shutil.copytree(full, partial)
  victim = sorted(expected)[0]
  os.unlink(os.path.join(partial, victim))
  os.unlink(os.path.join(partial, records.MANIFEST))
  with open(os.path.join(partial, "." + victim + "abc"), "wb") as fp:
    fp.write(b"half a shard")
  kept = {n: os.stat(os.path.join(partial, n)).st_mtime_ns for n in expected if n != victim}
  generate.generate(config, partial)
  assert _shard_bytes(partial) == expected
  assert {n: os.stat(os.path.join(partial, n)).st_mtime_ns for n in kept} == kept
  assert not [n for n in os.listdir(partial) if n.startswith(".")]
  assert records.load_manifest(partial)["splits"] == records.load_manifest(full)["splits"]
  with pytest.raises(ValueError, match="generated with"):
    generate.generate(generate.GeneratorConfig(num_frames=6, seed=3, **_TINY), partial)


def _as_version_1(out_dir):
  """Marks a data set as written by generator version 1 (the same frames as today's)."""
  for name in ("generation_config.json", records.MANIFEST):
    path = os.path.join(out_dir, name)
    with open(path) as fp:
      text = fp.read()
    with open(path, "w") as fp:
      fp.write(text.replace(f'"generator_version": "{generate.GENERATOR_VERSION}"',
                            '"generator_version": "1"'))


def test_complete_data_set_of_an_earlier_version_with_the_same_frames_is_used(tmp_path):
  config = generate.GeneratorConfig(num_frames=4, seed=5, **_TINY)
  old = str(tmp_path / "old")
  generate.generate(config, old)
  _as_version_1(old)
  before = {n: os.stat(os.path.join(old, n)).st_mtime_ns for n in os.listdir(old)}
  manifest = generate.generate(config, old)
  assert manifest["generator_version"] == "1"
  assert {n: os.stat(os.path.join(old, n)).st_mtime_ns for n in os.listdir(old)} == before
  # Incomplete, it cannot be finished by today's version: a clear error, nothing removed.
  victim = manifest["splits"]["train"]["shards"][0]["file"]
  os.unlink(os.path.join(old, victim))
  with pytest.raises(ValueError, match=f"incomplete data set of generator version 1.*{victim}"):
    generate.generate(config, old)
  # Another config is refused as before.
  with pytest.raises(ValueError, match="generated with"):
    generate.generate(generate.GeneratorConfig(num_frames=4, seed=6, **_TINY), old)


def _one_shard(tmp_path, n=3):
  config = scene.SceneConfig().scaled(48, 64)
  path = str(tmp_path / "train-00000-of-00001.tfrecord")
  records.write_shard(path, [records.encode(scene.render_frame(i, config), i) for i in range(n)])
  return path


def test_corrupt_shard_error_names_the_shard_and_record(tmp_path):
  path = _one_shard(tmp_path)
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0xFF  # Inside the second record.
  open(path, "wb").write(bytes(data))
  with pytest.raises(records.RecordError, match=r"shard .*train-00000-of-00001.tfrecord record 1"):
    list(records.read_shard(path))
  open(path, "wb").write(bytes(data[:100]))  # Truncated inside record 0.
  with pytest.raises(records.RecordError, match="record 0: corrupt or truncated"):
    list(records.read_shard(path))


def test_record_with_a_missing_feature_names_the_feature(tmp_path):
  ex = tf.train.Example.FromString(records.encode(scene.render_frame(0, scene.SceneConfig().scaled(
      48, 64)), 0))
  del ex.features.feature["pose"]
  with pytest.raises(records.RecordError, match="x.tfrecord record 4: missing feature 'pose'"):
    records.decode(ex.SerializeToString(), "shard x.tfrecord record 4")


def test_truncated_shard_is_caught_against_the_manifest(tmp_path):
  config = generate.GeneratorConfig(num_frames=4, seed=0, **_TINY)
  out = str(tmp_path / "d")
  manifest = generate.generate(config, out)
  shard = os.path.join(out, manifest["splits"]["train"]["shards"][0]["file"])
  with open(shard, "r+b") as fp:
    fp.truncate(50)
  with pytest.raises(records.RecordError, match="truncated"):
    records.shard_paths(out, manifest, "train")
  with pytest.raises(records.RecordError, match="no split 'dev'"):
    records.shard_paths(out, manifest, "dev")


def test_fixture_is_small_and_readable():
  fixture = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
  manifest = records.load_manifest(fixture)
  total = 0
  for split in records.SPLITS:
    for path in records.shard_paths(fixture, manifest, split):
      total += os.path.getsize(path)
      for frame in records.read_shard(path):
        assert frame["keypoints_xy"].shape == (spec.NUM_SIDES, spec.NUM_KEYPOINTS, 2)
  assert total < 700_000
  assert manifest["splits"]["train"]["num_frames"] >= 8
