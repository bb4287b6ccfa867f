"""What the COCO import does to its output directory, and how it reports bad numbers.

The import adds a split to a data set it wrote itself and nothing else: a
generated data set, another tool's files, another split's frames or users and
a directory it failed to fill are left as they were. Numeric fields are checked
per annotation, so every refusal names the annotation id and the field.
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from hand25d import spec
from hand25d.data import coco
from hand25d.data import records

import cli_cases

TINY = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
H, W = 24, 32


def _snapshot(directory):
  """Every file under directory (relative path -> bytes), to show nothing changed."""
  found = {}
  for d, _, files in os.walk(directory):
    for f in files:
      path = os.path.join(d, f)
      with open(path, "rb") as fp:
        found[os.path.relpath(path, directory)] = fp.read()
  return found


def _tiny_frames(n=2, first_id=1, user=True):
  """A COCO folder's JSON dict for n 32 x 24 images, each with one left hand."""
  images, annotations = [], []
  for i in range(first_id, first_id + n):
    image = {"id": i, "file_name": f"amp/{i}.png", "depth_file": f"depth/{i}.png"}
    if user:
      image["user_id"] = 10 + i
    images.append(image)
    kp = [[10.0 + 2 * (k % 5), 8.0 + 2 * (k // 5), 2] for k in range(spec.NUM_KEYPOINTS)]
    annotations.append({"id": 100 + i, "image_id": i, "side": "left", "keypoints": sum(kp, [])})
  return {"images": images, "annotations": annotations}


def _write(root, data, name="ann.json"):
  """Writes data's PNGs (distinct per image id) and JSON under root; returns the JSON path."""
  for image in data["images"]:
    for key, value in (("file_name", 900), ("depth_file", 450)):
      path = os.path.join(root, image[key])
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(np.full((H, W), value + image["id"], np.uint16)).save(path)
  path = os.path.join(root, name)
  with open(path, "w") as fp:
    json.dump(data, fp)
  return path


def _coco(tmp_path, name="coco", edit=None, **kwargs):
  data = _tiny_frames(**kwargs)
  if edit is not None:
    edit(data)
  root = str(tmp_path / name)
  return _write(root, data), root


# --- 1. Only into a data set the importer wrote; no shard of another writer overwritten ------


def _generated(tmp_path):
  out = str(tmp_path / "generated")
  shutil.copytree(TINY, out)
  for f in os.listdir(out):
    os.chmod(os.path.join(out, f), 0o644)
  return out


def _tiny_tof_json(tmp_path):
  """A COCO file of the generated val frame, at the generated data set's 120 x 160."""
  frames = [f for p in sorted(glob.glob(os.path.join(TINY, "val-*.tfrecord")))
            for f in records.read_shard(p)]
  return coco.write_coco(frames, str(tmp_path / "tofcoco"))


def test_a_generated_data_set_is_refused_and_left_as_it_was(tmp_path):
  out = _generated(tmp_path)
  json_path = _tiny_tof_json(tmp_path)
  before = _snapshot(out)
  version = records.load_manifest(TINY)["generator_version"]
  with pytest.raises(coco.CocoError, match=f"{out} holds a generated data set .*generator "
                                           f"version {version}, seed 1, 12 frames"):
    coco.import_coco(json_path, os.path.dirname(json_path), out, "train")
  assert _snapshot(out) == before


def test_a_generator_run_without_its_manifest_yet_is_refused(tmp_path):
  out = _generated(tmp_path)
  os.remove(os.path.join(out, records.MANIFEST))  # Killed before it wrote the manifest.
  json_path = _tiny_tof_json(tmp_path)
  before = _snapshot(out)
  with pytest.raises(coco.CocoError, match=f"{out} holds a generated data set "
                                           r"\(generation_config.json\)"):
    coco.import_coco(json_path, os.path.dirname(json_path), out, "train")
  assert _snapshot(out) == before


@pytest.mark.parametrize("extra, said", [
    ({"resized_from": {"data_dir": "/d"}}, "a resized copy of /d"),
    ({"generator_version": "other-tool"}, "a data set the COCO importer did not write "
                                          r"\(generator_version 'other-tool'\)"),
])
def test_a_manifest_the_importer_did_not_write_is_refused(tmp_path, extra, said):
  path, root = _coco(tmp_path)
  out = str(tmp_path / "out")
  coco.import_coco(path, root, out, "train")
  with open(os.path.join(out, records.MANIFEST)) as fp:
    manifest = dict(json.load(fp), **extra)
  with open(os.path.join(out, records.MANIFEST), "w") as fp:
    json.dump(manifest, fp)
  before = _snapshot(out)
  path, root = _coco(tmp_path, "val", first_id=5)
  with pytest.raises(coco.CocoError, match=f"{out} holds {said}"):
    coco.import_coco(path, root, out, "val")
  assert _snapshot(out) == before


def test_a_file_the_manifest_does_not_list_is_not_overwritten(tmp_path):
  path, root = _coco(tmp_path)
  out = tmp_path / "out"
  out.mkdir()
  (out / "train-00000-of-00001.tfrecord").write_bytes(b"someone else's shard")
  with pytest.raises(coco.CocoError, match="train-00000-of-00001.tfrecord exists and is not a "
                                           "shard of an earlier import of split 'train'"):
    coco.import_coco(path, root, str(out), "train")
  assert _snapshot(out) == {"train-00000-of-00001.tfrecord": b"someone else's shard"}


def test_a_split_from_another_source_is_not_replaced(tmp_path):
  path, root = _coco(tmp_path)
  out = str(tmp_path / "out")
  coco.import_coco(path, root, out, "train")
  before = _snapshot(out)
  other, other_root = _coco(tmp_path, "other", first_id=5)
  with pytest.raises(coco.CocoError, match=f"{out} already holds split 'train', imported from "
                                           f"{path}"):
    coco.import_coco(other, other_root, out, "train")
  assert _snapshot(out) == before


def test_the_same_source_replaces_its_split_and_its_old_shards(tmp_path):
  path, root = _coco(tmp_path)
  out = str(tmp_path / "out")
  coco.import_coco(path, root, out, "train", frames_per_shard=1)
  assert len(os.listdir(out)) == 3
  manifest = coco.import_coco(path, root, out, "train")
  assert sorted(os.listdir(out)) == ["manifest.json", "train-00000-of-00001.tfrecord"]
  assert [s["file"] for s in manifest["splits"]["train"]["shards"]] == [
      "train-00000-of-00001.tfrecord"]


# --- 2. Users (or, where users are not known, images) are disjoint between splits -------------


@pytest.mark.parametrize("user, said", [
    (True, r"users 11, 12 \(images 1, 2\) are already in split 'train' of {out}"),
    # Users not known (not a user 0): the frames are compared by their pixels.
    (False, r"image 1 is the same frame \(amplitude and depth\) as image 1 of split 'train' "
            "in {out}"),
])
def test_the_same_json_as_two_splits_is_refused(tmp_path, user, said):
  path, root = _coco(tmp_path, user=user)
  out = str(tmp_path / "out")
  manifest = coco.import_coco(path, root, out, "train")
  assert manifest["splits"]["train"]["users"] == ([11, 12] if user else [])
  before = _snapshot(out)
  with pytest.raises(coco.CocoError, match=said.format(out=out)):
    coco.import_coco(path, root, out, "val")
  assert _snapshot(out) == before


def test_disjoint_splits_are_imported_side_by_side(tmp_path):
  out = str(tmp_path / "out")
  for split, first in (("train", 1), ("val", 5), ("test", 9)):
    path, root = _coco(tmp_path, split, first_id=first)
    manifest = coco.import_coco(path, root, out, split)
  assert {s: info["users"] for s, info in manifest["splits"].items()} == {
      "train": [11, 12], "val": [15, 16], "test": [19, 20]}
  back = [f for p in records.shard_paths(out, manifest, "val") for f in records.read_shard(p)]
  assert [int(f["frame_id"]) for f in back] == [5, 6]


# --- 3. A refused import leaves no directory behind it ----------------------------------------


def test_a_refused_import_removes_the_directories_it_created(tmp_path):
  path, root = _coco(tmp_path)
  out = str(tmp_path / "new" / "out")
  with pytest.raises(coco.CocoError, match=f"image root {tmp_path}/missing does not exist"):
    coco.import_coco(path, str(tmp_path / "missing"), out, "train")
  assert not os.path.exists(tmp_path / "new")
  os.remove(os.path.join(root, "depth", "2.png"))  # Refused after image 1 is written.
  with pytest.raises(coco.CocoError, match="image 2: depth file .*2.png does not exist"):
    coco.import_coco(path, root, out, "train", frames_per_shard=1)
  assert not os.path.exists(tmp_path / "new")
  os.makedirs(out)  # A directory that was there before stays.
  with pytest.raises(coco.CocoError, match="image 2: depth file"):
    coco.import_coco(path, root, out, "train", frames_per_shard=1)
  assert os.listdir(out) == []


# --- 4. Errors: one line from the main; numbers checked per annotation ------------------------


def test_the_main_refuses_a_bad_output_directory_in_one_line(tmp_path):
  path, root = _coco(tmp_path)
  a_file = tmp_path / "a_file"
  a_file.write_text("mine")
  out = tmp_path / "out"
  out.mkdir()
  (out / records.MANIFEST).write_text("{not json")
  # In a child process: the main's required flags must not reach this process's FLAGS,
  # where another test parses another main's flags (tests/cli_cases.py).
  outcomes = cli_cases.run("hand25d.data.import_coco_main",
                           [[f"--json={path}", f"--out={a_file}"],
                            [f"--json={path}", f"--out={out}"]], cwd=str(tmp_path))
  assert [o.kind for o in outcomes] == ["exit", "exit"]
  assert outcomes[0].message == (f"import refused: output directory {a_file} is an existing "
                                 "file, not a directory")
  assert a_file.read_text() == "mine"
  said = outcomes[1].message
  assert said.startswith(f"import refused: {out} holds a manifest.json that cannot be read")
  assert "\n" not in said
  assert (out / records.MANIFEST).read_text() == "{not json"


def _set_ann(**values):
  return lambda data: data["annotations"][0].update(values)


def _set_kp(index, value, v=2):
  """Sets one keypoint value; v: that keypoint's flag (1, occluded: it may lie outside)."""
  def edit(data):
    data["annotations"][0]["keypoints"][index] = value
    data["annotations"][0]["keypoints"][3 * (index // 3) + 2] = v if index % 3 < 2 else value
  return edit


@pytest.mark.parametrize("edit, said", [
    (_set_kp(0, 10**400), r"keypoints\[0\] \(x of wrist_center\) is an integer of 401 digits, "
                          "outside the float32 range"),
    (_set_kp(4, 1e300, v=1), r"keypoints\[4\] \(y of hand_center\) is 1e\+300, outside the "
                             "float32"),
    (_set_kp(14, True), r"keypoints\[14\] \(v of thumb_tip\) is true, a boolean, not a number"),
    (_set_kp(2, "2"), r"keypoints\[2\] \(v of wrist_center\) is a str, not a number"),
    (_set_ann(roll_deg=10**400), "roll_deg must be a finite number of degrees within the "
                                 "float32 range, got an integer of 401 digits"),
    (_set_ann(roll_deg=1e308), "roll_deg must be .* got 1e[+]?308, outside the float32 range"),
    (_set_ann(roll_deg=False), "roll_deg must be .* got false, a boolean, not a number"),
    (_set_ann(keypoints_depth=[0.5] * 16 + [10**400]),
     r"keypoints_depth\[16\] \(pinky_tip\) is an integer of 401 digits"),
    (_set_ann(num_keypoints=True), "num_keypoints must be a number, got true, a boolean"),
    (_set_ann(iscrowd=False), "iscrowd must be 0 or 1, got false, a boolean"),
])
def test_numbers_are_checked_per_annotation_and_field(tmp_path, edit, said):
  path, root = _coco(tmp_path, edit=edit, n=1)
  # The message names the annotation, then the field (for a list, the element).
  with pytest.raises(coco.CocoError,
                     match=f"ann.json: image 1 annotation 101: (.* must be .*; )?{said}"):
    coco.import_coco(path, root, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")


def test_an_image_path_that_is_a_directory_is_named_as_one(tmp_path):
  path, root = _coco(tmp_path, n=1)
  os.remove(os.path.join(root, "amp", "1.png"))
  os.mkdir(os.path.join(root, "amp", "1.png"))
  with pytest.raises(coco.CocoError, match=r"image 1: amplitude file .*amp/1.png is a directory, "
                                           "not a PNG file"):
    coco.import_coco(path, root, str(tmp_path / "out"))
