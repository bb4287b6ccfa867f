r"""Evaluates a checkpoint with the paper's metric and more; writes JSON and markdown.

  python -m hand25d.eval_main --data=runs/data --checkpoint=runs/train --out=runs/eval

--checkpoint takes a checkpoint prefix, a checkpoint directory or a run's
workdir (its best checkpoint). With --mirror_ensemble every output is the
mean of the network's on each image and on its mirror image (hand25d.mirror).
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import metrics
from hand25d.data import records
from hand25d.training import evaluation

flags.DEFINE_string("data", None, "Data set directory.", required=True)
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, directory or run workdir.",
                    required=True)
flags.DEFINE_string("out", None, "Output directory for metrics.json and metrics.md.",
                    required=True)
flags.DEFINE_string("split", "test", "Split to evaluate.")
flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.")
flags.DEFINE_bool("mirror_ensemble", False,
                  "Average the outputs on each image and on its mirror image (2 passes).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  try:
    res = evaluation.evaluate_checkpoint(FLAGS.checkpoint, FLAGS.data, FLAGS.split, FLAGS.out,
                                         batch_size=FLAGS.batch_size,
                                         mirror_ensemble=FLAGS.mirror_ensemble)
  except (FileNotFoundError, records.RecordError) as e:  # Names the file, shard or record.
    sys.exit(f"evaluation failed: {e}")
  print(f"{res['checkpoint']} on {res['split']} of {res['data_dir']}:\n")
  print(metrics.format_markdown(res))


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
