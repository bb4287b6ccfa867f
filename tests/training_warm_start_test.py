"""Warm start (train_main --init_from): weights matched by layer name, reported, refused."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tf_keras as keras

from hand25d import pretrained
from hand25d.training import config as config_lib
from hand25d.training import evaluation
from hand25d.training import loop
from hand25d.training import recipes
from hand25d.training import warm_start

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
# 8 training frames, batch 4: one epoch is 2 steps; a learning rate of ~0
# keeps the loaded weights. The shipped model's architecture (as train_main
# --init_from=pretrained builds it).
CFG = config_lib.TrainConfig(data_dir=DATA, batch_size=4, epochs=1, learning_rate=1e-12,
                             log_every_steps=1, eval_every_steps=100, max_eval_batches=1,
                             progress=False,
                             model=warm_start.source_config(warm_start.PRETRAINED).model)


def _tiny(names_units):
  inputs = keras.Input((3,))
  x = inputs
  for name, units in names_units:
    x = keras.layers.Dense(units, name=name)(x)
  return keras.Model(inputs, x)


def test_copy_by_name_loads_common_layers_and_reports_the_rest():
  model = _tiny([("a", 4), ("b", 2)])
  source = {"a": [np.full((3, 4), 7.0), np.ones(4)], "c": [np.zeros((2, 2)), np.zeros(2)]}
  before_b = model.get_layer("b").get_weights()
  report = warm_start.copy_by_name(model, source, "src")
  assert report == {"loaded": ["a"], "kept_initial": ["b"], "unused": ["c"]}
  np.testing.assert_array_equal(model.get_layer("a").get_weights()[0], 7.0)
  for got, want in zip(model.get_layer("b").get_weights(), before_b):
    np.testing.assert_array_equal(got, want)


def test_copy_by_name_refuses_a_shape_clash_naming_the_layer_and_sets_nothing():
  model = _tiny([("a", 4), ("b", 2)])
  before = model.get_weights()
  source = {"a": [np.full((3, 4), 7.0), np.ones(4)], "b": [np.zeros((4, 5)), np.zeros(5)]}
  with pytest.raises(ValueError, match=r"layer 'b' has weights of shapes \[\(4, 5\), \(5,\)\] "
                                       r"there but \[\(4, 2\), \(2,\)\]"):
    warm_start.copy_by_name(model, source, "src")
  for got, want in zip(model.get_weights(), before):
    np.testing.assert_array_equal(got, want)


def test_copy_by_name_refuses_a_source_with_no_layer_in_common():
  with pytest.raises(ValueError, match="init_from src: no layer of this model is in it"):
    warm_start.copy_by_name(_tiny([("a", 4)]), {"z": [np.zeros((3, 4)), np.zeros(4)]}, "src")


@pytest.fixture(scope="module")
def shipped():
  """The shipped training model, restored from hand25d/pretrained."""
  model, where = warm_start.load_source(warm_start.PRETRAINED)
  assert where == pretrained.path(pretrained.TRAINING_WEIGHTS)
  return model


@pytest.mark.slow  # Trains.
def test_run_starts_from_the_pretrained_model_without_its_segmentation_head(tmp_path, shipped):
  # No segmentation loss: the new model has no segmentation branch (spatial
  # path, fusion, classifier) and no hand mask, which the shipped one has;
  # the rest is loaded.
  cfg = config_lib.replace(CFG, init_weights="pretrained", loss={"seg": 0.0})
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(cfg, workdir)
  with open(os.path.join(workdir, warm_start.REPORT_FILE)) as f:
    report = json.load(f)
  assert "segmentation_classifier" in report["unused"]
  assert "hand_mask" in report["unused"]
  assert all(n.startswith(("spatial_path", "fusion", "segmentation", "hand_mask"))
             for n in report["unused"])
  assert report["kept_initial"] == [] and "keypoints" in report["loaded"]
  started, _, _ = evaluation.load_model(os.path.join(workdir, "checkpoints"))
  for name in ("tier1_conv", "keypoints", "presence"):
    for a, b in zip(started.get_layer(name).trainable_weights,
                    shipped.get_layer(name).trainable_weights):
      np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
  # A checkpoint (here, that run's workdir) is a source too.
  again = warm_start.warm_start(keras.models.clone_model(started), workdir)
  assert again["source"].endswith("ckpt-2") and again["unused"] == []


@pytest.mark.slow  # Trains.
def test_another_architecture_is_refused_before_anything_is_written(tmp_path):
  cfg = config_lib.replace(CFG, init_weights="pretrained", model={"tier1_channels": 8})
  with pytest.raises(ValueError, match="layer 'tier1_conv' has weights of shapes"):
    loop.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / config_lib.CONFIG_FILE)


def test_a_h5_needs_its_config_beside_it(tmp_path, shipped):
  h5 = str(tmp_path / "start.weights.h5")
  shipped.save_weights(h5)
  with pytest.raises(ValueError, match="no config.json next to it"):
    warm_start.load_source(h5)
  shutil.copy(pretrained.path(pretrained.CONFIG), tmp_path / config_lib.CONFIG_FILE)
  model, where = warm_start.load_source(h5)
  assert where == h5
  np.testing.assert_array_equal(model.get_layer("keypoints").get_weights()[0],
                                shipped.get_layer("keypoints").get_weights()[0])
  with pytest.raises(ValueError, match="init_from .*nope.h5 does not exist"):
    warm_start.load_source(str(tmp_path / "nope.h5"))
  with pytest.raises(ValueError, match="neither 'pretrained', a .h5 file nor a checkpoint"):
    warm_start.load_source(str(tmp_path / "no_run"))


@pytest.mark.slow  # Trains.
def test_resuming_does_not_load_again(tmp_path):
  cfg = config_lib.replace(CFG, init_weights="pretrained", epochs=2)
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(cfg, workdir)
  os.remove(os.path.join(workdir, warm_start.REPORT_FILE))
  loop.train_and_evaluate(cfg, workdir)  # Finished: resumes, loads nothing.
  assert not os.path.exists(os.path.join(workdir, warm_start.REPORT_FILE))


def test_the_quick_recipe_trains_every_head_of_the_shipped_model():
  # docs/pretrained.md fine-tunes with --recipe=quick --init_from=pretrained:
  # the network is the shipped one, and the recipe's losses keep all its heads.
  quick = recipes.train_config(recipes.load("quick"), DATA)
  quick = config_lib.with_heads_for_losses(
      dataclasses.replace(quick, model=warm_start.source_config(warm_start.PRETRAINED).model))
  assert quick.model == config_lib.load(pretrained.DIRECTORY).model


@pytest.mark.slow  # Trains.
def test_train_only_trains_new_pose_heads_on_a_frozen_network(tmp_path, shipped):
  # The keypoint-layout pose heads, new, on the shipped network, frozen:
  # only the heads' weights move; every other weight and BatchNorm
  # statistic stays the shipped model's.
  cfg = config_lib.replace(CFG, init_weights="pretrained", learning_rate=1e-2,
                           train_only=("hand_hidden", "pose", "orientation"),
                           model={"pose_from": "keypoints+features"})
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(cfg, workdir)
  trained, _, _ = evaluation.load_model(os.path.join(workdir, "checkpoints"))
  moved = set()
  for layer in trained.layers:
    if not layer.weights:
      continue
    if layer.name in {l.name for l in shipped.layers if l.weights}:
      before = shipped.get_layer(layer.name).weights
    else:
      before = None
    if before is None or any(not np.array_equal(a.numpy(), b.numpy())
                             for a, b in zip(layer.weights, before)):
      moved.add(layer.name)
  assert moved == {"hand_hidden1", "hand_hidden2", "pose", "orientation"}


def test_train_only_refuses_a_prefix_that_names_no_layer_before_anything_is_written(tmp_path):
  cfg = config_lib.replace(CFG, train_only=("nope_",))
  with pytest.raises(ValueError, match="train_only: no layer with weights of .* starts with "
                                       "'nope_'"):
    loop.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / config_lib.CONFIG_FILE)
