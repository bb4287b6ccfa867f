"""Prints and writes the model card of one or more backbones.

  python -m hand25d.model.card_main --backbone=ours
  python -m hand25d.model.card_main --backbone=ours,mobilenet_v2,densenet121 \
      --markdown=docs/model_card.md
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import spec
from hand25d.model import card
from hand25d.model import config as config_lib

_BACKBONE = flags.DEFINE_list("backbone", ["ours"],
                              f"Backbones to describe, from {config_lib.BACKBONES}.")
_INPUT_MODE = config_flags.define(config_lib.ModelConfig(), "input_mode",
                                  "Network input (recorded; both are one channel).",
                                  choices=spec.INPUT_MODES)
_OUT = flags.DEFINE_string("out", "runs/model_card", "Directory for model_card_<backbone>.json.")
flags.DEFINE_alias("out_dir", "out")  # The old name, for one release.
_MARKDOWN = flags.DEFINE_string("markdown", None, "If set, also write the Markdown card here.")


def main(argv):
  del argv
  cards = []
  for backbone in _BACKBONE.value:
    config = config_lib.ModelConfig(backbone=backbone, input_mode=_INPUT_MODE.value)
    cards.append(card.model_card(config))
    print(card.summary(cards[-1]), flush=True)
    path = os.path.join(_OUT.value, f"model_card_{backbone}.json")
    atomic.write_json(path, cards[-1])
    print(f"  wrote {path}")
  if _MARKDOWN.value:
    atomic.write_text(_MARKDOWN.value, card.markdown(cards))
    print(f"wrote {_MARKDOWN.value}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
