"""The packages import, and importing hand25d puts Keras 2 (tf_keras) in effect."""

import os
import subprocess
import sys

import hand25d  # First: it must run before TensorFlow is imported.
import export  # noqa: F401


def test_legacy_keras_env_is_set():
  assert os.environ["TF_USE_LEGACY_KERAS"] == "1"


def test_tf_keras_is_keras_2():
  import tensorflow as tf
  import tf_keras as keras

  assert keras.__version__.startswith("2.")
  # tensorflow-model-optimization uses tf.keras: it must be the same Keras.
  assert tf.keras.layers.Conv2D is keras.layers.Conv2D


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=120)


def test_tensorflow_first_without_env_is_a_clear_error():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["PYTHONPATH"] = os.pathsep.join(sys.path)
  result = _run("import tensorflow\nimport hand25d", env)
  assert result.returncode != 0
  assert "TF_USE_LEGACY_KERAS=1" in result.stderr
  assert "Import hand25d before tensorflow" in result.stderr


def test_import_sets_env_in_fresh_process():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["PYTHONPATH"] = os.pathsep.join(sys.path)
  result = _run("import os, hand25d\nprint(os.environ['TF_USE_LEGACY_KERAS'])", env)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "1"
  assert hand25d.__version__
