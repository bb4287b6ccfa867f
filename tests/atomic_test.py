"""hand25d.atomic: a directory of files replaced as one set, and what a kill leaves behind."""

import os

from hand25d import atomic

import pytest


def _set(directory, **files):
  os.makedirs(directory, exist_ok=True)
  for name, text in files.items():
    with open(os.path.join(directory, name), "w") as f:
      f.write(text)


def _read(directory):
  return {n: open(os.path.join(directory, n)).read() for n in sorted(os.listdir(directory))}


def test_replacing_dir_swaps_the_whole_set_and_leaves_nothing_beside(tmp_path):
  out = str(tmp_path / "out")
  _set(out, model="old", report="old", extra="old")
  with atomic.replacing_dir(out) as tmp:
    _set(tmp, model="new", report="new")
    assert _read(out) == {"extra": "old", "model": "old", "report": "old"}  # Not yet.
  assert _read(out) == {"model": "new", "report": "new"}
  assert os.listdir(tmp_path) == ["out"]
  with atomic.replacing_dir(str(tmp_path / "fresh")) as tmp:  # No old set.
    _set(tmp, model="first")
  assert _read(str(tmp_path / "fresh")) == {"model": "first"}


def test_a_failed_block_leaves_the_old_set(tmp_path):
  out = str(tmp_path / "out")
  _set(out, model="old", report="old")
  with pytest.raises(KeyboardInterrupt):
    with atomic.replacing_dir(out) as tmp:
      _set(tmp, model="new")
      raise KeyboardInterrupt
  assert _read(out) == {"model": "old", "report": "old"}
  assert os.listdir(tmp_path) == ["out"]


def test_the_set_is_replaced_through_a_symbolic_link(tmp_path):
  real, link = str(tmp_path / "real"), str(tmp_path / "link")
  _set(real, model="old")
  os.symlink(real, link)
  with atomic.replacing_dir(link) as tmp:
    _set(tmp, model="new")
  assert os.path.islink(link) and _read(link) == {"model": "new"}


def test_stale_sets_of_a_killed_process_are_removed_or_put_back(tmp_path):
  out = str(tmp_path / "out")
  # Killed while writing the new set: it goes, the old set stays.
  _set(out, model="old")
  _set(str(tmp_path / ".out.k1ll3d.tmp"), model="half")
  _set(str(tmp_path / ".outer.abc.tmp"), model="another directory's")
  assert atomic.remove_stale_dirs(out) == [".out.k1ll3d.tmp"]
  assert sorted(os.listdir(tmp_path)) == [".outer.abc.tmp", "out"]
  # Killed between the renames: no out, the old set aside; it is put back.
  os.rename(out, str(tmp_path / ".out.x9.old.tmp"))
  _set(str(tmp_path / ".out.x9.tmp"), model="new, maybe incomplete")
  assert atomic.remove_stale_dirs(out) == [".out.x9.tmp"]
  assert _read(out) == {"model": "old"}
  # Killed while removing the old set after the swap: the rest of it goes.
  _set(str(tmp_path / ".out.y7.old.tmp"), model="old")
  assert atomic.remove_stale_dirs(out) == [".out.y7.old.tmp"]
  assert _read(out) == {"model": "old"}
  assert atomic.remove_stale_dirs(str(tmp_path / "nowhere" / "out")) == []
