r"""Builds the SHAVE C kernel library and its TensorFlow op (make runs it after installing).

  python -m export.shave.build_main

Both are compiled into the cache of export/shave/cbuild.py (where they would
otherwise be built on first use) and loaded once; the paths are printed. A
missing compiler or a compile error fails here, with the compiler's message.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

from absl import app

from export.shave import native
from export.shave import tf_op
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)


def main(argv):
  del argv
  fp16 = "_Float16" if native.library().shv_native_fp16() else "software conversion"
  print(f"SHAVE C kernel: {native.library_path()} (fp16 via {fp16})")
  tf_op.op_library()
  print(f"ShaveConv2D TensorFlow op: {tf_op.library_path()}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
