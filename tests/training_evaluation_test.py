"""Evaluation: its data set as the run reads it, and its progress lines (hand25d.progress)."""

import logging
import os
import re

import pytest

from hand25d import metrics
from hand25d import mirror
from hand25d import progress
from hand25d.data import pipeline
from hand25d.model import config as model_config
from hand25d.model import network
from hand25d.training import config as train_config
from hand25d.training import evaluation

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


def test_evaluation_logs_progress_lines_with_an_eta(monkeypatch, caplog):
  """Forced to log at every batch: 4 batches of 2 frames of the tiny data set."""
  monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
  evaluate = evaluation.make_evaluator(network.build_training_model(model_config.ModelConfig()))
  # absl's logger, whose level another test's absl flags may have raised.
  with caplog.at_level(logging.INFO, logger="absl"):
    res = evaluate(pipeline.make_dataset(DATA, "train", 2), total=8, what="eval train")
  assert res["num_examples"] == 8
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("eval train: ")]
  # The first batch (tracing) has no rate yet; then a rate and an ETA; then the final line.
  assert re.fullmatch(r"eval train: 2/8 frames \(25\.0%\), \? frames/s, elapsed \d+:\d\d:\d\d, "
                      r"ETA \?", lines[0]), lines
  assert re.fullmatch(r"eval train: 4/8 frames \(50\.0%\), [\d.]+ frames/s, "
                      r"elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d", lines[1]), lines
  assert re.fullmatch(r"eval train: 8/8 frames \(100\.0%\), [\d.]+ frames/s, done in "
                      r"\d+:\d\d:\d\d", lines[-1]), lines
  assert len(lines) == 4


def test_eval_dataset_reads_the_split_at_the_runs_input_in_order():
  cfg = train_config.TrainConfig(data_dir=DATA, model=model_config.ModelConfig(
      input_mode="depth", input_height=64, input_width=80))
  batches = list(evaluation.eval_dataset(cfg, DATA, "train", batch_size=2, max_batches=3))
  assert len(batches) == 3
  features, targets = batches[0]
  assert features["image"].shape == (2, 64, 80, 1)
  assert "keypoints_depth" not in targets
  again = list(evaluation.eval_dataset(cfg, DATA, "train", batch_size=2, max_batches=3,
                                       with_extras=True))
  # The same frames in the same order, with the analyses' extra targets.
  assert (again[2][0]["image"].numpy() == batches[2][0]["image"].numpy()).all()
  assert again[0][1]["keypoints_depth"].shape[0] == 2


def test_the_mirror_ensemble_evaluates_the_mean_of_both_passes():
  model = network.build_training_model(model_config.ModelConfig())
  data = pipeline.make_dataset(DATA, "train", 2).take(2)
  got = evaluation.make_evaluator(model, mirror_ensemble=True)(data)
  expected = metrics.Evaluator()
  for features, targets in data:
    one, two = (model(image, training=False)
                for image in (features["image"], features["image"][:, :, ::-1]))
    expected.update(mirror.ensemble({k: v.numpy() for k, v in one.items()},
                                    {k: v.numpy() for k, v in two.items()}),
                    {k: v.numpy() for k, v in targets.items()})
  expected = expected.result()
  for key in ("mean_px_error", "median_px_error", "pose_accuracy", "orientation_accuracy",
              "presence_f1", "segmentation_miou"):
    assert got[key] == pytest.approx(expected[key], rel=1e-5), key
  assert got["mean_px_error"] != evaluation.make_evaluator(model)(data)["mean_px_error"]
