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


# The one binary whose flags a test parses in-process (tests/training_recipes_test.py);
# every other binary runs in a child process (tests/cli_cases.py).
_IN_PROCESS_MAINS = frozenset({"hand25d.train_main"})


@pytest.fixture(autouse=True)
def _one_binary_per_process():
  """Fails a test that defines a second binary's flags on absl's global FLAGS.

  A binary defines its flags (some required) on FLAGS when imported. pytest-xdist
  puts test files on workers in no fixed order, so two binaries imported into one
  worker would make a test's flag parsing fail only on some runs: one is refused
  here on every run instead.
  """
  yield
  from absl import flags  # pylint: disable=import-outside-toplevel
  mains = {module for module in flags.FLAGS.flags_by_module_dict()
           if module.startswith(("hand25d.", "export.", "benchmarks.", "__main__"))}
  extra = mains - _IN_PROCESS_MAINS
  assert not extra, (f"flags of {sorted(extra)} defined in the test process; run the "
                     "binary in a child process with tests/cli_cases.py")
