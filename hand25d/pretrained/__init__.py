"""The trained hand25d model shipped with the package.

Files (package data, made by `python -m export.pretrained_main`, see
docs/pretrained.md):

  hand25d_float32.tflite   the inference network, float32 TFLite
  hand25d_int8.tflite      the same, int8 (quantization-aware trained)
  training.weights.h5      weights of the whole training model (all heads),
                           for fine-tuning: build it from config.json with
                           hand25d.model.network.build_training_model
  config.json              the training run's config (hand25d.training.config)
  model_card.json          data, recipe, metrics on the test users, latency,
  model_card.md            sizes, intended use and limits

`path(name)` finds one. This module imports nothing but the standard
library, so the runtime can use it without TensorFlow.
"""

import os

FLOAT32 = "hand25d_float32.tflite"
INT8 = "hand25d_int8.tflite"
TRAINING_WEIGHTS = "training.weights.h5"
CONFIG = "config.json"
MODEL_CARD_JSON = "model_card.json"
MODEL_CARD_MD = "model_card.md"
FILES = (FLOAT32, INT8, TRAINING_WEIGHTS, CONFIG, MODEL_CARD_JSON, MODEL_CARD_MD)
DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def path(name: str = FLOAT32) -> str:
  """The absolute path of a shipped file.

  Args:
    name: one of FILES (default: the float32 TFLite model).

  Raises:
    ValueError: `name` is not a shipped file.
    FileNotFoundError: the file is missing from this installation (a source
      checkout where it was never built: run `python -m export.pretrained_main`).
  """
  if name not in FILES:
    raise ValueError(f"{name!r} is not a shipped file; expected one of {FILES}")
  full = os.path.join(DIRECTORY, name)
  if not os.path.exists(full):
    raise FileNotFoundError(f"{full} is missing: this installation has no trained model; "
                            "build it with `python -m export.pretrained_main` "
                            "(docs/pretrained.md)")
  return full
