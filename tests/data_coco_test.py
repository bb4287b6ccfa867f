"""COCO-keypoints import round-trips and rejects bad annotations by id."""

import json
import os

import numpy as np
import pytest

from hand25d.data import coco
from hand25d.data import records
from hand25d.data import scene


def _frames(n=3):
  config = scene.SceneConfig().scaled(60, 80)
  return [scene.render_frame(i + 20, config, user_id=i, with_phase_frames=False) for i in range(n)]


def test_coco_export_import_round_trip(tmp_path):
  frames = _frames()
  json_path = coco.write_coco(frames, str(tmp_path / "coco"))
  manifest = coco.import_coco(json_path, str(tmp_path / "coco"), str(tmp_path / "data"), "val",
                              frames_per_shard=2)
  assert manifest["splits"]["val"]["num_frames"] == 3
  paths = records.shard_paths(str(tmp_path / "data"), manifest, "val")
  back = [f for p in paths for f in records.read_shard(p)]
  assert len(back) == 3
  for src, got in zip(frames, back):
    np.testing.assert_array_equal(got["amplitude"], src["amplitude"])
    np.testing.assert_array_equal(got["segmentation"], src["segmentation"])
    np.testing.assert_allclose(got["depth"], src["depth"], atol=0.0006)
    np.testing.assert_array_equal(got["hand_present"], src["hand_present"])
    present = src["hand_present"] > 0
    np.testing.assert_allclose(got["keypoints_xy"][present], src["keypoints_xy"][present],
                               atol=1e-4)
    np.testing.assert_allclose(got["keypoints_depth"][present], src["keypoints_depth"][present],
                               atol=1e-5)
    np.testing.assert_array_equal(got["keypoint_visible"], src["keypoint_visible"])
    np.testing.assert_array_equal(got["pose"][present], src["pose"][present])
    np.testing.assert_array_equal(got["orientation_bin"][present], src["orientation_bin"][present])
    assert int(got["user_id"]) == int(src["user_id"])


def _corrupt(tmp_path, edit):
  root = str(tmp_path / "coco")
  path = coco.write_coco(_frames(2), root)
  data = json.load(open(path))
  edit(data)
  json.dump(data, open(path, "w"))
  return path, root


def test_bad_annotation_error_names_its_id(tmp_path):
  def short(data):
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
  path, root = _corrupt(tmp_path, short)
  ann_id = json.load(open(path))["annotations"][0]["id"]
  with pytest.raises(coco.CocoError, match=f"annotation {ann_id}: keypoints must be 51"):
    coco.import_coco(path, root, str(tmp_path / "out"))

  def outside(data):
    kp = data["annotations"][1]["keypoints"]
    kp[0], kp[2] = 500.0, 2
  path, root = _corrupt(tmp_path, outside)
  ann_id = json.load(open(path))["annotations"][1]["id"]
  with pytest.raises(coco.CocoError, match=f"annotation {ann_id}: visible keypoints "
                                           r"\['wrist_center'\] lie outside"):
    coco.import_coco(path, root, str(tmp_path / "out"))


def test_missing_image_file_names_the_image(tmp_path):
  path, root = _corrupt(tmp_path, lambda d: None)
  os.unlink(os.path.join(root, "depth", "000001.png"))
  with pytest.raises(coco.CocoError, match="image 1: depth file .*000001.png does not exist"):
    coco.import_coco(path, root, str(tmp_path / "out"))
