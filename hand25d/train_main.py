r"""Trains the hand25d network with the multi-task loss of Eq. 1.

  python -m hand25d.train_main --data=runs/data --workdir=runs/train
  python -m hand25d.train_main --data=runs/data --workdir=runs/quick --recipe=quick

Rerunning the same command resumes from the last checkpoint. Every loss term
can be re-weighted or switched off (--w_seg=0), as in the paper's Table 1.
With --recipe the run's config is the recipe's (hand25d/training/recipes/);
flags given on the command line override it.
"""

import sys

from absl import app
from absl import flags

from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import losses
from hand25d.data import records
from hand25d.model import config as model_config
from hand25d.training import config as config_lib
from hand25d.training import distribute
from hand25d.training import loop
from hand25d.training import recipes

_TRAIN = config_lib.TrainConfig(data_dir="")
_MODEL = model_config.ModelConfig()
_WEIGHTS = losses.LossWeights()

flags.DEFINE_string("data", None, "Data set directory (manifest.json and shards).",
                    required=True)
flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, logs.",
                    required=True)
flags.DEFINE_string("recipe", None, f"Start from a recipe ({', '.join(recipes.names())}) or a "
                    "recipe JSON file; flags given override it.")
# Flag name -> (config section, field). Defaults come from the dataclasses.
_FIELDS = {
    "backbone": ("model", "backbone"),
    "input_mode": ("model", "input_mode"),
    "decoder_shuffle": ("model", "decoder_shuffle"),
    "decoder_channels": ("model", "decoder_channels"),
    "batch_size": ("train", "batch_size"),
    "epochs": ("train", "epochs"),
    "learning_rate": ("train", "learning_rate"),
    "warmup_steps": ("train", "warmup_steps"),
    "seed": ("train", "seed"),
    "augment": ("train", "augment"),
    **{f"w_{t}": ("loss", t) for t in losses.TERMS},
    "fingertip_double": ("loss", "fingertip_double"),
    "keypoint_reduction": ("loss", "keypoint_reduction"),
    "target_sigma_cells": ("loss", "target_sigma_cells"),
    "log_every": ("train", "log_every_steps"),
    "eval_every": ("train", "eval_every_steps"),
    "checkpoint_every": ("train", "checkpoint_every_steps"),
    "max_eval_batches": ("train", "max_eval_batches"),
    "distribution": ("train", "distribution"),
    "deterministic": ("train", "deterministic"),
    "init_weights": ("train", "init_weights"),
    "skip_corrupt_records": ("train", "skip_corrupt_records"),
}
flags.DEFINE_enum("backbone", _MODEL.backbone, model_config.BACKBONES, "Encoder backbone.")
flags.DEFINE_enum("input_mode", _MODEL.input_mode, ("amplitude", "depth"), "Network input image.")
flags.DEFINE_integer("decoder_shuffle", _MODEL.decoder_shuffle,
                     "Interleave this many Tier-3 channel blocks before the decoder (0: off).")
flags.DEFINE_integer("decoder_channels", _MODEL.decoder_channels,
                     "Width of a dense 1x1 that starts the decoder (0: off, Tier-3's width).")
flags.DEFINE_integer("batch_size", _TRAIN.batch_size, "Global batch size.")
flags.DEFINE_integer("epochs", _TRAIN.epochs, "Epochs over the training split.")
flags.DEFINE_float("learning_rate", _TRAIN.learning_rate, "Adam peak rate; decays to 0.")
flags.DEFINE_integer("warmup_steps", _TRAIN.warmup_steps, "Linear warm-up steps.")
flags.DEFINE_integer("seed", _TRAIN.seed, "Seed of weights and data order.")
flags.DEFINE_bool("augment", _TRAIN.augment, "On-the-fly augmentation.")
for _term in losses.TERMS:
  flags.DEFINE_float(f"w_{_term}", getattr(_WEIGHTS, _term), f"Weight of L{_term}; 0 = off.")
flags.DEFINE_bool("fingertip_double", _WEIGHTS.fingertip_double,
                  "Fingertip keypoint losses count twice.")
flags.DEFINE_enum("keypoint_reduction", _WEIGHTS.keypoint_reduction, losses.KEYPOINT_REDUCTIONS,
                  "Keypoint terms: sum or mean of the score maps' cross-entropies.")
flags.DEFINE_float("target_sigma_cells", _WEIGHTS.target_sigma_cells,
                   "Keypoint target: 0 one-hot (paper), else a Gaussian of this sigma in cells.")
flags.DEFINE_integer("log_every", _TRAIN.log_every_steps, "Steps between log lines.")
flags.DEFINE_integer("eval_every", _TRAIN.eval_every_steps, "Steps between evaluations.")
flags.DEFINE_integer("checkpoint_every", _TRAIN.checkpoint_every_steps,
                     "Steps between checkpoints.")
flags.DEFINE_integer("max_eval_batches", _TRAIN.max_eval_batches,
                     "Limit evaluation batches (0: whole split).")
flags.DEFINE_enum("distribution", _TRAIN.distribution, config_lib.DISTRIBUTIONS,
                  "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_bool("deterministic", _TRAIN.deterministic, "Deterministic ops: bit-identical resumes.")
flags.DEFINE_string("init_weights", _TRAIN.init_weights,
                    "Start from these .h5 weights (by layer name), e.g. "
                    "hand25d/pretrained/training.weights.h5 to fine-tune the shipped model.")
flags.DEFINE_bool("skip_corrupt_records", _TRAIN.skip_corrupt_records,
                  "Skip records that fail to read or decode instead of stopping; the run's "
                  "summary.json counts them. Allowed when resuming.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices.")
FLAGS = flags.FLAGS


def _config() -> config_lib.TrainConfig:
  """The run's config: the recipe's (or the defaults), with the flags applied."""
  if FLAGS.recipe:
    base = recipes.train_config(recipes.load(FLAGS.recipe), FLAGS.data)
  else:
    base = config_lib.TrainConfig(data_dir=FLAGS.data)
  given = {"model": {}, "loss": {}, "train": {}}
  for flag, (section, field) in _FIELDS.items():
    if not FLAGS.recipe or FLAGS[flag].present:
      given[section][field] = FLAGS[flag].value
  return config_lib.replace(base, **given["train"], model=given["model"], loss=given["loss"])


def main(argv):
  del argv
  if FLAGS.cpu_devices > 1:
    distribute.configure_cpu_devices(FLAGS.cpu_devices)
  try:
    summary = loop.train_and_evaluate(_config(), FLAGS.workdir)
  except records.RecordError as e:  # Says what is wrong and how to recover.
    sys.exit(f"data refused: {e}")
  print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']}; "
        f"best validation error {summary['best_mean_px_error']} px"
        + (f"; {summary['diverged']}" if "diverged" in summary else "")
        + (f"; corrupt records skipped per pass: {summary['skipped_records']['per_pass']}"
           if "skipped_records" in summary else ""))


if __name__ == "__main__":
  app.run(main)
