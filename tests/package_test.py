"""The packages import without side effects; hand25d.legacy_keras makes tf.keras tf_keras.

TensorFlow resolves `tf.keras` when it is first used, so the order of imports
does not matter: only a `tf.keras` used before TF_USE_LEGACY_KERAS=1 is set
is an error, and it says so.
"""

import os
import subprocess
import sys

import pytest

import export
import hand25d


def _run(code: str) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["PYTHONPATH"] = os.pathsep.join(sys.path)
  return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=300)


def test_packages_import():
  assert hand25d.__version__
  assert export.__doc__


def test_importing_hand25d_and_export_sets_nothing():
  result = _run("import os, hand25d, export\nprint(os.environ.get('TF_USE_LEGACY_KERAS'))")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "None"


def test_tf_keras_is_keras_2_in_tests():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tf_keras as keras  # pylint: disable=import-outside-toplevel

  assert os.environ["TF_USE_LEGACY_KERAS"] == "1"  # tests/conftest.py imports legacy_keras.
  assert keras.__version__.startswith("2.")
  # tensorflow-model-optimization uses tf.keras: it must be the same Keras.
  assert tf.keras.layers.Conv2D is keras.layers.Conv2D


# What comes first: TensorFlow, or tensorflow-model-optimization (export/qat.py
# imports it before legacy_keras; tfmot also asks for tf_keras).
_FIRST = {"tensorflow": "import tensorflow as tf\nfrom hand25d import legacy_keras\n"
                        "import tf_keras\nfrom export import qat\n",
          "tfmot": "import tensorflow_model_optimization\nfrom export import qat\n"
                   "import tensorflow as tf\nimport tf_keras\n"}


@pytest.mark.slow  # Each of these starts Python and TensorFlow in a child process.
@pytest.mark.parametrize("first", sorted(_FIRST))
def test_tensorflow_or_tfmot_may_be_imported_first(first):
  result = _run(_FIRST[first] + "print(tf.keras.layers.Conv2D is tf_keras.layers.Conv2D)")
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().endswith("True")


@pytest.mark.slow
def test_tf_keras_used_as_keras_3_first_is_a_clear_error():
  result = _run("import tensorflow as tf\ntf.keras.layers\nfrom hand25d import legacy_keras")
  assert result.returncode != 0
  assert "TF_USE_LEGACY_KERAS=1" in result.stderr
  assert "Import hand25d.legacy_keras before anything uses tf.keras" in result.stderr
