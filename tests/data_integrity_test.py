"""Data set integrity: shards checked against the manifest, bad records named, what is refused."""

import os
import shutil
import threading
import time

import pytest

from hand25d import atomic
from hand25d.data import generate
from hand25d.data import integrity
from hand25d.data import pipeline
from hand25d.data import records

import tensorflow as tf  # After hand25d.

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
TRAIN = "train-00000-of-00001.tfrecord"
# A byte inside record 3 (of 8) of the fixture's train shard.
FLIPPED_BYTE = 145210


def _copy(tmp_path) -> str:
  out = str(tmp_path / "data")
  shutil.copytree(FIXTURE, out)
  return out


def _flip(data_dir: str, offset: int = FLIPPED_BYTE) -> str:
  path = os.path.join(data_dir, TRAIN)
  data = bytearray(open(path, "rb").read())
  data[offset] ^= 0xFF
  open(path, "wb").write(bytes(data))
  return path


def _edit_manifest(data_dir: str, edit) -> None:
  manifest = records.load_manifest(data_dir)
  edit(manifest)
  atomic.write_json(os.path.join(data_dir, records.MANIFEST), manifest)


def _write_split(data_dir: str, split: str, serialized: list[bytes]) -> str:
  """Replaces a split by one shard of these records, with a matching manifest entry."""
  name = f"{split}-00000-of-00001.tfrecord"
  path = os.path.join(data_dir, name)
  records.write_shard(path, serialized)

  def edit(manifest):
    manifest["splits"][split].update(num_frames=len(serialized), shards=[
        dict(file=name, num_frames=len(serialized), **records.file_digest(path))])

  _edit_manifest(data_dir, edit)
  return path


def test_flipped_byte_fails_verification_and_names_shard_and_record(tmp_path):
  data = _copy(tmp_path)
  assert not integrity.verify(data, records.SPLITS)
  path = _flip(data)
  failing = integrity.verify(data, records.SPLITS)
  assert list(failing) == [path] and "sha256" in failing[path]
  problems, lost = integrity.bad_records(path, 8)
  assert lost == 5  # Records 3..7: a corrupt frame ends the file for TFRecordDataset.
  assert len(problems) == 1 and f"{TRAIN} record 3: corrupt" in problems[0]


def test_tfdata_read_error_is_named_and_skip_corrupt_drops_and_continues(tmp_path):
  data = _copy(tmp_path)
  _flip(data)
  with pytest.raises(tf.errors.DataLossError) as raw:  # What tf.data says: no file.
    list(pipeline.make_dataset(data, "train", 1))
  named = pipeline.name_data_error(data, "train", raw.value)
  assert f"{TRAIN} record 3: corrupt" in str(named)
  assert "regenerate that shard" in str(named) and "--skip_corrupt_records" in str(named)
  kept = list(pipeline.make_dataset(data, "train", 1, skip_corrupt=True, with_extras=True))
  assert len(kept) == 3


@pytest.mark.parametrize("name,value,bad", [("pose", 99, "pose"),
                                            ("orientation_bin", 8, "orientation_bin"),
                                            ("hand_present", -1, "hand_present")])
def test_label_out_of_range_is_refused_naming_shard_and_record(tmp_path, name, value, bad):
  data = _copy(tmp_path)
  raw = list(tf.data.TFRecordDataset(os.path.join(data, "val-00000-of-00001.tfrecord"))
             .as_numpy_iterator())
  ex = tf.train.Example.FromString(raw[0])
  ex.features.feature[name].int64_list.value[0] = value
  path = _write_split(data, "val", [ex.SerializeToString()])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"(?s)val-00000-of-00001.tfrecord.*record.*0.*{bad} outside the "
                     r"spec range"):
    list(pipeline.make_dataset(data, "val", 1))
  with pytest.raises(records.RecordError, match=rf"record 0: {bad} holds .* outside the spec"):
    list(records.read_shard(path))
  frame = records.decode(raw[0])
  frame[name][0] = value
  with pytest.raises(records.RecordError, match=f"frame 5: {bad} holds"):
    records.encode(frame, 5)


def test_record_that_is_not_an_example_is_named(tmp_path):
  data = _copy(tmp_path)
  good = next(tf.data.TFRecordDataset(os.path.join(data, "val-00000-of-00001.tfrecord"))
              .as_numpy_iterator())
  _write_split(data, "val", [good, b"\xff not a protocol buffer"])
  with pytest.raises(pipeline.DATA_ERRORS) as raw:
    list(pipeline.make_dataset(data, "val", 1))
  assert "record 1: not a tf.train.Example" in str(
      pipeline.name_data_error(data, "val", raw.value))


