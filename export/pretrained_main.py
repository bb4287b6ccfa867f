r"""Builds the trained model shipped in hand25d/pretrained: data, training, export, card.

  python -m export.pretrained_main --recipe=quick --workdir=runs/pretrained --install

Every stage resumes: rerunning the same command after an interruption goes
on where it stopped. See docs/pretrained.md.
"""

from absl import app
from absl import flags

from export import pretrained
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.training import recipes

_RECIPE = flags.DEFINE_string("recipe", "quick",
                              f"A recipe ({', '.join(recipes.names())}) or a recipe JSON file.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/pretrained",
                               "Where the data set, the run and the exports go.")
_SEED = flags.DEFINE_integer("seed", pretrained.BuildConfig.seed,
                             "Training seed (the data set's seed is the recipe's).")
_WORKERS = flags.DEFINE_integer("workers", pretrained.BuildConfig.workers,
                                "Processes generating the data set.")
_INSTALL = flags.DEFINE_bool("install", False, "Copy the results into hand25d/pretrained/.")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", pretrained.BuildConfig.qat_steps,
                                  "Quantization-aware fine-tuning steps of the int8 model.")
_LATENCY_INVOKES = flags.DEFINE_integer("latency_invokes", pretrained.BuildConfig.latency_invokes,
                                        "Timed invokes per model for the latency figures.")


def main(argv):
  del argv
  card = pretrained.build(pretrained.BuildConfig(
      recipe=_RECIPE.value, workdir=_WORKDIR.value, seed=_SEED.value, workers=_WORKERS.value,
      install=_INSTALL.value, qat_steps=_QAT_STEPS.value,
      latency_invokes=_LATENCY_INVOKES.value))
  print(pretrained.card_markdown(card))


if __name__ == "__main__":
  app.run(main)
