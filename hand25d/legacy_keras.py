"""`tf.keras` as Keras 2 (tf_keras), the Keras hand25d is written in.

hand25d builds its models with `import tf_keras as keras`, because
tensorflow-model-optimization (export/qat.py) does not support Keras 3. tfmot
reaches Keras through `tf.keras`, which must then be tf_keras as well.
TensorFlow decides what `tf.keras` is the first time it is used (not when
TensorFlow is imported), from the environment variable TF_USE_LEGACY_KERAS.

Importing this module sets TF_USE_LEGACY_KERAS=1. The entry points that build
Keras models (train_main, eval_main, card_main, the export and experiment
binaries, benchmarks, tests/conftest.py) and the modules that need `tf.keras`
(export/qat.py) import it; `import hand25d` alone does not. TensorFlow may be
imported before it; only a `tf.keras` already resolved to another Keras is an
error, and this module says so.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _check() -> None:
  """Raises ImportError if TensorFlow has already resolved `tf.keras` to another Keras."""
  tf = sys.modules.get("tensorflow")
  if tf is None:
    return  # TensorFlow will read the variable when it loads tf.keras.
  import tf_keras  # pylint: disable=import-outside-toplevel

  if tf.keras.layers.Conv2D is not tf_keras.layers.Conv2D:
    raise ImportError(
        "hand25d needs tf.keras to be tf_keras (Keras 2), but tf.keras was used as "
        f"{tf.keras.__name__} before TF_USE_LEGACY_KERAS=1 was set. Import "
        "hand25d.legacy_keras before anything uses tf.keras, or set TF_USE_LEGACY_KERAS=1 "
        "in the environment.")


_check()
