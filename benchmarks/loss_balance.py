"""The terms of Eq. 1 under each keypoint reduction: value, share, encoder gradient.

  .venv/bin/python benchmarks/loss_balance.py --data=DIR [--checkpoint=RUN]
      [--batches=4] [--batch_size=32] [--out=benchmarks/results/loss_balance.json]

For a freshly initialised network (seed 0) and, with --checkpoint, for a
trained one, prints for every term of Eq. 1 (the paper's weights) its
unweighted value, its share of the total loss, and the L2 norm of the
gradient that the weighted term sends into the shared encoder (the Tier-1..3
variables), under both keypoint reductions of hand25d.losses ("mean": the
average over score maps, "sum": the sum). Batches are training batches
(augmentation on, seed 0). See docs/training.md, "What limits accuracy".
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import losses
from hand25d.data import pipeline
from hand25d.model import config as model_config
from hand25d.model import network
from hand25d.training import diagnostics
from hand25d.training import evaluation

import tensorflow as tf
import tf_keras as keras

_DATA = flags.DEFINE_string("data", None, "Data set directory.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Also measure this trained run.")
_BATCHES = flags.DEFINE_integer("batches", 4, "Training batches to average over.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Examples per batch.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/loss_balance.json", "JSON output.")


def _table(title: str, result: dict) -> str:
  lines = [title, f"  {'term':5s} {'weight':>6s} {'value':>9s} {'share':>6s} "
                  f"{'encoder grad':>12s} {'grad share':>10s}"]
  for term, r in result.items():
    weight = r["weighted"] / r["value"] if r["value"] else 0.0
    lines.append(f"  {term:5s} {weight:6g} {r['value']:9.3f} {100 * r['share']:5.1f}% "
                 f"{r['grad_norm']:12.4f} {100 * r['grad_share']:9.1f}%")
  return "\n".join(lines)


def main(argv):
  del argv
  batches = list(pipeline.make_dataset(_DATA.value, "train", _BATCH_SIZE.value, training=True,
                                       seed=0)
                 .take(_BATCHES.value))
  models = {}
  keras.utils.set_random_seed(0)
  models["init"] = network.build_training_model(model_config.ModelConfig())
  if _CHECKPOINT.value:
    models["trained"], _, prefix = evaluation.load_model(_CHECKPOINT.value)
    print(f"trained: {prefix}")
  report = {"data": os.path.abspath(_DATA.value), "batches": len(batches),
            "checkpoint": _CHECKPOINT.value, "results": {}}
  for state, model in models.items():
    for reduction in losses.KEYPOINT_REDUCTIONS:
      weights = losses.LossWeights(keypoint_reduction=reduction)
      result = diagnostics.term_gradients(model, batches, weights)
      report["results"][f"{state}/{reduction}"] = result
      print(_table(f"{state} network, keypoint terms reduced by {reduction} over maps:", result))
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  tf.get_logger().setLevel("ERROR")
  app.run(main)
