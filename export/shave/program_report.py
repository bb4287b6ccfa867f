"""What shave_main prints about a SHAVE program: its modelled latency, ours vs naive (Table 3).

The program is read from a deployment blob (which fixes its layers,
weights, type, slice and schedule), or compiled from a Keras model for the
slice (and saved as a blob if asked). It runs in the simulated slice and
the cost model prices it (cost.report). With a float32 TFLite model of the
same network the blob is also compared with it on real frames
(agreement.py), executed by the numpy simulator or by the C kernel in its
slice, whose peak slice bytes and DMA bytes are first checked against the
simulator's on one frame (docs/embedded.md).
"""

import dataclasses
import os
from typing import Generator, Iterator, Optional

from export.shave import agreement
from export.shave import blob
from export.shave import cost
from export.shave import graph
from export.shave import memory
from export.shave import native
from export.shave import planner
from export.shave import simulator
from hand25d.model import config as config_lib
from hand25d.model import layers
from hand25d.model import network
import tf_keras as keras

# What executes the blob in the comparison with TFLite.
RUNNERS = ("simulator", "c")


@dataclasses.dataclass(frozen=True)
class ReportConfig:
  """The program to report on, and what to compare it with.

  Attributes:
    keras_model: saved tf_keras inference model (.keras or .h5); None: the
      hand25d inference network of input_height x input_width with fresh
      weights (the latency does not depend on the weights).
    input_height, input_width: that network's input size.
    dtype: storage type of the compiled program (a key of blob.DTYPES).
    slice_kb: working-memory slice of the compiled program, in KiB.
    save_blob: also write the compiled program's deployment blob here.
    blob: report on this deployment blob instead of a Keras model (it fixes
      the network, type, slice and schedule: the fields above are unused).
    tflite: with blob and data: float32 TFLite model of the same network to
      compare the blob with.
    data: data set of the frames compared.
    split: split of data.
    runner: what executes the blob in the comparison (one of RUNNERS).
  """
  keras_model: Optional[str] = None
  input_height: int = config_lib.ModelConfig.input_height
  input_width: int = config_lib.ModelConfig.input_width
  dtype: str = "fp16"
  slice_kb: int = memory.SLICE_BYTES // 1024
  save_blob: Optional[str] = None
  blob: Optional[str] = None
  tflite: Optional[str] = None
  data: Optional[str] = None
  split: str = "test"
  runner: str = "simulator"


def _program(config: ReportConfig) -> Generator[str, None, planner.Program]:
  """The program config names (a blob, or a Keras model compiled and maybe saved).

  Yields what it read or wrote, then a blank line; returns the program.
  """
  if config.blob:
    program = blob.read_blob(config.blob)
    yield (f"{config.blob}: SHAVE blob v{blob.VERSION}, {len(program.network.layers)} layers, "
           f"{os.path.getsize(config.blob)} bytes")
    yield ""
    return program
  if config.keras_model:
    model = keras.models.load_model(config.keras_model, compile=False,
                                    custom_objects=layers.CUSTOM_OBJECTS)
  else:
    model = network.inference_model(config_lib.ModelConfig(input_height=config.input_height,
                                                           input_width=config.input_width))
  capacity = config.slice_kb * 1024
  if config.save_blob:
    summary = blob.write_blob(model, config.save_blob, config.dtype, capacity)
    yield f"wrote {config.save_blob}: {summary}"
    yield ""
    return blob.read_blob(config.save_blob)
  return planner.compile_network(graph.from_keras(model), blob.DTYPES[config.dtype],
                                 capacity=capacity)


def _c_kernel_figures(program: planner.Program, runner: native.Runner, image,
                      source: str) -> str:
  """The C kernel's slice and DMA figures on one frame, next to the simulator's.

  Args:
    program: the blob's program.
    runner: the same blob in the C kernel.
    image: one input frame.
    source: names the blob in the error.

  Raises:
    RuntimeError: they differ (the C kernel does not run the blob's schedule).
  """
  c = runner.run(image)
  reports = simulator.run(program, image).reports
  want_peak = max(r.peak_bytes for r in reports)
  want_dma = sum(r.dma_bytes for r in reports)
  if (c.peak_bytes, c.dma_bytes) != (want_peak, want_dma):
    raise RuntimeError(f"{source}: the C kernel used {c.peak_bytes} slice bytes and "
                       f"{c.dma_bytes} DMA bytes, the simulator {want_peak} and {want_dma}")
  return (f"C kernel: peak slice {c.peak_bytes} of {runner.slice.size} bytes, DMA "
          f"{c.dma_bytes} bytes per frame; both equal to the simulator's")


def lines(config: ReportConfig) -> Iterator[str]:
  """The report, a line or block of lines at a time ("": a blank line), each when it is known.

  What was read or written, the cost table (cost.report), and with
  config.tflite: the C kernel's figures (runner "c") and the agreement with
  TFLite (agreement.format_agreement), each after a blank line.

  Raises:
    blob.BlobError: an unreadable or corrupt blob (naming it).
    OSError: a Keras or TFLite model that cannot be read.
    ValueError: a data set that cannot be read (records.RecordError), or a
      model graph.from_keras refuses.
    RuntimeError: the C kernel's figures differ from the simulator's.
  """
  program = yield from _program(config)
  yield cost.report(program)
  if config.tflite:
    with open(config.tflite, "rb") as f:
      tflite_model = f.read()
    frames = agreement.load_labelled_frames(config.data, config.split, program)
    run = None
    if config.runner == "c":
      with open(config.blob, "rb") as f:
        runner = native.Runner(f.read(), config.blob)
      yield ""
      yield _c_kernel_figures(program, runner, frames[0][0], config.blob)
      run = lambda image: runner.run(image).outputs  # noqa: E731
    yield ""
    yield agreement.format_agreement(agreement.compare(program, tflite_model, frames, run))
