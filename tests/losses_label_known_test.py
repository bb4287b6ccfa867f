"""Label-known flags end to end: fixture batches train as before, unknown labels not at all."""

import os
import shutil
import subprocess
import sys

import numpy as np

from hand25d import losses
from hand25d import spec
from hand25d.data import coco
from hand25d.data import pipeline

import tensorflow as tf  # After hand25d.

TESTDATA = os.path.join(os.path.dirname(__file__), "..", "testdata")
FIXTURE = os.path.join(TESTDATA, "tof_tiny")
# compute_losses on _outputs(8) and the first fixture batch, by the code before
# the flags existed (the terms are divided by the batch size of 8).
TOTAL_BEFORE_FLAGS = 616.7838745117188


def _outputs(b):
  """Fixed random logits for every head at the default input size."""
  rng = np.random.default_rng(0)
  h, w = spec.INPUT_HEIGHT // spec.OUTPUT_STRIDE, spec.INPUT_WIDTH // spec.OUTPUT_STRIDE
  o = {spec.KEYPOINTS: rng.normal(size=(b, h, w, spec.NUM_PRIMARY_CHANNELS)),
       spec.AUX_KEYPOINTS: rng.normal(size=(b, h, w, spec.NUM_AUX_CHANNELS)),
       spec.VISIBILITY: rng.normal(size=(b, 2, 17)), spec.PRESENCE: rng.normal(size=(b, 2)),
       spec.ORIENTATION: rng.normal(size=(b, 2, 8)),
       spec.POSE: rng.normal(size=(b, 2, spec.NUM_POSE_CLASSES)),
       spec.SEGMENTATION: rng.normal(size=(b, h, w, 3))}
  for s in spec.DEEP_SUPERVISION_STRIDES:
    o[spec.deep_supervision_output(s)] = rng.normal(
        size=(b, spec.INPUT_HEIGHT // s, spec.INPUT_WIDTH // s, spec.NUM_PRIMARY_CHANNELS))
  return {k: tf.constant(v, tf.float32) for k, v in o.items()}


def test_fully_labelled_fixture_batch_has_the_loss_it_had_before_the_flags():
  _, targets = next(iter(pipeline.make_dataset(FIXTURE, "train", 8)))
  assert all(np.all(targets[k].numpy() == 1.0) for k in losses.LABEL_KNOWN.values())
  outputs = _outputs(8)
  got = losses.compute_losses(outputs, targets, losses.LossWeights(), 8)
  np.testing.assert_allclose(got["total"].numpy(), TOTAL_BEFORE_FLAGS, rtol=1e-6)
  without = {k: v for k, v in targets.items() if k not in losses.LABEL_KNOWN.values()}
  old_path = losses.compute_losses(outputs, without, losses.LossWeights(), 8)
  for term, value in old_path.items():
    assert got[term].numpy() == value.numpy(), term


def test_keypoints_only_import_trains_no_segmentation_pose_or_orientation(tmp_path):
  case = str(tmp_path / "case")
  shutil.copytree(os.path.join(TESTDATA, "coco_cases", "keypoints_only"), case)
  out = str(tmp_path / "out")
  coco.import_coco(os.path.join(case, "ann.json"), case, out, "train")
  _, targets = next(iter(pipeline.make_dataset(out, "train", 1)))
  np.testing.assert_array_equal(targets["segmentation_known"], [0.0])
  np.testing.assert_array_equal(targets["pose_known"], [[1.0, 0.0]])
  np.testing.assert_array_equal(targets["orientation_known"], [[1.0, 0.0]])
  outputs = _outputs(1)
  heads = {k: tf.Variable(outputs[k]) for k in (spec.SEGMENTATION, spec.POSE, spec.ORIENTATION)}
  with tf.GradientTape() as tape:
    got = losses.compute_losses({**outputs, **heads}, targets, losses.LossWeights(), 1)
  for term in ("seg", "dhp", "cho"):
    assert got[term].numpy() == 0.0, term
  for grad in tape.gradient(got["total"], list(heads.values())):
    assert not np.any(grad.numpy())
  assert got["kp"].numpy() > 0.0  # The keypoints it does label still train.


_MIRRORED = """
import sys
import numpy as np
from hand25d.training import distribute
distribute.configure_cpu_devices(2)
from hand25d import losses, spec
import tensorflow as tf
rng = np.random.default_rng(0)
b, h, w = 4, 6, 8
outputs = {spec.SEGMENTATION: rng.normal(size=(b, h, w, 3)), spec.POSE: rng.normal(size=(b, 2, 9)),
           spec.ORIENTATION: rng.normal(size=(b, 2, 8))}
targets = {"segmentation": rng.integers(0, 3, (b, h, w)), "pose": rng.integers(0, 9, (b, 2)),
           "orientation": spec.ORIENTATION_SOFT_LABELS[rng.integers(0, 8, (b, 2))],
           "hand_present": np.ones((b, 2)), "segmentation_known": [1, 0, 0, 0],
           "pose_known": [[1, 1], [1, 0], [0, 0], [0, 1]], "orientation_known": np.ones((b, 2))}
outputs = {k: tf.constant(v, tf.float32) for k, v in outputs.items()}
targets = {k: tf.constant(v, tf.int32 if k in ("segmentation", "pose") else tf.float32)
           for k, v in targets.items()}
weights = losses.LossWeights(kp=0, akp=0, kphv=0, ds=0)
whole = losses.compute_losses(outputs, targets, weights, b)
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
half = lambda ctx, d: {k: v[ctx.replica_id_in_sync_group * 2:][:2] for k, v in d.items()}
o = two.experimental_distribute_values_from_function(lambda ctx: half(ctx, outputs))
t = two.experimental_distribute_values_from_function(lambda ctx: half(ctx, targets))
run = tf.function(lambda o, t: two.run(losses.compute_losses, (o, t, weights, b)))
per_replica = run(o, t)
for k, v in whole.items():
  got = float(two.reduce(tf.distribute.ReduceOp.SUM, per_replica[k], axis=None))
  np.testing.assert_allclose(got, float(v), rtol=1e-6, err_msg=k)
print("MIRRORED_OK")
"""


def test_known_label_count_is_global_over_replicas():
  """Split over 2 replicas, the terms add up to the whole batch's (the count is all-reduced)."""
  result = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True, text=True,
                          timeout=600)
  assert "MIRRORED_OK" in result.stdout, result.stderr[-3000:]
