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
# the sensor resolution (240x320), without and with phase frames, computed by the
# generator before its speed-ups (commit 83d3e2e): the faster ray caster, sensor
# model and encoder must write the same bytes. A change that alters them must
# bump generate.GENERATOR_VERSION (docs/data_format.md) and update these digests.
_PINNED_SHARD_SHA256 = {
    False: {
        "test-00000-of-00001.tfrecord":
            "091de92c9ffc13e2451d22bc1b2617972ee95b2ae7253fafdf6a771e2fb1d38f",
        "train-00000-of-00003.tfrecord":
            "8a2448288b60808c9a82bfbb9341501bd7e837d1a49f42d7f252f68e3c797929",
        "train-00001-of-00003.tfrecord":
            "912b1f8378d9641cdbc87baa0b073742dc4a76390c8090febcf55341aca3244e",
        "train-00002-of-00003.tfrecord":
            "c5dcc91f7d7023c70f19e97657f6dd366ed108c06110b9cc6a44dc5ef1b7a8f6",
        "val-00000-of-00001.tfrecord":
            "e4e4435d3e0542c840f9c0c8ad350b2a15d983cff2ed8abb0200109bd28de453",
    },
    True: {
        "test-00000-of-00001.tfrecord":
            "2052d5db8a8270445f35b7addfcaa1d2962944fb5dc0da8eb5565c9024fd13f5",
        "train-00000-of-00003.tfrecord":
            "cb133f00c2a83281b2e666e1e57e4cdf42788fbeaae8a3e9cc7f86d878cce8d3",
        "train-00001-of-00003.tfrecord":
            "0c17cf5dca0d922120dff4979d9ef833a49a522a9786e5b2d337c0f97438d321",
        "train-00002-of-00003.tfrecord":
            "ecf53d2178dac225dc731824120c6d2f388fa7acfd421ffc293d28b4d7e05cad",
        "val-00000-of-00001.tfrecord":
            "47362a20a36b44a33e92000b5dd17e28f17ff2f41e0ba1c345b86b576e7aa9b3",
    },
}
# sha256 of the same shards' records with every image decompressed
# (_decoded_digest), also from the generator of commit 83d3e2e: the frames
# themselves, which no change of compressor may alter.
_PINNED_DECODED_SHA256 = {
    False: {
        "test-00000-of-00001.tfrecord":
            "ee10b941cc951d5b68f5214a414edc09a14de1eccf8b9219711923de0aa10e12",
        "train-00000-of-00003.tfrecord":
            "c3afc9b205571cf4aa683866ac84ff869d5b263cbc7640c7f89c7106e4f8cb6e",
        "train-00001-of-00003.tfrecord":
            "47ba36594fe6b3194b05462b2a595fdfe047831790f88e7b8ff3d4aaaf562fe5",
        "train-00002-of-00003.tfrecord":
            "2e6e486937edc723f7d24338b0b528ab8fd83ee9ab79230d615b4cbbaae36cc9",
        "val-00000-of-00001.tfrecord":
            "bfbecb861a520724813e79d2c861f8e7e443c04a72fd1144ad94340e0c4fd1fe",
    },
    True: {
        "test-00000-of-00001.tfrecord":
            "7ba0d8824cd73daaedad3b32abae128a41001599a21610e5cc928bee9f78fb5e",
        "train-00000-of-00003.tfrecord":
            "647c598fe1da7c24ac8de825bef9f5df068baee9e2856519d2dcb7a9d201a4c2",
        "train-00001-of-00003.tfrecord":
            "aa96bae1ed191b6e1e2efcd40c51c08ca4e224e1a2908334147e10165324b90c",
        "train-00002-of-00003.tfrecord":
            "1de9fbbf08500075f9f1e00cffe6bbc5bfccf66395b9cb0801b7ce09ed9e7919",
        "val-00000-of-00001.tfrecord":
            "567d0a6069d3b30034cc3436b686d4265daa0540f18c92e8beb1151feca543c9",
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
