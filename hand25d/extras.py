"""What the commands need beyond the runtime, and a one-line refusal when it is missing.

`pip install hand25d` (or `hand25d[runtime]`) installs the deployable runtime
alone: numpy, the LiteRT and TFLM interpreters and Pillow, no TensorFlow.
The console commands need an extra of pyproject.toml:
  track  hand25d-track, the runtime's demo (absl flags, matplotlib reports,
         numba for the data engine's kernels that render its synthetic clips);
  train  every other command (TensorFlow, tf-keras, tfmot, tensorboard,
         isal, and track's).
A command started without its extra stops with one line that names what is
missing and the pip command that installs it, not an ImportError's
traceback: `hand25d.console` (imported first by the TensorFlow binaries)
requires `train`, `hand25d.runtime.demo.run_main` requires `track`.

Standard library only, and modules are looked up without being imported, so
it runs before anything third-party is. tests/packaging_test.py keeps
PROVIDES equal to pyproject.toml's extras.
"""

import importlib.util
import os
import sys

_TRACK = {"absl": "absl-py", "matplotlib": "matplotlib", "numba": "numba"}
# Extra -> {top-level module: the distribution that installs it}.
PROVIDES = {
    "track": _TRACK,
    "train": {
        "tensorflow": "tensorflow",
        "tf_keras": "tf-keras",
        "tensorboard": "tensorboard",
        "tensorflow_model_optimization": "tensorflow-model-optimization",
        "isal": "isal",
        **_TRACK,
    },
}


def missing(extra: str) -> list[str]:
  """The distributions of `extra` whose modules cannot be found, in PROVIDES' order."""
  return [dist for module, dist in PROVIDES[extra].items()
          if importlib.util.find_spec(module) is None]


def require(extra: str) -> None:
  """Stops the command if a module of `extra` is not installed.

  Args:
    extra: a key of PROVIDES.

  Raises:
    SystemExit: with the one line "<command> needs <distributions> (not
      installed): pip install 'hand25d[<extra>]'" (Python prints it and
      exits with status 1).
  """
  absent = missing(extra)
  if absent:
    command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "this command"
    raise SystemExit(f"{command} needs {', '.join(absent)} (not installed): "
                     f"pip install 'hand25d[{extra}]'")
