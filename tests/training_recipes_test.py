"""Recipes: the shipped ones load, bad ones are refused, and train_main applies them."""

import dataclasses
import json
import os
import subprocess
import sys

from hand25d.training import config as config_lib
from hand25d.training import recipes

import pytest

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


@pytest.mark.parametrize("name", recipes.names())
def test_shipped_recipes_load(name):
  recipe = recipes.load(name)
  cfg = recipes.train_config(recipe, "somewhere")
  assert cfg.data_dir == "somewhere"
  assert recipe.data["num_frames"] > 0 and "seed" in recipe.data
  # The recipes train the full model with Eq. 1's weights.
  assert cfg.loss.active() == ("kp", "akp", "kphv", "cho", "dhp", "seg", "ds")


def test_model_config_from_a_dict_of_some_fields():
  model = config_lib.model_from_dict({"score_stride": 4, "tier3_dilations": [1, 2]})
  assert model.score_stride == 4 and model.tier3_dilations == (1, 2)
  assert model.tier1_channels == config_lib.model_config.ModelConfig().tier1_channels
  with pytest.raises(ValueError, match="unknown ModelConfig fields"):
    config_lib.model_from_dict({"score_strid": 4})


def test_quick_and_reference_exist():
  assert {"quick", "reference"} <= set(recipes.names())


def test_bad_recipes_are_refused_with_the_file_and_field(tmp_path):
  with pytest.raises(ValueError, match="unknown recipe 'nope'"):
    recipes.load("nope")
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"description": "x", "data": {}, "train": {"epochs": 0}}))
  with pytest.raises(ValueError, match=r"bad\.json: bad train config: epochs must be >= 1"):
    recipes.load(str(bad))
  bad.write_text(json.dumps({"description": "x", "data": {}, "train": {"learning_rat": 1}}))
  with pytest.raises(ValueError, match="learning_rat"):
    recipes.load(str(bad))
  bad.write_text(json.dumps({"data": {}, "train": {}}))
  with pytest.raises(ValueError, match=r"lacks \['description'\]"):
    recipes.load(str(bad))


@pytest.mark.slow
def test_train_main_takes_the_recipe_and_flags_override_it(tmp_path):
  recipe = tmp_path / "tiny.json"
  recipe.write_text(json.dumps({
      "description": "tiny", "data": {"num_frames": 8},
      "train": {"batch_size": 4, "epochs": 1, "learning_rate": 0.005, "warmup_steps": 1,
                "loss": {"target_sigma_cells": 1.0}}}))
  workdir = tmp_path / "run"
  subprocess.run([sys.executable, "-m", "hand25d.train_main", f"--data={DATA}",
                  f"--workdir={workdir}", f"--recipe={recipe}", "--learning_rate=0.002",
                  "--eval_every=100", "--log_every=1"],
                 check=True, capture_output=True, timeout=600)
  cfg = config_lib.load(str(workdir))
  assert (cfg.batch_size, cfg.epochs, cfg.warmup_steps) == (4, 1, 1)  # From the recipe.
  assert cfg.loss.target_sigma_cells == 1.0  # Nested, from the recipe.
  assert cfg.learning_rate == 0.002  # The flag wins.


def test_a_run_saved_before_the_channel_shuffle_loads_without_it(tmp_path):
  cfg = config_lib.TrainConfig(data_dir="unused")
  assert cfg.model.decoder_shuffle == 2  # Today's default.
  saved = json.loads(json.dumps(config_lib.to_dict(cfg)))
  del saved["model"]["decoder_shuffle"], saved["model"]["decoder_channels"]
  with open(tmp_path / config_lib.CONFIG_FILE, "w") as f:
    json.dump(saved, f)
  loaded = config_lib.load(str(tmp_path))
  assert (loaded.model.decoder_shuffle, loaded.model.decoder_channels) == (0, 0)
  # Resuming it with today's default network is refused, naming the field.
  with pytest.raises(ValueError, match="model.decoder_shuffle: saved 0, now 2"):
    config_lib.save_or_check(cfg, str(tmp_path))


def test_the_data_and_init_paths_are_stored_absolute_so_any_cwd_finds_them(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  workdir = str(tmp_path / "run")
  cfg = config_lib.TrainConfig(data_dir="runs/data", init_weights="runs/before")
  config_lib.save_or_check(cfg, workdir)
  assert config_lib.load(workdir).data_dir == str(tmp_path / "runs" / "data")
  assert config_lib.load(workdir).init_weights == str(tmp_path / "runs" / "before")
  # Resuming with the same relative path from the same place is the same run,
  config_lib.save_or_check(cfg, workdir)
  # and so is a run saved relative by an older version.
  with open(os.path.join(workdir, config_lib.CONFIG_FILE)) as f:
    saved = json.load(f)
  saved["data_dir"], saved["init_weights"] = "runs/data", "runs/before"
  with open(os.path.join(workdir, config_lib.CONFIG_FILE), "w") as f:
    json.dump(saved, f)
  config_lib.save_or_check(cfg, workdir)
  assert config_lib.load(workdir).data_dir == str(tmp_path / "runs" / "data")
  # Another data set is still another run.
  with pytest.raises(ValueError, match="data_dir: saved"):
    config_lib.save_or_check(config_lib.TrainConfig(data_dir="other"), workdir)
  # Another starting point, too.
  with pytest.raises(ValueError, match="init_weights: saved"):
    config_lib.save_or_check(dataclasses.replace(cfg, init_weights="runs/other"), workdir)


def test_a_run_saved_before_the_recipe_field_resumes_under_its_recipe(tmp_path):
  """config.json of a run started before TrainConfig had recipe and summary_images."""
  cfg = recipes.train_config(recipes.load("quick"), DATA)
  assert cfg.recipe == "quick"
  saved = json.loads(json.dumps(config_lib.to_dict(cfg)))
  del saved["recipe"], saved["summary_images"]
  with open(tmp_path / config_lib.CONFIG_FILE, "w") as f:
    json.dump(saved, f)
  assert config_lib.load(str(tmp_path)).recipe == ""
  config_lib.save_or_check(cfg, str(tmp_path))  # Not refused.
  assert config_lib.load(str(tmp_path)) == dataclasses.replace(cfg, data_dir=os.path.abspath(DATA))


def test_a_run_saved_before_pose_from_loads_with_pooled_heads(tmp_path):
  cfg = config_lib.TrainConfig(data_dir="unused")
  cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model,
                                                           pose_from="keypoints+features"))
  saved = json.loads(json.dumps(config_lib.to_dict(cfg)))
  del saved["model"]["pose_from"], saved["model"]["hand_head_channels"]
  with open(tmp_path / config_lib.CONFIG_FILE, "w") as f:
    json.dump(saved, f)
  assert config_lib.load(str(tmp_path)).model.pose_from == "features"


