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

import os

from absl import app
from absl import flags

from export.shave import agreement
from export.shave import blob
from export.shave import cost
from export.shave import graph
from export.shave import memory
from export.shave import native
from export.shave import planner
from export.shave import simulator
from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import spec
from hand25d.model import config as config_lib
from hand25d.model import layers
from hand25d.model import network
import tf_keras as keras

_KERAS_MODEL = flags.DEFINE_string(
    "keras_model", None, "Saved tf_keras inference model (.keras or .h5); by default the "
    "hand25d inference network of --input_height x --input_width with fresh weights (the "
    "latency does not depend on the weights).")
_INPUT_HEIGHT = config_flags.define(config_lib.ModelConfig(), "input_height",
                                    "Network input rows.")
_INPUT_WIDTH = config_flags.define(config_lib.ModelConfig(), "input_width",
                                   "Network input columns.")
_DTYPE = flags.DEFINE_enum("dtype", "fp16", sorted(blob.DTYPES),
                           "Storage type: fp16 (8 lanes) or fp32 (4 lanes).")
_SLICE_KB = flags.DEFINE_integer("slice_kb", memory.SLICE_BYTES // 1024,
                                 "Working-memory slice in KiB.")
_SAVE_BLOB = flags.DEFINE_string("save_blob", None,
                                 "Also write the model's SHAVE deployment blob here.")
_BLOB = flags.DEFINE_string("blob", None, "Report on this SHAVE deployment blob instead of a "
                            "Keras model (it fixes the network, type, slice and schedule).")
_TFLITE = flags.DEFINE_string("tflite", None, "With --blob: float32 TFLite model of the same "
                              "network to compare the blob with on --data frames.")
_DATA = flags.DEFINE_string("data", None, "With --tflite: data set of the frames.")
flags.DEFINE_alias("data_dir", "data")  # The old name, for one release.
_SPLIT = flags.DEFINE_string("split", "test", "With --tflite: split of --data.")
_RUNNER = flags.DEFINE_enum("runner", "simulator", ["simulator", "c"],
                            "With --tflite: what executes the blob: the numpy simulator or "
                            "the C kernel (export/shave/kernel) in its slice.")
_MODEL_FLAGS = ("keras_model", "input_height", "input_width", "dtype", "slice_kb", "save_blob")


def _program() -> planner.Program:
  """The program the flags name: a blob, or a Keras model compiled (and saved)."""
  if _BLOB.value:
    given = [f"--{name}" for name in _MODEL_FLAGS if not flags.FLAGS[name].using_default_value]
    if given:
      raise app.UsageError(f"--blob fixes the network, type and slice; drop {', '.join(given)}")
    program = blob.read_blob(_BLOB.value)
    print(f"{_BLOB.value}: SHAVE blob v{blob.VERSION}, {len(program.network.layers)} layers, "
          f"{os.path.getsize(_BLOB.value)} bytes\n")
    return program
  if _KERAS_MODEL.value:
    model = keras.models.load_model(
        _KERAS_MODEL.value, compile=False,
        custom_objects=layers.CUSTOM_OBJECTS)
  else:
    model = network.inference_model(config_lib.ModelConfig(input_height=_INPUT_HEIGHT.value,
                                                           input_width=_INPUT_WIDTH.value))
  capacity = _SLICE_KB.value * 1024
  if _SAVE_BLOB.value:
    summary = blob.write_blob(model, _SAVE_BLOB.value, _DTYPE.value, capacity)
    print(f"wrote {_SAVE_BLOB.value}: {summary}\n")
    return blob.read_blob(_SAVE_BLOB.value)
  return planner.compile_network(graph.from_keras(model), blob.DTYPES[_DTYPE.value],
                                   capacity=capacity)


def main(argv):
  del argv
  if _TFLITE.value and not (_BLOB.value and _DATA.value):
    raise app.UsageError("--tflite needs --blob and --data")
  program = _program()
  print(cost.report(program))
  if _TFLITE.value:
    with open(_TFLITE.value, "rb") as f:
      tflite_model = f.read()
    frames = agreement.load_labelled_frames(_DATA.value, _SPLIT.value, program)
    run = None
    if _RUNNER.value == "c":
      with open(_BLOB.value, "rb") as f:
        runner = native.Runner(f.read(), _BLOB.value)
      print()
      print(_c_kernel_figures(program, runner, frames[0][0]))
      run = lambda image: runner.run(image).outputs  # noqa: E731
    print()
    print(agreement.format_agreement(agreement.compare(program, tflite_model, frames, run)))


def _c_kernel_figures(program: planner.Program, runner: native.Runner, image) -> str:
  """The C kernel's slice and DMA figures on one frame, next to the simulator's.

  Raises:
    RuntimeError: they differ (the C kernel does not run the blob's schedule).
  """
  c = runner.run(image)
  reports = simulator.run(program, image).reports
  want_peak = max(r.peak_bytes for r in reports)
  want_dma = sum(r.dma_bytes for r in reports)
  if (c.peak_bytes, c.dma_bytes) != (want_peak, want_dma):
    raise RuntimeError(f"{_BLOB.value}: the C kernel used {c.peak_bytes} slice bytes and "
                       f"{c.dma_bytes} DMA bytes, the simulator {want_peak} and {want_dma}")
  return (f"C kernel: peak slice {c.peak_bytes} of {runner.slice.size} bytes, DMA "
          f"{c.dma_bytes} bytes per frame; both equal to the simulator's")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
