"""The training loop: exact resume after SIGTERM and SIGKILL, safety, evaluation."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

from hand25d.data import pipeline
from hand25d.training import config as config_lib
from hand25d.training import evaluation
from hand25d.training import loop
from hand25d.training import step as step_lib

import numpy as np
import pytest
import tensorflow as tf

# Each test trains (the kill-and-resume runs several times): minutes on 2 cores.
pytestmark = pytest.mark.slow

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
# 8 training frames, batch 4: 2 steps per epoch, 3 epochs.
CFG = config_lib.TrainConfig(data_dir=DATA, batch_size=4, epochs=3, log_every_steps=1,
                             eval_every_steps=100, checkpoint_every_steps=1,
                             deterministic=True, progress=False)


def _final_weights(workdir):
  model, _, prefix = evaluation.load_model(os.path.join(workdir, "checkpoints"))
  assert prefix.endswith("ckpt-6"), prefix
  return model.get_weights()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run: its workdir and final weights."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  summary = loop.train_and_evaluate(CFG, workdir)
  assert summary["status"] == "finished" and summary["step"] == 6
  return workdir, _final_weights(workdir)


def _assert_same(weights, reference_weights):
  for a, b in zip(weights, reference_weights):
    np.testing.assert_array_equal(a, b)


def test_run_writes_config_summary_best_checkpoint_and_logs(reference):
  workdir, _ = reference
  saved = config_lib.load(workdir)
  assert saved.batch_size == 4 and saved.model.segmentation
  with open(os.path.join(workdir, loop.SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary["last_eval"]["num_examples"] > 0
  assert summary["best_mean_px_error"] is not None
  # Rerunning the finished run changes nothing, its last evaluation included.
  assert loop.train_and_evaluate(CFG, workdir) == summary
  assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "best"))
  assert os.listdir(os.path.join(workdir, "train"))  # TensorBoard events.


def test_sigterm_stops_with_a_checkpoint_and_resume_is_exact(tmp_path, reference, monkeypatch):
  make = step_lib.make_train_step

  def make_with_signal(*args, **kwargs):
    train_step = make(*args, **kwargs)
    calls = []

    def step(batch):
      calls.append(1)
      if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
      return train_step(batch)

    return step

  monkeypatch.setattr(step_lib, "make_train_step", make_with_signal)
  summary = loop.train_and_evaluate(CFG, str(tmp_path))
  assert summary["status"] == "stopped by SIGTERM" and summary["step"] == 3
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-3")
  monkeypatch.setattr(step_lib, "make_train_step", make)
  assert loop.train_and_evaluate(CFG, str(tmp_path))["status"] == "finished"
  _assert_same(_final_weights(str(tmp_path)), reference[1])


def test_sigkill_then_resume_is_exact(tmp_path, reference):
  cmd = [sys.executable, "-m", "hand25d.train_main", f"--data={DATA}",
         f"--workdir={tmp_path}", "--batch_size=4", "--epochs=3", "--log_every=1",
         "--eval_every=100", "--checkpoint_every=1", "--deterministic"]
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  index = tmp_path / "checkpoints" / "ckpt-2.index"
  deadline = time.time() + 300
  while not index.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  proc.kill()
  proc.wait()
  assert index.exists(), "the run never wrote its second checkpoint"
  summary = loop.train_and_evaluate(CFG, str(tmp_path))
  assert summary["status"] == "finished"
  _assert_same(_final_weights(str(tmp_path)), reference[1])


def test_resume_with_another_config_is_refused(reference):
  workdir, _ = reference
  with pytest.raises(config_lib.RunConfigError, match=r"another config.*seed: saved 0, now 1"):
    loop.train_and_evaluate(dataclasses.replace(CFG, seed=1), workdir)


def test_checkpoint_of_another_architecture_is_refused(tmp_path, reference):
  workdir, _ = reference
  other = str(tmp_path / "other")
  config_lib.save_or_check(
      dataclasses.replace(CFG, model=dataclasses.replace(CFG.model, tier1_channels=8)),
      other)
  os.symlink(os.path.join(workdir, "checkpoints"), os.path.join(other, "checkpoints"))
  with pytest.raises(ValueError, match="does not fit this model"):
    evaluation.load_model(other)


def test_nonfinite_losses_stop_the_run_without_a_checkpoint(tmp_path, monkeypatch):
  make = pipeline.make_dataset

  def poisoned(*args, **kwargs):
    return make(*args, **kwargs).map(lambda f, t: ({"image": f["image"] * np.nan}, t))

  monkeypatch.setattr(pipeline, "make_dataset", poisoned)
  cfg = dataclasses.replace(CFG, max_nonfinite_steps=2, checkpoint_every_steps=10)
  with pytest.raises(loop.NonFiniteLossError, match="2 consecutive steps"):
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) is None


def test_evaluate_checkpoint_writes_json_and_markdown(tmp_path, reference):
  workdir, _ = reference
  res = evaluation.evaluate_checkpoint(workdir, DATA, "test", str(tmp_path))
  assert res["split"] == "test" and res["num_examples"] > 0
  with open(tmp_path / "metrics.json") as f:
    assert json.load(f)["mean_px_error"] == res["mean_px_error"]
  assert "| mean 2D error" in (tmp_path / "metrics.md").read_text()
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    evaluation.evaluate_checkpoint(str(tmp_path), DATA, "test", str(tmp_path))


def test_checkpoint_at_an_evaluation_step_holds_that_evaluations_best_error(tmp_path):
  """A resume from it compares later evaluations with the right best error."""
  cfg = dataclasses.replace(CFG, epochs=1, eval_every_steps=2, checkpoint_every_steps=2)
  summary = loop.train_and_evaluate(cfg, str(tmp_path))
  reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-2"))
  stored = reader.get_tensor("best_error/.ATTRIBUTES/VARIABLE_VALUE")
  assert stored == pytest.approx(summary["best_mean_px_error"])


class _Killed(BaseException):
  """Stands for a kill: no handler runs, nothing after it is saved."""


def test_kill_between_an_evaluation_and_its_checkpoint_never_makes_best_worse(tmp_path,
                                                                             monkeypatch):
  """best/ is not replaced by a worse model when the resumed run evaluates that step again.

  Killed after step 2's evaluation saved best/ (44.10 px) but before checkpoint
  2, the run resumes from checkpoint 1; evaluating step 2 again gives 47.45 px
  (as an evaluation of a run that is not bit-exact may).
  """
  cfg = dataclasses.replace(CFG, epochs=2, eval_every_steps=2)  # Evaluations at 2 and 4.
  errors = iter([44.10, 47.45, 50.0])
  make = evaluation.make_evaluator

  def make_with_errors(model):
    evaluate = make(model)

    def with_errors(data, **kwargs):
      return dict(evaluate(data, **kwargs), mean_px_error=next(errors))

    return with_errors

  save = tf.train.CheckpointManager.save

  def killed_at_step_2(self, checkpoint_number=None, **kwargs):
    if checkpoint_number == 2 and os.path.basename(self.directory) != loop.BEST_DIR:
      raise _Killed
    return save(self, checkpoint_number=checkpoint_number, **kwargs)

  monkeypatch.setattr(evaluation, "make_evaluator", make_with_errors)
  monkeypatch.setattr(tf.train.CheckpointManager, "save", killed_at_step_2)
  with pytest.raises(_Killed):
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-1")
  monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
  summary = loop.train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "finished" and summary["last_eval"]["mean_px_error"] == 50.0
  assert summary["best_mean_px_error"] == pytest.approx(44.10)
  best = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / loop.BEST_DIR))
  assert best.endswith("ckpt-2")
  reader = tf.train.load_checkpoint(best)
  assert reader.get_tensor("best_error/.ATTRIBUTES/VARIABLE_VALUE") == pytest.approx(44.10)


def test_initial_weights_are_loaded_from_a_checkpoint(tmp_path, reference):
  workdir, _ = reference
  # A run's workdir names its best checkpoint. Two steps at a learning rate of ~0 keep the loaded weights (more cases:
  # tests/training_warm_start_test.py).
  cfg = dataclasses.replace(CFG, epochs=1, init_weights=workdir, learning_rate=1e-12)
  loop.train_and_evaluate(cfg, str(tmp_path / "run"))
  started, _, _ = evaluation.load_model(str(tmp_path / "run" / "checkpoints"))
  model, _, _ = evaluation.load_model(workdir)
  for a, b in zip(started.trainable_weights, model.trainable_weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
  with pytest.raises(ValueError, match="init_from .*nope.h5 does not exist"):
    loop.train_and_evaluate(dataclasses.replace(cfg, init_weights=str(tmp_path / "nope.h5")),
                            str(tmp_path / "run2"))
