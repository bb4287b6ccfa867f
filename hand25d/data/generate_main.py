"""Generates a synthetic TOF hand data set (sharded TFRecord + manifest).

  python -m hand25d.data.generate_main --out=/tmp/tof --num_frames=400 --seed=0 --workers=2

Rerunning the same command after a kill completes only the missing shards.
"""

from absl import app
from absl import flags

from hand25d.data import generate

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 1000, "Frames in all splits together.")
_SEED = flags.DEFINE_integer("seed", 0, "Data set seed: same seed, same bytes.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Parallel rendering processes.")
_FRAMES_PER_SHARD = flags.DEFINE_integer("frames_per_shard", 256, "Frames per shard file.")
_HEIGHT = flags.DEFINE_integer("height", None, "Sensor height (default: spec.SENSOR).")
_WIDTH = flags.DEFINE_integer("width", None, "Sensor width (default: spec.SENSOR).")
_PHASE_FRAMES = flags.DEFINE_bool("phase_frames", False, "Also store the 4 raw phase frames.")


def main(argv):
  del argv
  kwargs = {k: v for k, v in (("height", _HEIGHT.value), ("width", _WIDTH.value)) if v}
  config = generate.GeneratorConfig(
      num_frames=_NUM_FRAMES.value, seed=_SEED.value, frames_per_shard=_FRAMES_PER_SHARD.value,
      with_phase_frames=_PHASE_FRAMES.value, **kwargs)
  manifest = generate.generate(config, _OUT.value, workers=_WORKERS.value)
  print({split: info["num_frames"] for split, info in manifest["splits"].items()})


if __name__ == "__main__":
  app.run(main)