def test_shard_cut_inside_a_record_header_is_caught_by_its_record_count(tmp_path):
  data = _copy(tmp_path)
  path = os.path.join(data, TRAIN)
  scan = integrity.scan_shard(path)
  assert scan.num_records == 8 and scan.error is None
  ends, offset = [], 0
  for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
    offset += 16 + len(serialized)
    ends.append(offset)
  with open(path, "r+b") as fp:
    fp.truncate(ends[2] + 5)  # 5 bytes into the header of record 3.
  assert "record 3: file ends inside the record header" in integrity.scan_shard(path).error
  # A manifest rewritten to the cut file's size and digest (as the generator once did).
  _edit_manifest(data, lambda m: m["splits"]["train"]["shards"][0].update(
      records.file_digest(path)))
  assert "record 3: file ends inside" in integrity.verify(data, ["train"])[path]
  with open(path, "r+b") as fp:
    fp.truncate(ends[2])  # A clean cut after record 2.
  _edit_manifest(data, lambda m: m["splits"]["train"]["shards"][0].update(
      records.file_digest(path)))
  assert "holds 3 records, the manifest says 8" in integrity.verify(data, ["train"])[path]


def test_manifest_without_digests_still_loads_and_is_checked_by_count(tmp_path):
  data = _copy(tmp_path)

  def strip(manifest):
    for info in manifest["splits"].values():
      for shard in info["shards"]:
        del shard["sha256"], shard["bytes"]

  _edit_manifest(data, strip)
  assert not integrity.verify(data, records.SPLITS)
  assert len(list(pipeline.make_dataset(data, "val", 1))) == 1
  path = _flip(data)
  assert not integrity.verify(data, ["train"])  # Nothing to compare the bytes with ...
  assert integrity.bad_records(path, 8)[1] == 5  # ... but a full read finds the record.


@pytest.mark.parametrize("name", ["../x.tfrecord", "/etc/hostname", "a/../../x.tfrecord"])
def test_shard_names_outside_the_data_directory_are_refused(tmp_path, name):
  data = _copy(tmp_path)
  _edit_manifest(data, lambda m: m["splits"]["val"]["shards"][0].update(file=name))
  with pytest.raises(records.RecordError, match="not a file inside the data directory"):
    records.shard_paths(data, records.load_manifest(data), "val")
  with pytest.raises(records.RecordError, match="not a file inside the data directory"):
    integrity.verify(data, ["val"])


def test_manifest_whose_counts_disagree_with_its_shards_is_refused(tmp_path):
  data = _copy(tmp_path)
  _edit_manifest(data, lambda m: m["splits"]["train"].update(num_frames=9))
  with pytest.raises(records.RecordError, match="'train' says 9 frames, its shards hold"):
    records.load_manifest(data)


def test_generator_rerun_renders_damaged_shards_again_and_removes_stale_temp_files(tmp_path):
  config = generate.GeneratorConfig(num_frames=6, seed=2, height=48, width=64,
                                    frames_per_shard=2, users_per_split=(2, 1, 1))
  out = str(tmp_path / "d")
  manifest = generate.generate(config, out)
  expected = {n: open(os.path.join(out, n), "rb").read() for n in os.listdir(out)
              if n.endswith(".tfrecord")}
  first, second = sorted(expected)[:2]
  with open(os.path.join(out, first), "r+b") as fp:
    fp.truncate(100)  # Checked against the manifest's size and digest.
  open(os.path.join(out, ".manifest.json.abc123.tmp"), "w").write("{")
  generate.generate(config, out)
  assert open(os.path.join(out, first), "rb").read() == expected[first]
  assert not [n for n in os.listdir(out) if n.startswith(".")]
  os.unlink(os.path.join(out, records.MANIFEST))
  with open(os.path.join(out, second), "r+b") as fp:
    fp.truncate(os.path.getsize(os.path.join(out, second)) - 1)  # No manifest: a full read.
  assert generate.generate(config, out) == manifest
  assert open(os.path.join(out, second), "rb").read() == expected[second]


def test_generator_bounds_num_frames_before_planning():
  start = time.time()
  with pytest.raises(ValueError, match="num_frames 1000000000000 is more than"):
    generate.GeneratorConfig(num_frames=10**12)
  with pytest.raises(ValueError, match="more than 99999 shards"):
    generate.GeneratorConfig(num_frames=10**6, frames_per_shard=1)
  assert time.time() - start < 1


def test_verification_reads_in_parallel_threads(tmp_path, monkeypatch):
  data = _copy(tmp_path)
  threads = set()
  scan = integrity.scan_shard

  def spy(path):
    threads.add(threading.get_ident())
    time.sleep(0.2)
    return scan(path)

  monkeypatch.setattr(integrity, "scan_shard", spy)
  integrity.verify(data, records.SPLITS)
  assert len(threads) == 3


def test_generator_still_writes_the_fixture_byte_for_byte(tmp_path):
  """The synthetic shards are a contract: same config and seed, same bytes (and digests)."""
  fixture = records.load_manifest(FIXTURE)
  config = generate.GeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in fixture["config"].items()
                                       if k != "generator_version"})
  manifest = generate.generate(config, str(tmp_path / "again"))
  assert manifest == fixture  # Shards, digests and today's generator version.
