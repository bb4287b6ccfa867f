r"""Trains the hand25d network with the multi-task loss of Eq. 1.

  python -m hand25d.train_main --data=runs/data --workdir=runs/train
  python -m hand25d.train_main --data=runs/data --workdir=runs/quick --recipe=quick
  python -m hand25d.train_main --data=MY_DATA --workdir=runs/mine --recipe=quick \
      --init_from=pretrained --epochs=5 --learning_rate=1e-3

Rerunning the same command resumes from the last checkpoint. A run started
from weights (--init_from) builds their network (the model section of the
config they were trained with); model flags given still apply over it. Every loss term
can be re-weighted or switched off (--w_seg=0), as in the paper's Table 1.
With --recipe the run's config is the recipe's (hand25d/training/recipes/);
flags given on the command line override it.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import losses
from hand25d import spec
from hand25d.data import records
from hand25d.model import config as model_config
from hand25d.training import config as config_lib
from hand25d.training import distribute
from hand25d.training import loop
from hand25d.training import overrides
from hand25d.training import recipes

_TRAIN = config_lib.TrainConfig(data_dir="")

config_flags.define(config_lib.TrainConfig, "data_dir",
                    "Data set directory (manifest.json and shards).", name="data")
flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, logs.",
                    required=True)
flags.DEFINE_string("recipe", None, f"Start from a recipe ({', '.join(recipes.names())}) or a "
                    "recipe JSON file; flags given override it.")
# Flag name -> (config section, field, help). Types and defaults come from the
# dataclasses (config_flags).
_FIELDS = {
    "backbone": ("model", "backbone", "Encoder backbone."),
    "input_mode": ("model", "input_mode", "Network input image."),
    "decoder_shuffle": ("model", "decoder_shuffle",
                        "Interleave this many Tier-3 channel blocks before the decoder (0: off)."),
    "decoder_channels": ("model", "decoder_channels",
                         "Width of a dense 1x1 that starts the decoder (0: off, Tier-3's width)."),
    "score_stride": ("model", "score_stride",
                     "Stride at which the decoder forms the 16 score maps (2 or 4)."),
    "batch_size": ("train", "batch_size", "Global batch size."),
    "epochs": ("train", "epochs", "Epochs over the training split."),
    "learning_rate": ("train", "learning_rate", "Adam peak rate; decays to 0."),
    "warmup_steps": ("train", "warmup_steps", "Linear warm-up steps."),
    "seed": ("train", "seed", "Seed of weights and data order."),
    "augment": ("train", "augment", "On-the-fly augmentation."),
    **{f"w_{t}": ("loss", t, f"Weight of L{t}; 0 = off.") for t in losses.TERMS},
    "fingertip_double": ("loss", "fingertip_double", "Fingertip keypoint losses count twice."),
    "keypoint_reduction": ("loss", "keypoint_reduction",
                           "Keypoint terms: sum or mean of the score maps' cross-entropies."),
    "target_sigma_cells": ("loss", "target_sigma_cells",
                           "Keypoint target: 0 one-hot (paper), else a Gaussian of this sigma "
                           "in cells."),
    "log_every": ("train", "log_every_steps", "Steps between log lines."),
    "eval_every": ("train", "eval_every_steps", "Steps between evaluations."),
    "checkpoint_every": ("train", "checkpoint_every_steps", "Steps between checkpoints."),
    "max_eval_batches": ("train", "max_eval_batches", "Limit evaluation batches (0: whole split)."),
    "summary_images": ("train", "summary_images",
                       "Validation frames drawn into TensorBoard at each evaluation (0: none)."),
    "distribution": ("train", "distribution",
                     "tf.distribute strategy; multi_worker reads TF_CONFIG."),
    "deterministic": ("train", "deterministic", "Deterministic ops: bit-identical resumes."),
    "init_from": ("train", "init_weights",
                  "Start a new run from these weights, matched by layer name: 'pretrained' "
                  "(the shipped model), a checkpoint, a run's workdir, or a .h5 next to its "
                  "run's config.json. Its report: WORKDIR/init_from.json."),
    "train_only": ("train", "train_only",
                   "Train only the layers whose names start with one of these prefixes; "
                   "freeze the rest (default: train all)."),
    "hand_mask": ("model", "hand_mask",
                  "Train and export the coarse hand mask that guides keypoint decoding."),
    "hand_mask_channels": ("model", "hand_mask_channels",
                           "Hidden width of the hand mask (0: a single 1x1 convolution)."),
    "pose_from": ("model", "pose_from",
                  "What the pose and orientation heads read: features or keypoints+features."),
    "skip_corrupt_records": ("train", "skip_corrupt_records",
                             "Skip records that fail to read or decode instead of stopping; the "
                             "run's summary.json counts them. Allowed when resuming."),
}
_SECTIONS = {"train": _TRAIN, "model": _TRAIN.model, "loss": _TRAIN.loss}
_CHOICES = {"backbone": model_config.BACKBONES, "input_mode": spec.INPUT_MODES,
            "keypoint_reduction": losses.KEYPOINT_REDUCTIONS,
            "distribution": config_lib.DISTRIBUTIONS, "pose_from": model_config.POSE_FROM}
for _flag, (_section, _field, _help) in _FIELDS.items():
  config_flags.define(_SECTIONS[_section], _field, _help, name=_flag, choices=_CHOICES.get(_flag))
flags.DEFINE_alias("init_weights", "init_from")  # The old name.
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices.")
FLAGS = flags.FLAGS


def _config() -> config_lib.TrainConfig:
  """The run's config: the recipe's (or the defaults), with the flags applied (overrides.py)."""
  return overrides.train_config(FLAGS.data, FLAGS.recipe, {
      (section, field): (FLAGS[flag].value, bool(FLAGS[flag].present))
      for flag, (section, field, _) in _FIELDS.items()})


def main(argv):
  del argv
  if FLAGS.cpu_devices > 1:
    distribute.configure_cpu_devices(FLAGS.cpu_devices)
  try:
    cfg = _config()
  except ValueError as e:  # A flag value the config refuses: usage, not a traceback.
    raise app.UsageError(str(e)) from e
  try:
    summary = loop.train_and_evaluate(cfg, FLAGS.workdir)
  except records.RecordError as e:  # Says what is wrong and how to recover.
    sys.exit(f"data refused: {e}")
  except config_lib.RunConfigError as e:  # Names the workdir or the data set, and why.
    sys.exit(f"run refused: {e}")
  print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']}; "
        f"best validation error {summary['best_mean_px_error']} px"
        + (f"; {summary['diverged']}" if "diverged" in summary else "")
        + (f"; corrupt records skipped per pass: {summary['skipped_records']['per_pass']}"
           if "skipped_records" in summary else ""))


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
