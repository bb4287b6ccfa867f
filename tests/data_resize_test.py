"""A data set stored at network resolution trains on the same batches as the original."""

import json
import logging
import os

from hand25d import spec
from hand25d.data import generate
from hand25d.data import pipeline
from hand25d.data import records
from hand25d.data import resize

import numpy as np
import pytest


@pytest.fixture(scope="module")
def sensor_data(tmp_path_factory):
  """12 frames at the sensor's 240x320 and their copy at 120x160."""
  src = str(tmp_path_factory.mktemp("sensor"))
  generate.generate(generate.GeneratorConfig(num_frames=12, seed=3, frames_per_shard=4), src)
  dst = str(tmp_path_factory.mktemp("small"))
  resize.resize_dataset(src, dst, spec.INPUT_HEIGHT, spec.INPUT_WIDTH)
  return src, dst


def test_manifest_records_the_new_size_and_scaled_intrinsics(sensor_data):
  src, dst = sensor_data
  before, after = records.load_manifest(src), records.load_manifest(dst)
  assert (after["height"], after["width"]) == (spec.INPUT_HEIGHT, spec.INPUT_WIDTH)
  assert after["intrinsics"]["fx"] == pytest.approx(before["intrinsics"]["fx"] / 2)
  assert after["intrinsics"]["cx"] == pytest.approx((before["intrinsics"]["cx"] + 0.5) / 2 - 0.5)
  assert after["resized_from"]["height"] == before["height"]
  for split in records.SPLITS:
    assert after["splits"][split]["num_frames"] == before["splits"][split]["num_frames"]
  # Smaller on disk, and the digests are of the new shards.
  for split in records.SPLITS:
    for shard in after["splits"][split]["shards"]:
      assert shard == {**shard, **records.file_digest(os.path.join(dst, shard["file"]))}


def test_a_data_set_without_intrinsics_is_resized_without_them(sensor_data, tmp_path):
  """A COCO import's manifest has no intrinsics: the copy has none either."""
  src, _ = sensor_data
  imported = tmp_path / "imported"
  imported.mkdir()
  manifest = records.load_manifest(src)
  del manifest["intrinsics"]
  for split in records.SPLITS:
    for shard in manifest["splits"][split]["shards"]:
      os.symlink(os.path.join(src, shard["file"]), imported / shard["file"])
  (imported / records.MANIFEST).write_text(json.dumps(manifest))
  out = resize.resize_dataset(str(imported), str(tmp_path / "small"), 60, 80)
  assert "intrinsics" not in out and (out["height"], out["width"]) == (60, 80)


@pytest.mark.slow  # Two pipelines over a generated data set.
def test_pipeline_batches_match_the_resizing_pipeline(sensor_data):
  src, dst = sensor_data
  for training in (False, True):
    a = next(iter(pipeline.make_dataset(src, "train", 4, training=training, seed=1)))
    b = next(iter(pipeline.make_dataset(dst, "train", 4, training=training, seed=1)))
    # Amplitude differs only by rounding the block mean to whole counts.
    np.testing.assert_allclose(a[0]["image"].numpy(), b[0]["image"].numpy(), atol=0.02)
    for key in ("keypoint_visible", "hand_present", "pose", "orientation", "segmentation",
                "keypoint_index_s2", "keypoint_index_s8"):
      np.testing.assert_array_equal(a[1][key].numpy(), b[1][key].numpy(), err_msg=key)
    np.testing.assert_allclose(a[1]["keypoints_xy"].numpy(), b[1]["keypoints_xy"].numpy(),
                               atol=1e-4)


def test_resize_is_resumable_and_refuses_another_copy(sensor_data, tmp_path):
  src, dst = sensor_data
  first = records.load_manifest(dst)
  assert resize.resize_dataset(src, dst) == first  # Nothing to do: same manifest.
  # The same source through a symlink (a run directory linking a shared data set).
  link = tmp_path / "linked_source"
  os.symlink(src, link)
  assert resize.resize_dataset(str(link), dst) == first
  with pytest.raises(ValueError, match="not a copy of .* at 60x80"):
    resize.resize_dataset(src, dst, 60, 80)
  with pytest.raises(ValueError, match="cannot resize 240x320 to 100x160"):
    resize.resize_dataset(src, str(tmp_path / "odd"), 100, 160)


def test_a_record_of_another_size_is_named(sensor_data, tmp_path):
  """The pipeline trusts the manifest's size only after checking each record."""
  _, dst = sensor_data
  manifest = records.load_manifest(dst)
  manifest["height"], manifest["width"] = 240, 320  # Lie: the records are 120x160.
  bad = tmp_path / "bad"
  bad.mkdir()
  for name in os.listdir(dst):
    if name.endswith(".tfrecord"):
      os.symlink(os.path.join(dst, name), bad / name)
  (bad / records.MANIFEST).write_text(json.dumps(manifest))
  data = pipeline.make_dataset(str(bad), "train", 2, input_height=240, input_width=320)
  with pytest.raises(Exception, match=r"record.*manifest says 240x320"):
    next(iter(data))


def test_resize_logs_its_progress(sensor_data, tmp_path, monkeypatch, caplog):
  """With the interval at 0 every frame logs a line, and the end a final one."""
  src, _ = sensor_data
  monkeypatch.setattr(resize.progress, "INTERVAL_S", 0.0)
  with caplog.at_level(logging.INFO):
    resize.resize_dataset(src, str(tmp_path / "copy"))
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resize: ")]
  assert lines[0].startswith("resize: 1/12 frames (8.3%), ")
  assert lines[-1].startswith("resize: 12/12 frames (100.0%), ") and " done in " in lines[-1]
  assert all(", ETA " in line for line in lines[1:-1]) and len(lines) == 12
