r"""Where an fp16 SHAVE program's arg-max disagreement comes from (not a test).

  .venv/bin/python benchmarks/fp16_error_sources.py --checkpoint=runs/ref2/train_hand_mask \
      --data=runs/ref2/data_120x160 [--tflite=hand25d/pretrained/hand25d_float32.tflite] \
      [--frames=300] [--json=benchmarks/results/fp16_error_sources.json]

The fp16 program rounds two things to fp16: the weights (and biases) and the
activations (every tensor but the outputs, planner.fp32_stored). This runs
three programs of the checkpoint's inference network in the simulated slice
on the first test frames and compares each with the float32 TFLite model
(agreement.compare, as `export.shave.shave_main --tflite` does):

  fp16: the fp16 program, as shipped (weights and activations fp16);
  fp32, fp16 weights: an fp32 program whose weights and biases are the fp16
    program's, rounded to fp16 and back: the weights' rounding alone;
  fp32: the fp32 program (the peer): neither.

The share of keypoints whose arg-max differs from TFLite's in the second
program is what fp16 weights cost whatever the activations' precision
(docs/embedded.md, "Outputs in fp32"). --fp32_weights adds programs whose
named layers keep fp32 weights: which layers' rounding matters.
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import dataclasses
import os

from absl import app
from absl import flags
import numpy as np

from export import exporter
from export.shave import agreement
from export.shave import graph
from export.shave import planner
from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import pretrained

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir or checkpoint.",
                                  required=True)
_DATA = flags.DEFINE_string("data", None, "Data set with a test split.", required=True)
_TFLITE = flags.DEFINE_string("tflite", None, "float32 .tflite of the same network (default: "
                              "the shipped model).")
_FRAMES = flags.DEFINE_integer("frames", 300, "Test frames (the first ones).", lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "Also write the figures as JSON here.")
_KEEP = flags.DEFINE_multi_string(
    "fp32_weights", [], "Also run the fp32 program with fp16-rounded weights except in these "
    "layers (comma-separated layer names, or 'FROM:' a layer name for it and every layer "
    "after it); repeatable, one program each.")


def fp16_weights(network: graph.Network, keep: frozenset = frozenset()) -> graph.Network:
  """The network with every kernel and bias rounded to fp16 and back to float32.

  The layers named in `keep` keep their float32 weights.
  """
  def rounded(layer: graph.Layer) -> graph.Layer:
    if layer.kernel is None or layer.name in keep:
      return layer
    return dataclasses.replace(
        layer, kernel=layer.kernel.astype(np.float16).astype(np.float32),
        bias=layer.bias.astype(np.float16).astype(np.float32))
  return dataclasses.replace(network, layers=tuple(rounded(layer) for layer in network.layers))


def main(argv):
  del argv
  tflite_path = _TFLITE.value or os.path.relpath(pretrained.path(pretrained.FLOAT32))
  with open(tflite_path, "rb") as f:
    tflite_model = f.read()
  model, _, prefix = exporter.load_inference_model(_CHECKPOINT.value)
  network = graph.from_keras(model)
  programs = {
      "fp16": planner.compile_network(network, np.float16),
      "fp32, fp16 weights": planner.compile_network(fp16_weights(network), np.float32),
      "fp32": planner.compile_network(network, np.float32),
  }
  names = [layer.name for layer in network.layers]
  for wanted in _KEEP.value:
    if wanted.startswith("FROM:"):
      if wanted[5:] not in names:
        raise app.UsageError(f"--fp32_weights: no layer {wanted[5:]!r}; layers: {names}")
      keep = frozenset(names[names.index(wanted[5:]):])
    else:
      keep = frozenset(wanted.split(","))
      if keep - set(names):
        raise app.UsageError(f"--fp32_weights: no layers {sorted(keep - set(names))}")
    programs[f"fp32, fp16 weights but {wanted}"] = planner.compile_network(
        fp16_weights(network, keep), np.float32)
  frames = agreement.load_labelled_frames(_DATA.value, "test", programs["fp16"],
                                          max_frames=_FRAMES.value)
  res = {"checkpoint": prefix, "tflite": tflite_path, "frames": len(frames), "programs": {}}
  print(f"{prefix} against {tflite_path}, first {len(frames)} test frames:")
  for name, program in programs.items():
    a = agreement.compare(program, tflite_model, frames)
    res["programs"][name] = {
        "argmax_identical": a.argmax_equal, "keypoints": a.keypoints,
        "argmax_agreement": a.argmax_agreement, "decisive": a.decisive,
        "decisive_identical": a.decisive_equal, "mismatch_margin": a.mismatch_margin,
        "mean_px_error": a.program_px_error, "tflite_mean_px_error": a.tflite_px_error}
    print(f"  {name:34s} arg-max identical {a.argmax_equal}/{a.keypoints} "
          f"({100 * a.argmax_agreement:.1f}%), largest top-2 margin of a differing one "
          f"{a.mismatch_margin:.1e}, mean 2D error {a.program_px_error:.3f} px "
          f"(TFLite {a.tflite_px_error:.3f})")
  if _JSON.value:
    atomic.write_json(_JSON.value, res)


if __name__ == "__main__":
  app.run(main)
