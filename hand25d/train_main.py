r"""Trains the hand25d network with the multi-task loss of Eq. 1.

  python -m hand25d.train_main --data=runs/data --workdir=runs/train

Rerunning the same command resumes from the last checkpoint. Every loss term
can be re-weighted or switched off (--w_seg=0), as in the paper's Table 1.
"""

from absl import app
from absl import flags

from hand25d import losses
from hand25d.model import config as model_config
from hand25d.training import config as config_lib
from hand25d.training import distribute
from hand25d.training import loop

_DEFAULTS = config_lib.TrainConfig(data_dir="")
_WEIGHTS = losses.LossWeights()

flags.DEFINE_string("data", None, "Data set directory (manifest.json and shards).",
                    required=True)
flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, logs.",
                    required=True)
flags.DEFINE_enum("backbone", "ours", model_config.BACKBONES, "Encoder backbone.")
flags.DEFINE_enum("input_mode", "amplitude", ("amplitude", "depth"), "Network input image.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Epochs over the training split.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam start rate, decays to 0.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of weights and data order.")
flags.DEFINE_bool("augment", _DEFAULTS.augment, "On-the-fly augmentation.")
for _term in losses.TERMS:
  flags.DEFINE_float(f"w_{_term}", getattr(_WEIGHTS, _term), f"Weight of L{_term}; 0 = off.")
flags.DEFINE_bool("fingertip_double", True, "Fingertip keypoint losses count twice.")
flags.DEFINE_integer("log_every", _DEFAULTS.log_every_steps, "Steps between log lines.")
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every_steps, "Steps between evaluations.")
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every_steps,
                     "Steps between checkpoints.")
flags.DEFINE_integer("max_eval_batches", 0, "Limit evaluation batches (0: whole split).")
flags.DEFINE_enum("distribution", "auto", config_lib.DISTRIBUTIONS,
                  "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_bool("deterministic", False, "Deterministic ops: bit-identical resumes.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.cpu_devices > 1:
    distribute.configure_cpu_devices(FLAGS.cpu_devices)
  weights = losses.LossWeights(fingertip_double=FLAGS.fingertip_double,
                               **{t: FLAGS[f"w_{t}"].value for t in losses.TERMS})
  cfg = config_lib.TrainConfig(
      data_dir=FLAGS.data,
      model=model_config.ModelConfig(backbone=FLAGS.backbone, input_mode=FLAGS.input_mode),
      loss=weights, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
      learning_rate=FLAGS.learning_rate, seed=FLAGS.seed, augment=FLAGS.augment,
      log_every_steps=FLAGS.log_every, eval_every_steps=FLAGS.eval_every,
      checkpoint_every_steps=FLAGS.checkpoint_every, max_eval_batches=FLAGS.max_eval_batches,
      distribution=FLAGS.distribution, deterministic=FLAGS.deterministic)
  summary = loop.train_and_evaluate(cfg, FLAGS.workdir)
  print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']}; "
        f"best validation error {summary['best_mean_px_error']} px")


if __name__ == "__main__":
  app.run(main)
