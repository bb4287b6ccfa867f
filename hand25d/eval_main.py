r"""Evaluates a checkpoint with the paper's metric and more; writes JSON and markdown.

  python -m hand25d.eval_main --data=runs/data --checkpoint=runs/train --out=runs/eval

--checkpoint takes a checkpoint prefix, a checkpoint directory or a run's
workdir (its best checkpoint).
"""

from absl import app
from absl import flags

from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import metrics
from hand25d.training import evaluation

flags.DEFINE_string("data", None, "Data set directory.", required=True)
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, directory or run workdir.",
                    required=True)
flags.DEFINE_string("out", None, "Output directory for metrics.json and metrics.md.",
                    required=True)
flags.DEFINE_string("split", "test", "Split to evaluate.")
flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  res = evaluation.evaluate_checkpoint(FLAGS.checkpoint, FLAGS.data, FLAGS.split, FLAGS.out,
                                       batch_size=FLAGS.batch_size)
  print(f"{res['checkpoint']} on {res['split']} of {res['data_dir']}:\n")
  print(metrics.format_markdown(res))


if __name__ == "__main__":
  app.run(main)