@pytest.fixture
def train_flags():
  """Parses train_main's flags in-process; returns parse(*args) -> TrainConfig."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from hand25d import train_main  # pylint: disable=import-outside-toplevel

  def parse(*args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train_main", f"--data={DATA}", "--workdir=unused", *args])
    return train_main._config()  # pylint: disable=protected-access

  yield parse
  flags.FLAGS.unparse_flags()


def test_init_from_builds_the_network_of_the_weights(train_flags, tmp_path):
  # A source whose network differs from today's default in several fields.
  source = dataclasses.replace(config_lib.TrainConfig(data_dir=DATA),
                               model=config_lib.model_from_dict(
                                   {"score_stride": 2, "tier2_groups": 4, "tier3_groups": 8,
                                    "tier3_bottleneck": 40, "pose_from": "features"}))
  config_lib.save_or_check(source, str(tmp_path))
  weights = str(tmp_path / "training.weights.h5")
  cfg = train_flags("--recipe=quick", f"--init_from={weights}")
  assert cfg.model == source.model
  assert cfg.epochs == recipes.train_config(recipes.load("quick"), DATA).epochs
  # A model flag given still applies over the source's network.
  cfg = train_flags("--recipe=quick", f"--init_from={weights}", "--score_stride=4")
  assert cfg.model == dataclasses.replace(source.model, score_stride=4)
  # Without --init_from the recipe's (default) network.
  assert train_flags("--recipe=quick").model == config_lib.TrainConfig(data_dir=DATA).model
  with pytest.raises(ValueError, match="no config.json next to it"):
    train_flags(f"--init_from={tmp_path / 'elsewhere' / 'x.h5'}")



def test_train_only_and_pose_from_flags_fill_the_config(train_flags, tmp_path):
  source = config_lib.TrainConfig(data_dir=DATA)
  config_lib.save_or_check(source, str(tmp_path))
  cfg = train_flags(f"--init_from={tmp_path / 'training.weights.h5'}",
                    "--train_only=hand_,pose,orientation", "--pose_from=keypoints+features")
  assert cfg.train_only == ("hand_", "pose", "orientation")
  assert cfg.model == dataclasses.replace(source.model, pose_from="keypoints+features")
  assert train_flags().train_only == ()


def test_the_reference_recipe_trains_the_hand_mask_alone_after_its_run():
  recipe = recipes.load("reference")
  assert [s.name for s in recipe.stages] == ["hand_mask"]
  main = recipes.train_config(recipe, DATA)
  stage = recipes.stage_config(recipe, recipe.stages[0], DATA, "runs/x/train")
  assert not main.model.hand_mask
  assert stage.model.hand_mask and stage.train_only == ("hand_mask",)
  assert stage.init_weights == "runs/x/train" and stage.epochs == 2
  # Everything else is the recipe's: the same network, loss and data.
  assert dataclasses.replace(stage.model, hand_mask=False) == main.model
  assert stage.loss == main.loss and stage.batch_size == main.batch_size


def test_bad_stages_are_refused_with_the_file_and_stage(tmp_path):
  bad = tmp_path / "staged.json"
  base = {"description": "x", "data": {}, "train": {}}
  for stages, message in (
      ([{"name": "a", "train": {}}], r"stages\[0\] must have exactly name, description"),
      ([{"name": "a", "description": "", "train": {"init_weights": "w"}}],
       r"stages\[0\] \(a\) sets data_dir or init_weights"),
      ([{"name": "a", "description": "", "train": {"epochs": 0}}] , "epochs must be >= 1"),
      ([{"name": "a", "description": "", "train": {}}] * 2, "stage names repeat")):
    bad.write_text(json.dumps({**base, "stages": stages}))
    with pytest.raises(ValueError, match=message):
      recipes.load(str(bad))


def test_a_run_saved_before_the_hand_mask_loads_without_it(tmp_path):
  cfg = config_lib.TrainConfig(data_dir="unused")
  saved = json.loads(json.dumps(config_lib.to_dict(cfg)))
  del saved["model"]["hand_mask"]
  with open(tmp_path / config_lib.CONFIG_FILE, "w") as f:
    json.dump(saved, f)
  assert not config_lib.load(str(tmp_path)).model.hand_mask
