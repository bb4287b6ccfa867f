r"""Prints the modelled SHAVE latency of a network, ours vs naive (Table 3).

  python -m export.shave.shave_main                    # hand25d inference net
  python -m export.shave.shave_main --dtype=fp32
  python -m export.shave.shave_main --keras_model=model.keras --save_blob=model.blob
  python -m export.shave.shave_main --blob=model.blob
  python -m export.shave.shave_main --blob=model.blob --tflite=model.tflite \
      --data=testdata/tof_tiny
  python -m export.shave.shave_main --blob=model.blob --tflite=model.tflite \
      --data=testdata/tof_tiny --runner=c

A Keras model is compiled for the slice (--save_blob also writes the
deployment blob); a blob holds its layers, weights, type, slice and schedule.
The program runs in the simulated slice and the cost model prices it; with
--tflite the blob is also compared with the float32 TFLite model on the
frames of --data, executed by the numpy simulator or (--runner=c) by the C
kernel in its 128 KB slice, whose peak slice bytes and DMA bytes are checked
against the simulator's on the first frame (docs/embedded.md).
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from export.shave import blob
from export.shave import program_report
from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.model import config as config_lib

_DEFAULT = program_report.ReportConfig()
_KERAS_MODEL = flags.DEFINE_string(
    "keras_model", None, "Saved tf_keras inference model (.keras or .h5); by default the "
    "hand25d inference network of --input_height x --input_width with fresh weights (the "
    "latency does not depend on the weights).")
_INPUT_HEIGHT = config_flags.define(config_lib.ModelConfig(), "input_height",
                                    "Network input rows.")
_INPUT_WIDTH = config_flags.define(config_lib.ModelConfig(), "input_width",
                                   "Network input columns.")
_DTYPE = flags.DEFINE_enum("dtype", _DEFAULT.dtype, sorted(blob.DTYPES),
                           "Storage type: fp16 (8 lanes) or fp32 (4 lanes).")
_SLICE_KB = flags.DEFINE_integer("slice_kb", _DEFAULT.slice_kb,
                                 "Working-memory slice in KiB.")
_SAVE_BLOB = flags.DEFINE_string("save_blob", None,
                                 "Also write the model's SHAVE deployment blob here.")
_BLOB = flags.DEFINE_string("blob", None, "Report on this SHAVE deployment blob instead of a "
                            "Keras model (it fixes the network, type, slice and schedule).")
_TFLITE = flags.DEFINE_string("tflite", None, "With --blob: float32 TFLite model of the same "
                              "network to compare the blob with on --data frames.")
_DATA = flags.DEFINE_string("data", None, "With --tflite: data set of the frames.")
flags.DEFINE_alias("data_dir", "data")  # The old name, for one release.
_SPLIT = flags.DEFINE_string("split", _DEFAULT.split, "With --tflite: split of --data.")
_RUNNER = flags.DEFINE_enum("runner", _DEFAULT.runner, list(program_report.RUNNERS),
                            "With --tflite: what executes the blob: the numpy simulator or "
                            "the C kernel (export/shave/kernel) in its slice.")
_MODEL_FLAGS = ("keras_model", "input_height", "input_width", "dtype", "slice_kb", "save_blob")


def main(argv):
  del argv
  if _TFLITE.value and not (_BLOB.value and _DATA.value):
    raise app.UsageError("--tflite needs --blob and --data")
  given = [f"--{name}" for name in _MODEL_FLAGS if not flags.FLAGS[name].using_default_value]
  if _BLOB.value and given:
    raise app.UsageError(f"--blob fixes the network, type and slice; drop {', '.join(given)}")
  config = program_report.ReportConfig(
      keras_model=_KERAS_MODEL.value, input_height=_INPUT_HEIGHT.value,
      input_width=_INPUT_WIDTH.value, dtype=_DTYPE.value, slice_kb=_SLICE_KB.value,
      save_blob=_SAVE_BLOB.value, blob=_BLOB.value, tflite=_TFLITE.value, data=_DATA.value,
      split=_SPLIT.value, runner=_RUNNER.value)
  try:
    for text in program_report.lines(config):
      print(text)
  except (OSError, ValueError) as e:  # A blob (blob.BlobError), model or data set, named.
    sys.exit(f"shave refused: {e}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
