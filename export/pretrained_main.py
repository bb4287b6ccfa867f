r"""Builds the trained model shipped in hand25d/pretrained: data, training, export, card.

  python -m export.pretrained_main --recipe=quick --workdir=runs/pretrained --install

Every stage resumes: rerunning the same command after an interruption goes
on where it stopped. See docs/pretrained.md.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

from absl import app

from export import pretrained
from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.training import recipes

_DEFAULT = pretrained.BuildConfig(recipe="quick", workdir="runs/pretrained")
_RECIPE = config_flags.define(_DEFAULT, "recipe", f"A recipe ({', '.join(recipes.names())}) or "
                              "a recipe JSON file.")
_WORKDIR = config_flags.define(_DEFAULT, "workdir",
                               "Where the data set, the run and the exports go.")
_SEED = config_flags.define(_DEFAULT, "seed",
                            "Training seed (the data set's seed is the recipe's).")
_WORKERS = config_flags.define(_DEFAULT, "workers", "Processes generating the data set.")
_INSTALL = config_flags.define(_DEFAULT, "install", "Copy the results into hand25d/pretrained/.")
_QAT_STEPS = config_flags.define(_DEFAULT, "qat_steps",
                                 "Quantization-aware fine-tuning steps of the int8 model.")
_LATENCY_INVOKES = config_flags.define(_DEFAULT, "latency_invokes",
                                       "Timed invokes per model for the latency figures.")


def main(argv):
  del argv
  card = pretrained.build(pretrained.BuildConfig(
      recipe=_RECIPE.value, workdir=_WORKDIR.value, seed=_SEED.value, workers=_WORKERS.value,
      install=_INSTALL.value, qat_steps=_QAT_STEPS.value,
      latency_invokes=_LATENCY_INVOKES.value))
  print(pretrained.card_markdown(card))


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
