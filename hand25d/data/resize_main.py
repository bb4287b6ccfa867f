r"""Writes a copy of a data set at network resolution (see hand25d/data/resize.py).

  python -m hand25d.data.resize_main --data=runs/data --out=runs/data_120x160

Training on the copy gives the same batches up to rounding and skips the
per-frame resize; rerunning the same command completes an interrupted copy.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from hand25d import spec
from hand25d.data import resize

_DATA = flags.DEFINE_string("data", None, "Data set to copy.", required=True)
flags.DEFINE_alias("data_dir", "data")  # The old name, for one release.
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_HEIGHT = flags.DEFINE_integer("height", spec.INPUT_HEIGHT, "Stored height.")
_WIDTH = flags.DEFINE_integer("width", spec.INPUT_WIDTH, "Stored width.")


def main(argv):
  del argv
  try:
    manifest = resize.resize_dataset(_DATA.value, _OUT.value, _HEIGHT.value, _WIDTH.value)
  except ValueError as e:  # records.RecordError names the manifest or shard; the rest the sizes.
    sys.exit(f"resize refused: {e}")
  print({split: info["num_frames"] for split, info in manifest["splits"].items()},
        f"at {manifest['height']}x{manifest['width']} in {_OUT.value}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
