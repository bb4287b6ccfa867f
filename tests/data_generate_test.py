"""The generator's config checks, its output directory, empty splits, and generate_main's errors."""

import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys

import pytest

import cli_cases
from hand25d.data import generate
from hand25d.data import records

_TINY = dict(height=48, width=64, frames_per_shard=2)


@pytest.mark.parametrize("field, value", [
    ("num_frames", 0), ("num_frames", -4), ("num_frames", 2.5), ("num_frames", True),
    ("seed", -1), ("seed", "0"), ("frames_per_shard", 0), ("frames_per_shard", -2),
    ("height", 0), ("height", -120), ("width", 0), ("width", 1.5), ("with_phase_frames", 1),
    ("users_per_split", (1, 0, 1)), ("users_per_split", (1, 1)), ("users_per_split", (1, 2.0, 1)),
    ("users_per_split", (generate.MAX_USERS, 1, 1)),
])
def test_config_refuses_a_bad_field_naming_it_and_its_value(field, value):
  config = dict(dict(num_frames=4), **{field: value})
  with pytest.raises(ValueError, match=f"GeneratorConfig.{field} .*{value}"):
    generate.GeneratorConfig(**config)


def test_config_takes_the_smallest_valid_values():
  generate.GeneratorConfig(num_frames=1, seed=0, frames_per_shard=1, height=1, width=1,
                           users_per_split=(1, 1, 1))


def test_frames_for_every_split_is_where_no_split_is_empty_any_more():
  assert generate.frames_for_every_split((28, 4, 8)) == 6
  assert generate.split_counts(5, (28, 4, 8)) == [4, 0, 1]
  for users in itertools.product(range(1, 7), repeat=3):
    n = generate.frames_for_every_split(users)
    assert n == 1 or min(generate.split_counts(n - 1, users)) == 0, users
    assert all(min(generate.split_counts(m, users)) > 0 for m in range(n, n + 200)), users


def test_a_split_without_frames_is_a_warning_naming_the_frames_needed(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    manifest = generate.generate(generate.GeneratorConfig(num_frames=4, **_TINY),
                                 str(tmp_path / "d"))
  assert [manifest["splits"][s]["num_frames"] for s in records.SPLITS] == [3, 0, 1]
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "split(s) val get no frame of 4" in warnings[0], warnings
  assert "from num_frames=6 on" in warnings[0]
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    generate.generate(generate.GeneratorConfig(num_frames=6, **_TINY), str(tmp_path / "e"))
  assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_an_output_path_that_cannot_take_the_data_set_is_refused_untouched(tmp_path):
  config = generate.GeneratorConfig(num_frames=2, users_per_split=(1, 1, 1), **_TINY)
  a_file = tmp_path / "a_file"
  a_file.write_text("mine")
  with pytest.raises(generate.DataSetError, match=f"{a_file} exists and is not a directory"):
    generate.generate(config, str(a_file))
  with pytest.raises(generate.DataSetError, match="cannot create output directory"):
    generate.generate(config, str(a_file / "sub"))
  assert a_file.read_text() == "mine"
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "generation_config.json").write_text("{not json")
  with pytest.raises(generate.DataSetError, match="generation_config.json cannot be read"):
    generate.generate(config, str(bad))
  assert os.listdir(bad) == ["generation_config.json"]


def test_a_data_set_another_writer_made_is_refused_untouched(tmp_path):
  """A COCO import (a manifest and shards, no generation_config.json) is not re-rendered."""
  config = generate.GeneratorConfig(num_frames=2, users_per_split=(1, 1, 1), **_TINY)
  imported = tmp_path / "imported"
  imported.mkdir()
  (imported / "manifest.json").write_text('{"generator_version": "coco-import"}')
  (imported / "train-00000-of-00001.tfrecord").write_bytes(b"frames")
  with pytest.raises(generate.DataSetError, match="holds a data set the generator did not write "
                     r"\(manifest.json, train-00000-of-00001.tfrecord without "
                     "generation_config.json\)"):
    generate.generate(config, str(imported))
  assert sorted(os.listdir(imported)) == ["manifest.json", "train-00000-of-00001.tfrecord"]
  assert (imported / "train-00000-of-00001.tfrecord").read_bytes() == b"frames"


def test_a_directory_holding_only_a_config_refused_now_takes_a_valid_one(tmp_path):
  """Earlier versions wrote generation_config.json before checking it (height 0, say)."""
  out = tmp_path / "g5"
  out.mkdir()
  config = generate.GeneratorConfig(num_frames=2, users_per_split=(1, 1, 1), **_TINY)
  refused = dict(dataclasses.asdict(config), height=0, users_per_split=[1, 1, 1],
                 generator_version=generate.GENERATOR_VERSION)
  (out / "generation_config.json").write_text(json.dumps(refused))
  manifest = generate.generate(config, str(out))
  assert manifest["height"] == 48
  assert json.loads((out / "generation_config.json").read_text())["height"] == 48
  # A valid config of another data set is still refused.
  with pytest.raises(generate.DataSetError, match="holds a data set generated with"):
    generate.generate(generate.GeneratorConfig(num_frames=2, seed=1, users_per_split=(1, 1, 1),
                                               **_TINY), str(out))


@pytest.mark.slow  # Starts the binary in child processes.
def test_generate_main_ends_a_user_error_in_one_line_and_writes_nothing(tmp_path):
  (tmp_path / "a_file").write_text("mine")
  tiny = ["--num_frames=4", "--height=48", "--width=64", "--frames_per_shard=2"]
  outcomes = cli_cases.run("hand25d.data.generate_main", [
      ["--out=g5", "--num_frames=4", "--height=0"],
      ["--out=g5", "--num_frames=4", "--seed=-1"],
      ["--out=g5", "--num_frames=4", "--frames_per_shard=0"],
      ["--out=g5", "--workers=0"],
      ["--out=a_file", *tiny],
      ["--out=d", *tiny],
      ["--out=d", "--seed=1", *tiny],
  ], cwd=str(tmp_path))
  assert outcomes[0][:2] == ("usage", "GeneratorConfig.height must be >= 1, got 0")
  assert outcomes[1][:2] == ("usage", "GeneratorConfig.seed must be >= 0, got -1")
  assert outcomes[2][:2] == ("usage", "GeneratorConfig.frames_per_shard must be >= 1, got 0")
  assert outcomes[3].kind == "flags" and "--workers=0" in outcomes[3].message
  assert not (tmp_path / "g5").exists()
  assert outcomes[4][:2] == (
      "exit", "generate refused: output directory a_file exists and is not a directory")
  assert outcomes[5].kind == "ok"
  assert "split(s) val get no frame of 4" in outcomes[5].log
  assert "from num_frames=6 on" in outcomes[5].log
  assert outcomes[6].kind == "exit"
  assert outcomes[6].message.startswith("generate refused: d holds a data set generated with")
  # And under app.run: the one line, no traceback.
  proc = subprocess.run([sys.executable, "-m", "hand25d.data.generate_main", "--out=a_file",
                         "--num_frames=4"], cwd=tmp_path, env=cli_cases.child_env(),
                        capture_output=True,
                        text=True, timeout=600, check=False)
  assert proc.returncode == 1
  assert proc.stderr == ("generate refused: output directory a_file exists and is not a "
                         "directory\n"), proc.stderr
