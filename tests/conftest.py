"""Fixtures shared by several test files; pytest's entry point puts tf_keras in effect.

The tests run TensorFlow's oneDNN CPU kernels, as the binaries do (hand25d/console.py
says why), whatever the CPU and whichever test file imports TensorFlow first.
"""

import os

import pytest

from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # Read when TensorFlow is imported.


@pytest.fixture(scope="session")
def randomized_inference_model():
  """Returns make(seed, **config): the hand25d inference network with seeded weights.

  `config` overrides fields of the default ModelConfig.

  The BatchNorm layers get random statistics (not Keras' 0/1), so that
  folding them into the convolutions is exercised. The weights are
  untrained.
  """
  # Imported here, not at the top: most test files never build a model.
  import numpy as np  # pylint: disable=import-outside-toplevel

  from hand25d.model import config as config_lib  # pylint: disable=import-outside-toplevel
  from hand25d.model import network  # pylint: disable=import-outside-toplevel
  import tf_keras as keras  # pylint: disable=import-outside-toplevel

  def make(seed: int, **config) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = network.inference_model(config_lib.ModelConfig(**config))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        shapes = [w.shape for w in layer.get_weights()]
        layer.set_weights([rng.uniform(0.5, 1.5, shapes[0]), rng.normal(0, 0.2, shapes[1]),
                           rng.normal(0, 0.2, shapes[2]), rng.uniform(0.5, 2.0, shapes[3])])
    return model

  return make
