"""Imports COCO-keypoints JSON + 16-bit amplitude/depth PNGs into TFRecord shards.

  python -m hand25d.data.import_coco_main --json=ann.json --image_root=DIR --out=DATA --split=train

Run once per split into the same --out, which must be new or hold only
imports. See docs/data_format.md for the expected JSON fields and PNG units,
and for what is refused and why (each refusal is one line, "import refused:
...", and exit status 1).
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os

from absl import app
from absl import flags

from hand25d.data import coco

_JSON = flags.DEFINE_string("json", None, "COCO-keypoints JSON file.", required=True)
_IMAGE_ROOT = flags.DEFINE_string("image_root", None, "Root of the image paths (default: "
                                  "the JSON file's directory).")
_OUT = flags.DEFINE_string("out", None, "Output data set directory: new, or one holding "
                           "imports only (their other splits are kept).", required=True)
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "val", "test"], "Split to write.")
_FRAMES_PER_SHARD = flags.DEFINE_integer("frames_per_shard", 256, "Frames per shard file.")


def main(argv):
  del argv
  root = _IMAGE_ROOT.value or os.path.dirname(os.path.abspath(_JSON.value))
  try:
    manifest = coco.import_coco(_JSON.value, root, _OUT.value, _SPLIT.value,
                                _FRAMES_PER_SHARD.value)
  except coco.CocoError as e:  # Input outside the contract: the message says what and where.
    raise SystemExit(f"import refused: {e}") from e
  print({split: info["num_frames"] for split, info in manifest["splits"].items()})


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
