"""Generates a synthetic TOF hand data set (sharded TFRecord + manifest).

  python -m hand25d.data.generate_main --out=/tmp/tof --num_frames=400 --seed=0 --workers=2

Rerunning the same command after a kill completes only the missing shards. A
flag value the config refuses is a usage error; an --out that cannot take the
data set (a file, another config's data set) is refused in one line.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

from absl import app
from absl import flags

from hand25d import config_flags
from hand25d.data import generate

_DEFAULT = generate.GeneratorConfig(num_frames=1000)
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_NUM_FRAMES = config_flags.define(_DEFAULT, "num_frames", "Frames in all splits together.")
_SEED = config_flags.define(_DEFAULT, "seed", "Data set seed: same seed, same bytes.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Parallel rendering processes.", lower_bound=1)
_FRAMES_PER_SHARD = config_flags.define(_DEFAULT, "frames_per_shard", "Frames per shard file.")
_HEIGHT = config_flags.define(_DEFAULT, "height", "Sensor height (spec.SENSOR's).")
_WIDTH = config_flags.define(_DEFAULT, "width", "Sensor width (spec.SENSOR's).")
_PHASE_FRAMES = config_flags.define(_DEFAULT, "with_phase_frames",
                                    "Also store the 4 raw phase frames.", name="phase_frames")


def main(argv):
  del argv
  try:
    config = generate.GeneratorConfig(
        num_frames=_NUM_FRAMES.value, seed=_SEED.value, frames_per_shard=_FRAMES_PER_SHARD.value,
        height=_HEIGHT.value, width=_WIDTH.value, with_phase_frames=_PHASE_FRAMES.value)
  except ValueError as e:  # A flag value the config refuses: usage, not a traceback.
    raise app.UsageError(str(e)) from e
  try:
    manifest = generate.generate(config, _OUT.value, workers=_WORKERS.value)
  except generate.DataSetError as e:  # --out cannot take it: the message says which and why.
    raise SystemExit(f"generate refused: {e}") from e
  print({split: info["num_frames"] for split, info in manifest["splits"].items()})


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
