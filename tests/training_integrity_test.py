"""Training on bad data and damaged checkpoints: checked first, named, checkpointed, recoverable."""

import dataclasses
import glob
import json
import os
import shutil

from hand25d import atomic
from hand25d.data import records
from hand25d.training import config as config_lib
from hand25d.training import distribute
from hand25d.training import evaluation
from hand25d.training import loop

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
TRAIN = "train-00000-of-00001.tfrecord"
FLIPPED_BYTE = 145210  # Inside record 3 (of 8) of the fixture's train shard.
# 8 training frames, batch 4: 2 steps per epoch.
CFG = config_lib.TrainConfig(data_dir=DATA, batch_size=4, epochs=1, log_every_steps=1,
                             eval_every_steps=100, checkpoint_every_steps=1,
                             max_eval_batches=1, progress=False)


def _flipped_copy(tmp_path, keep_digests=True) -> str:
  data = str(tmp_path / "data")
  shutil.copytree(DATA, data)
  path = os.path.join(data, TRAIN)
  raw = bytearray(open(path, "rb").read())
  raw[FLIPPED_BYTE] ^= 0xFF
  open(path, "wb").write(bytes(raw))
  if not keep_digests:  # As a manifest without digests: verification cannot see the flip.
    manifest = records.load_manifest(data)
    for info in manifest["splits"].values():
      for shard in info["shards"]:
        del shard["sha256"]
    atomic.write_json(os.path.join(data, records.MANIFEST), manifest)
  return data


def test_bad_data_dir_or_split_is_refused_before_anything_is_written(tmp_path):
  workdir = str(tmp_path / "run")
  with pytest.raises(records.RecordError, match="cannot read manifest"):
    loop.train_and_evaluate(dataclasses.replace(CFG, data_dir=DATA + "_typo"), workdir)
  with pytest.raises(records.RecordError, match="no split 'dev'"):
    loop.train_and_evaluate(dataclasses.replace(CFG, eval_split="dev"), workdir)
  empty = str(tmp_path / "empty_val")
  shutil.copytree(DATA, empty)
  manifest = records.load_manifest(empty)
  manifest["splits"]["val"].update(num_frames=0, shards=[])
  atomic.write_json(os.path.join(empty, records.MANIFEST), manifest)
  with pytest.raises(records.RecordError, match="split 'val' has no frames"):
    loop.train_and_evaluate(dataclasses.replace(CFG, data_dir=empty), workdir)
  with pytest.raises(records.RecordError, match=f"{TRAIN} record 3: corrupt.*\n.*regenerate"):
    loop.train_and_evaluate(dataclasses.replace(CFG, data_dir=_flipped_copy(tmp_path)), workdir)
  assert not os.path.exists(workdir)  # No config.json to block the corrected command.


@pytest.mark.slow  # Trains, stops at the bad record, resumes.
def test_read_error_in_training_checkpoints_names_the_record_and_skip_resumes(tmp_path):
  cfg = dataclasses.replace(CFG, data_dir=_flipped_copy(tmp_path, keep_digests=False))
  workdir = str(tmp_path / "run")
  with pytest.raises(records.RecordError,
                     match=f"(?s){TRAIN} record 3: corrupt.*regenerate.*Step 0 is checkpointed"):
    loop.train_and_evaluate(cfg, workdir)
  assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-0")
  # The recovery the message offers: the same run with --skip_corrupt_records.
  summary = loop.train_and_evaluate(dataclasses.replace(cfg, skip_corrupt_records=True), workdir)
  assert summary["status"] == "finished" and summary["step"] == 2
  with open(os.path.join(workdir, loop.SUMMARY_FILE)) as f:
    assert json.load(f)["skipped_records"]["per_pass"] == {"train": 5, "val": 0}  # 3..7 of 8.

  # A damaged newest checkpoint: training and export fall back to the one before.
  newest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  assert newest.endswith("ckpt-2")
  with open(glob.glob(newest + ".data-*")[0], "r+b") as fp:
    fp.truncate(100)
  _, _, prefix = evaluation.load_model(os.path.join(workdir, "checkpoints"))
  assert prefix.endswith("ckpt-1")
  summary = loop.train_and_evaluate(dataclasses.replace(cfg, skip_corrupt_records=True), workdir)
  assert summary["step"] == 2 and _restores(os.path.join(workdir, "checkpoints", "ckpt-2"))


def _restores(prefix: str) -> bool:
  reader = tf.train.load_checkpoint(prefix)
  return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 2


def _damage(kind: str, prefix: str) -> None:
  data, index = glob.glob(prefix + ".data-*")[0], prefix + ".index"
  if kind == "truncated":
    open(data, "r+b").truncate(10)
  elif kind == "empty":
    open(index, "wb").close()
  elif kind == "corrupt":
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(data, "wb").write(bytes(raw))
  elif kind == "deleted":
    os.remove(index)
    os.remove(data)


@pytest.mark.parametrize("kind", ["truncated", "empty", "corrupt", "deleted"])
def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, kind):
  directory = str(tmp_path)
  value = tf.Variable(tf.zeros([64]))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=value), directory, max_to_keep=3)
  for step in (1, 2):
    value.assign(tf.fill([64], float(step)))
    manager.save(checkpoint_number=step)
  _damage(kind, os.path.join(directory, "ckpt-2"))
  restored = tf.Variable(tf.zeros([64]))
  prefix = distribute.restore_newest(tf.train.Checkpoint(v=restored), directory)
  assert prefix.endswith("ckpt-1") and float(restored[0]) == 1.0
  _damage(kind, os.path.join(directory, "ckpt-1"))
  with pytest.raises(distribute.CorruptCheckpointError, match="no intact checkpoint"):
    distribute.restore_newest(tf.train.Checkpoint(v=restored), directory)
  with pytest.raises(ValueError, match="does not fit"):  # Another model is not damage.
    other = str(tmp_path / "other")
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(tf.zeros([3]))), other,
                               max_to_keep=1).save()
    distribute.restore_newest(tf.train.Checkpoint(v=restored), other)


def test_divergence_is_flagged_by_weights_or_loss():
  model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
  assert loop.divergence(model, 12.0) is None
  assert "last loss 1e+13" in loop.divergence(model, 1e13)
  model.set_weights([np.full_like(w, 1e30) for w in model.get_weights()])
  assert "largest weight 1e+30" in loop.divergence(model, 12.0)
