"""Prints the modelled SHAVE latency of a network, ours vs naive (Table 3).

  python -m export.shave.shave_main                    # hand25d inference net
  python -m export.shave.shave_main --dtype=fp32
  python -m export.shave.shave_main --keras_model=model.keras

The model is converted to the embedded layer list, run in the simulated
128 KB slice and priced by the cost model (docs/embedded.md).
"""

from absl import app
from absl import flags
import numpy as np

import export  # noqa: F401  (puts TF_USE_LEGACY_KERAS=1 in effect first)
from export.shave import cost
from export.shave import memory
from hand25d import spec
from hand25d.model import config as config_lib
from hand25d.model import layers
from hand25d.model import network
import tf_keras as keras

_KERAS_MODEL = flags.DEFINE_string(
    "keras_model", None, "Saved tf_keras inference model (.keras or .h5); by default the "
    "hand25d inference network of --input_height x --input_width with fresh weights (the "
    "latency does not depend on the weights).")
_INPUT_HEIGHT = flags.DEFINE_integer("input_height", spec.INPUT_HEIGHT, "Network input rows.")
_INPUT_WIDTH = flags.DEFINE_integer("input_width", spec.INPUT_WIDTH, "Network input columns.")
_DTYPE = flags.DEFINE_enum("dtype", "fp16", ["fp16", "fp32"],
                           "Storage type: fp16 (8 lanes) or fp32 (4 lanes).")
_SLICE_KB = flags.DEFINE_integer("slice_kb", memory.SLICE_BYTES // 1024,
                                 "Working-memory slice in KiB.")


def main(argv):
  del argv
  if _KERAS_MODEL.value:
    model = keras.models.load_model(
        _KERAS_MODEL.value, compile=False,
        custom_objects={"GroupedConv2D": layers.GroupedConv2D})
  else:
    config = config_lib.ModelConfig(input_height=_INPUT_HEIGHT.value,
                                    input_width=_INPUT_WIDTH.value)
    model = network.inference_model(config)
  dtype = np.float16 if _DTYPE.value == "fp16" else np.float32
  print(cost.report(model, dtype, capacity=_SLICE_KB.value * 1024))


if __name__ == "__main__":
  app.run(main)
