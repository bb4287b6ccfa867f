"""The COCO import refuses input outside its contract (docs/data_format.md), by kind.

The three folders in testdata/coco_cases/ are small inputs that used to import
silently into bad labels. The other tests build a tiny 32 x 24 COCO folder
with Pillow and change one thing in it.
"""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import damaged_png
from hand25d import spec
from hand25d.data import coco
from hand25d.data import records

CASES = os.path.join(os.path.dirname(__file__), "..", "testdata", "coco_cases")
H, W = 24, 32


def _case(tmp_path, name):
  """A writable copy of testdata/coco_cases/<name>: (json path, its parsed JSON)."""
  root = str(tmp_path / name)
  shutil.copytree(os.path.join(CASES, name), root)
  for d, _, files in os.walk(root):
    for f in files:
      os.chmod(os.path.join(d, f), 0o644)
  path = os.path.join(root, "ann.json")
  with open(path) as fp:
    return path, json.load(fp)


def _save(path, array, mode=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode).save(path)


def _hand(ann_id=7, image_id=1, side="left", v=2):
  kp = [[10.0 + 2 * (k % 5), 8.0 + 2 * (k // 5), v] for k in range(spec.NUM_KEYPOINTS)]
  return {"id": ann_id, "image_id": image_id, "side": side, "keypoints": sum(kp, [])}


def _tiny(tmp_path, edit=lambda data, root: None):
  """A one-image COCO folder (palette mask, one left hand) after edit(data, root)."""
  root = str(tmp_path / "coco")
  _save(os.path.join(root, "amp", "1.png"), np.full((H, W), 900, np.uint16))
  _save(os.path.join(root, "depth", "1.png"), np.full((H, W), 450, np.uint16))
  mask = Image.fromarray(np.repeat(np.arange(W, dtype=np.uint8)[None] % 3, H, 0), "P")
  mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
  mask.save(os.path.join(root, "mask.png"))
  data = {"images": [{"id": 1, "file_name": "amp/1.png", "depth_file": "depth/1.png",
                      "mask_file": "mask.png"}],
          "annotations": [_hand()],
          "categories": [{"id": 1, "name": "hand", "keypoints": list(spec.KEYPOINT_NAMES)}]}
  edit(data, root)
  path = os.path.join(root, "ann.json")
  with open(path, "w") as fp:
    json.dump(data, fp)
  return path, root


def _import(path, tmp_path, root=None):
  root = root or os.path.dirname(path)
  out = str(tmp_path / "out")
  manifest = coco.import_coco(path, root, out, "train")
  return [f for p in records.shard_paths(out, manifest, "train") for f in records.read_shard(p)]


def test_the_tiny_folder_imports(tmp_path):
  path, _ = _tiny(tmp_path)
  (frame,) = _import(path, tmp_path)
  assert list(frame["hand_present"]) == [1, 0]
  assert int(frame["keypoint_visible"].sum()) == spec.NUM_KEYPOINTS
  np.testing.assert_array_equal(np.unique(frame["segmentation"]), [0, 1, 2])


# --- Values: visibility flags, iscrowd, num_keypoints, keypoint order -----------------------


def test_visibility_must_be_a_coco_flag(tmp_path):
  path, _ = _case(tmp_path, "float_visibility")  # v = 0.9, a confidence.
  with pytest.raises(coco.CocoError, match=r"float_visibility/ann.json: image 1 annotation 11: "
                                           r"visibility flags must be 0 .*wrist_center=0.9"):
    _import(path, tmp_path)
  for v in (3, -1):
    def edit(data, root, v=v):
      data["annotations"][0]["keypoints"][3 * 4 + 2] = v
    path, _ = _tiny(tmp_path / str(v), edit)
    with pytest.raises(coco.CocoError, match=f"annotation 7: visibility .*thumb_tip={v}"):
      _import(path, tmp_path)


def test_crowd_and_unlabelled_hands_are_refused(tmp_path):
  path, data = _case(tmp_path, "zero_and_crowd")
  with pytest.raises(coco.CocoError, match="annotation 21: no keypoint is labelled"):
    _import(path, tmp_path)
  data["annotations"] = data["annotations"][1:]  # Only the crowd annotation is left.
  with open(path, "w") as fp:
    json.dump(data, fp)
  with pytest.raises(coco.CocoError, match="image 1 annotation 22: iscrowd 1 is refused"):
    _import(path, tmp_path)

  path, _ = _tiny(tmp_path, lambda d, r: d["annotations"][0].update(num_keypoints=16))
  with pytest.raises(coco.CocoError, match="num_keypoints is 16 but 17 keypoints are labelled"):
    _import(path, tmp_path)


def test_keypoint_order_comes_from_the_category(tmp_path):
  (want,) = _import(_tiny(tmp_path / "spec")[0], tmp_path / "spec")
  perm = np.random.default_rng(0).permutation(spec.NUM_KEYPOINTS)

  def reorder(data, root):
    data["categories"][0]["keypoints"] = [spec.KEYPOINT_NAMES[i] for i in perm]
    kp = np.reshape(data["annotations"][0]["keypoints"], (-1, 3))
    kp[3, 2] = 1  # One occluded keypoint, so the flags are permuted too.
    data["annotations"][0]["keypoints"] = kp[perm].ravel().tolist()
    data["annotations"][0]["keypoints_depth"] = (0.4 + 0.01 * perm).tolist()

  (got,) = _import(_tiny(tmp_path / "perm", reorder)[0], tmp_path / "perm")
  np.testing.assert_array_equal(got["keypoints_xy"], want["keypoints_xy"])
  assert got["keypoint_visible"][0, 3] == 0 and got["keypoint_visible"][0].sum() == 16
  np.testing.assert_allclose(got["keypoints_depth"][0], 0.4 + 0.01 * np.arange(17), atol=1e-6)

  def other_names(data, root):
    data["categories"][0]["keypoints"][0] = "wrist"
  path, _ = _tiny(tmp_path / "names", other_names)
  with pytest.raises(coco.CocoError, match="category 1: 'keypoints' must list the 17 names.*"
                                           "missing: wrist_center; unknown: wrist"):
    _import(path, tmp_path)
  path, _ = _tiny(tmp_path / "cat", lambda d, r: d["annotations"][0].update(category_id=2))
  with pytest.raises(coco.CocoError, match="annotation 7: category_id 2 names no entry"):
    _import(path, tmp_path)


# --- Missing optional labels are unknown, not negative ----------------------------------------


def test_missing_mask_pose_and_roll_import_as_unknown(tmp_path):
  path, _ = _case(tmp_path, "keypoints_only")  # No mask_file, pose or roll_deg.
  (frame,) = _import(path, tmp_path)
  assert list(frame["hand_present"]) == [0, 1]
  assert frame["segmentation_known"] == 0
  # The right hand's pose and orientation are unknown; the absent left hand's say nothing.
  np.testing.assert_array_equal(frame["pose_known"], [1, 0])
  np.testing.assert_array_equal(frame["orientation_known"], [1, 0])


def test_given_labels_import_as_known(tmp_path):
  def edit(data, root):
    data["annotations"][0].update(pose="pinch", roll_deg=30.0)
  path, _ = _tiny(tmp_path, edit)
  (frame,) = _import(path, tmp_path)
  assert frame["segmentation_known"] == 1
  np.testing.assert_array_equal(frame["pose_known"], [1, 1])
  np.testing.assert_array_equal(frame["orientation_known"], [1, 1])
  assert frame["pose"][spec.LEFT] == spec.POSE_INDEX["pinch"]
  assert frame["orientation_bin"][spec.LEFT] == spec.orientation_bin(30.0)


# --- Images: read by their PNG header; mask classes and depth units --------------------------


def test_palette_mask_indices_are_classes(tmp_path):
  path, _ = _case(tmp_path, "palette_mask")
  (frame,) = _import(path, tmp_path)
  np.testing.assert_array_equal(np.unique(frame["segmentation"]), [0, 1, 2])


@pytest.mark.parametrize("role, rel, array, mode, said", [
    ("depth", "depth/1.png", np.full((H, W), 200, np.uint8), "L", "8-bit greyscale"),
    ("amplitude", "amp/1.png", np.full((H, W), 200, np.uint8), "L", "8-bit greyscale"),
    ("amplitude", "amp/1.png", np.zeros((H, W, 3), np.uint8), "RGB", "RGB colour"),
    ("mask", "mask.png", np.ones((H, W), np.uint16), None, "16-bit greyscale"),
    ("mask", "mask.png", np.ones((H, W, 2), np.uint8), "LA", "8-bit greyscale\\+alpha"),
])
def test_png_kind_outside_the_contract_is_refused(tmp_path, role, rel, array, mode, said):
  path, root = _tiny(tmp_path, lambda d, r: _save(os.path.join(r, rel), array, mode))
  with pytest.raises(coco.CocoError, match=f"image 1: {role} file .*{rel} is {said}, expected"):
    _import(path, tmp_path)


@pytest.mark.parametrize("role, rel, array", [
    ("amplitude", "amp/1.png", np.full((H, W), 900, np.uint16)),
    ("depth", "depth/1.png", np.full((H, W), 450, np.uint16)),
    ("mask", "mask.png", np.repeat(np.arange(W, dtype=np.uint8)[None] % 3, H, 0)),
])
def test_a_corrupt_png_is_refused_not_decoded_into_wrong_pixels(tmp_path, role, rel, array):
  # One byte flipped on disk: Pillow alone decodes it into a wrong pixel, no error.
  def damage(data, root):
    del data
    with open(os.path.join(root, rel), "wb") as f:
      f.write(damaged_png.silently_damaged(array))

  path, _ = _tiny(tmp_path, damage)
  with pytest.raises(coco.CocoError, match=f"image 1: {role} file .*{rel}: corrupt PNG: "
                     ".*checksum in b'IDAT'"):
    _import(path, tmp_path)


@pytest.mark.parametrize("role, rel, array, said", [
    ("mask", "mask.png", np.full((H, W), 38, np.uint8), r"768 pixels hold classes \[38\]"),
    ("depth", "depth/1.png", np.full((H, W), 65535, np.uint16), "768 pixels are deeper than 10000 mm"),
    ("depth", "depth/1.png", np.full((H, W), 45, np.uint16), "the median valid depth is 45 mm"),
])
def test_values_out_of_range_are_refused(tmp_path, role, rel, array, said):
  path, root = _tiny(tmp_path, lambda d, r: _save(os.path.join(r, rel), array))
  with pytest.raises(coco.CocoError, match=f"image 1: {role} file .*{rel}: {said}"):
    _import(path, tmp_path)


# --- Paths stay inside the image root ---------------------------------------------------------


@pytest.mark.parametrize("key, rel", [("file_name", "../outside.png"),
                                      ("depth_file", "/etc/hostname"),
                                      ("mask_file", "amp/../../outside.png")])
def test_paths_outside_the_root_are_refused(tmp_path, key, rel):
  _save(str(tmp_path / "outside.png"), np.full((H, W), 900, np.uint16))
  path, _ = _tiny(tmp_path, lambda d, r: d["images"][0].update({key: rel}))
  with pytest.raises(coco.CocoError, match=f"image 1: .* path '{rel}' is outside the image root"):
    _import(path, tmp_path)


# --- Bookkeeping: ids, keys, JSON; a refused file leaves the output as it was ----------------


@pytest.mark.parametrize("edit, said", [
    (lambda d, r: d["images"].append(dict(d["images"][0])), "image 1: duplicate image id"),
    (lambda d, r: d["annotations"][0].update(image_id=2), "image_id 2 matches no entry"),
    (lambda d, r: d["annotations"][0].update(image_id="1"),
     "annotation 7: image_id must be an integer image id, got '1'"),
    (lambda d, r: d.pop("images"), "missing key 'images'"),
    (lambda d, r: d["images"][0].pop("depth_file"), "image 1: missing key 'depth_file'"),
    (lambda d, r: d["annotations"].append(_hand(side="right")), "duplicate annotation id"),
])
def test_bookkeeping_errors_name_file_and_key(tmp_path, edit, said):
  path, _ = _tiny(tmp_path, edit)
  with pytest.raises(coco.CocoError, match=f"ann.json: .*{said}"):
    _import(path, tmp_path)


def test_malformed_json_names_the_file(tmp_path):
  path = tmp_path / "ann.json"
  path.write_text('{"images": [')
  with pytest.raises(coco.CocoError, match=r"ann.json: not valid JSON: .*line 1 column 13"):
    coco.import_coco(str(path), str(tmp_path), str(tmp_path / "out"))


def test_refused_import_leaves_the_output_as_it_was(tmp_path):
  def two_images(data, root):
    shutil.copy(os.path.join(root, "mask.png"), os.path.join(root, "mask2.png"))
    data["images"].append(dict(data["images"][0], id=2, mask_file="mask2.png"))
  path, root = _tiny(tmp_path, two_images)
  out = str(tmp_path / "out")
  coco.import_coco(path, root, out, "train")
  before = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)}
  _save(os.path.join(root, "mask2.png"), np.full((H, W), 5, np.uint8))
  # Image 1 fills the first shard before image 2 is refused.
  with pytest.raises(coco.CocoError, match="image 2: mask file"):
    coco.import_coco(path, root, out, "train", frames_per_shard=1)
  assert {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)} == before


def test_what_a_killed_import_left_is_removed_on_start(tmp_path):
  path, _ = _tiny(tmp_path)
  out = tmp_path / "out"
  (out / ".import-train-k1ll3d").mkdir(parents=True)
  (out / ".import-train-k1ll3d" / "train-00000-of-00001.tfrecord").write_bytes(b"half")
  (out / ".manifest.json.x1.tmp").write_bytes(b"{")
  assert len(_import(path, tmp_path)) == 1
  assert sorted(os.listdir(out)) == ["manifest.json", "train-00000-of-00001.tfrecord"]
