"""Model card: size, compute, memory and ops of the deployable network.

`model_card(config)` builds the inference network of a backbone, counts its
parameters and per-layer MACs/FLOPs with the analytic counter
(`hand25d.model.flops`), converts it to float32 TFLite and reads the
converted graph for the op list, an independent MAC count (which must agree
with the analytic one) and the peak activation memory. `markdown(cards)`
renders the Table-2-style comparison of docs/model_card.md.
"""

import collections
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from hand25d import litert
from hand25d import paper
from hand25d.model import config as config_lib
from hand25d.model import flops
from hand25d.model import network

# The design notes of docs/model_card.md (its hand-written part).
NOTES = """
## How the network meets the budget

* **Tier-1**: one 5x5 convolution with stride 4 to 16 channels (120x160 -> 30x40).
* **Tier-2** (1/4): two 131-ConvBlock units, 1x1 (16) -> grouped 3x3 (16, 4 groups) ->
  1x1 (16), each Conv-BN-ReLU; unit 2 takes unit 1's output; the tier output is the
  concatenation of both units without the tier input: 32 channels.
* **Transition**: 2x2 max pooling to 1/8.
* **Tier-3** (1/8): two Dilated-Ladder units, each 4 bottleneck ResNet blocks
  32 -> 40 -> 32 with a grouped (8 groups) 3x3 of dilation 1, 2, 3, 4; the units are
  concatenated: 64 channels at 15x20.
* **Decoder**: twice (nearest-neighbour x2 up-sampling, depthwise 3x3 Conv-BN-ReLU), then
  a 1x1 convolution with 16 groups (4 input channels per score map) to the 16 score maps
  at 60x80. Depthwise is the grouped convolution with groups = channels.
* **Presence** (for the early out): global average pooling of the Tier-3 output and a
  64 -> 2 dense layer, 130 parameters; it needs only the encoder output, so a runtime
  can run it before the decoder.

Choices the paper leaves open, and the trades:

* **Parameter count.** "Params" is Keras' count of the inference model, batch-norm
  moving statistics included (as `model.summary()` prints); "Trainable" leaves them
  out. The exported TFLite model folds batch norm into the convolutions.
* **Tier-3 bottleneck width 40** (5 filters per group). Width 32 (4 per group, a
  multiple of the 4 fp32 lanes of a SHAVE vector) gives 33.6K parameters, 18% under the
  paper's 41K; width 48 gives 54.3K parameters and 40.9 MFLOPs, over both. 40 is the
  only multiple of the 8 groups that meets both budgets; the embedded kernel must pad groups of 5 filters to 8 lanes (or the
  width can be set back to 32 with `tier3_bottleneck`).
* **Dense 1x1 convolutions around each grouped 3x3** (as ResNeXt). The paper groups "all
  but the first tier"; with grouped 1x1s as well and no channel shuffle, each group would
  stay a separate narrow network through the whole tier.
* **Max-pool transition** between Tier-2 and Tier-3 rather than a strided block: it keeps
  every Tier-3 block an identity-shortcut block and costs no parameters.
* **Auxiliary heads** (training only): a dense 17-keypoint decoder (3x3 convolutions and a
  transposed convolution to 1/2), pooled dense heads for visibility, presence,
  orientation and pose, a BiSeNet spatial path (three Conv-BN-ReLU to 1/4) fused with
  the up-sampled Tier-3 output by a feature fusion module with channel attention, and
  1x1 deep-supervision heads at 1/8, 1/4 and 1/2.

## Baselines

MobileNetV2 and DenseNet-121 come from `tf_keras.applications` (`weights=None`,
`include_top=False`, one input channel). MobileNetV2's features are taken before its
last 1x1 convolution (320 -> 1280 channels, which only feeds the ImageNet classifier),
as DeepLabv3 does; DenseNet-121 is used whole. The stride-32 feature map is adapted to
the decoder's input by a 1x1 Conv-BN-ReLU to 64 channels and a nearest resize to 1/8;
then the same decoder and heads follow. The parameter counts come within 2% of the
paper's (3.2% for MobileNetV2's trainable weights). The paper's GFLOPs are 2.4x
(DenseNet) and 5.4x (MobileNetV2) what these backbones need at 120x160; its baselines
were most likely run on a larger input or with dilated (output stride 8) backbones,
which Keras applications do not offer.

## Memory

The peak activation memory (float32, batch 1, ops in graph order) is set by the last
decoder stage: two 60x80x64 maps (the up-sampled input of the depthwise convolution and
its output) while the 15x20x64 encoder output waits for the presence head. A runtime
that needs less must tile that stage (as the SHAVE kernel of docs/embedded.md does) or run
the presence head first.

## Grouped convolutions on CPU

The slow "native grouped Conv2D" (grouped convolutions as Keras builds them) is `tf_keras.layers.Conv2D(groups>1)`:
it routes every grouped convolution through an XLA-compiled function
(`_jit_compiled_convolution_op`, a CPU workaround in tf_keras). `GroupedConv2D` never
uses that path: its "native" form calls `tf.nn.conv2d` with the grouped filter, which
oneDNN runs as a grouped convolution, and its "fast" form multiplies a block-diagonal
dense kernel. `benchmarks/model_bench.py` measures all three per layer and the two
`GroupedConv2D` forms on the whole training step (one run: docs/training.md,
"Grouped convolution forms").
"""

# Multiply-accumulate ops of a TFLite graph; everything else is "other".
_TFLITE_MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def convert(model: keras.Model) -> bytes:
  """Float32 TFLite flatbuffer of a Keras model (builtin ops only)."""
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()


def _op_macs(op: dict, tensors: dict[int, dict]) -> int:
  """MACs of one TFLite op, from its filter and output shapes."""
  name = op["op_name"]
  if name not in _TFLITE_MAC_OPS:
    return 0
  weights = tensors[op["inputs"][1]]["shape"]
  output = tensors[op["outputs"][0]]["shape"]
  if name == "CONV_2D":  # Filter [cout, kh, kw, cin / groups].
    return int(np.prod(output) * np.prod(weights[1:]))
  if name == "DEPTHWISE_CONV_2D":  # Filter [1, kh, kw, cout].
    return int(np.prod(output) * weights[1] * weights[2])
  return int(np.prod(output[:-1]) * np.prod(weights))  # FULLY_CONNECTED: [out, in].


def tflite_stats(model_bytes: bytes) -> dict[str, Any]:
  """Op list, MACs, size and peak activation memory of a TFLite model (batch 1).

  The peak is the largest total size of activation tensors alive at once when
  the ops run in graph order (each tensor lives from the op that writes it to
  the last op that reads it); an arena planner can only need more.
  """
  interpreter = litert.builtin_interpreter(model_bytes)
  ops = litert.op_details(interpreter)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  inputs = [d["index"] for d in interpreter.get_input_details()]
  outputs = [d["index"] for d in interpreter.get_output_details()]
  produced = {index: i for i, op in enumerate(ops) for index in op["outputs"]}
  produced.update({index: -1 for index in inputs})
  last_use = {index: len(ops) for index in outputs}
  for i, op in enumerate(ops):
    for index in op["inputs"]:
      if index in produced:
        last_use[index] = max(last_use.get(index, i), i)
  nbytes = {index: int(np.prod(tensors[index]["shape"]))
                   * np.dtype(tensors[index]["dtype"]).itemsize for index in produced}
  peak = max(sum(nbytes[t] for t in produced if produced[t] <= i <= last_use.get(t, i))
             for i in range(len(ops)))
  return {
      "ops": dict(sorted(collections.Counter(op["op_name"] for op in ops).items())),
      "macs": sum(_op_macs(op, tensors) for op in ops),
      "size_bytes": len(model_bytes),
      "peak_activation_bytes": peak,
  }


def model_card(config: config_lib.ModelConfig) -> dict[str, Any]:
  """Model card of the inference network of `config` (see module docstring)."""
  model = network.inference_model(config)
  costs = flops.layer_costs(model)
  macs = sum(c.macs for c in costs)
  trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
  return {
      "backbone": config.backbone,
      "input_shape": list(config.input_shape),
      "input_mode": config.input_mode,
      "outputs": {name: list(t.shape[1:]) for name, t in model.output.items()},
      "params": model.count_params(),
      "trainable_params": trainable,
      "macs": macs,
      "flops": 2 * macs,
      "other_ops": sum(c.other_ops for c in costs),
      "tflite": tflite_stats(convert(model)),
      "paper": paper.TABLE2[config.backbone],
      "layers": [
          {"name": c.name, "kind": c.kind, "params": c.params, "macs": c.macs,
           "flops": c.flops, "other_ops": c.other_ops, "output_shape": list(c.output_shape)}
          for c in costs
      ],
  }


def summary(card: dict[str, Any]) -> str:
  """A few readable lines for the terminal."""
  tfl = card["tflite"]
  return "\n".join([
      f"backbone {card['backbone']}: input {card['input_shape']} ({card['input_mode']})",
      f"  params {card['params']:,} ({card['trainable_params']:,} trainable); "
      f"paper {card['paper']['params'] / 1e6:.3f}M",
      f"  MACs {card['macs']:,}  FLOPs {card['flops'] / 1e6:.2f}M "
      f"({card['flops'] / 1e9:.4f} G; paper {card['paper']['gflops']} G); "
      f"other ops {card['other_ops']:,}",
      f"  TFLite: {tfl['size_bytes'] / 1024:.1f} KiB, MACs {tfl['macs']:,}, peak activations "
      f"{tfl['peak_activation_bytes'] / 1024:.1f} KiB",
      "  ops: " + ", ".join(f"{k} x{v}" for k, v in tfl["ops"].items()),
  ])


def markdown(cards: Sequence[dict[str, Any]]) -> str:
  """docs/model_card.md: the Table-2 comparison, per-layer costs of "ours", notes."""
  lines = [
      "# hand25d model card",
      "",
      "Generated by `python -m hand25d.model.card_main "
      "--backbone=ours,mobilenet_v2,densenet121 --markdown=docs/model_card.md`.",
      "Inference network (encoder + primary decoder + presence head), batch 1, "
      f"input {cards[0]['input_shape'][0]}x{cards[0]['input_shape'][1]}, float32. "
      "FLOPs = 2 x MACs of convolutions and dense layers.",
      "",
      "## Table 2: size and compute",
      "",
      "| Backbone | Params | Trainable | Params (paper) | GFLOPs | GFLOPs (paper) "
      "| TFLite KiB | Peak activations KiB |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for card in cards:
    reported = card["paper"]
    lines.append(
        f"| {paper.BACKBONE_NAMES[card['backbone']]} | {card['params'] / 1e6:.3f}M "
        f"| {card['trainable_params'] / 1e6:.3f}M | {reported['params'] / 1e6:.3f}M "
        f"| {card['flops'] / 1e9:.4f} | {reported['gflops']:.3f} "
        f"| {card['tflite']['size_bytes'] / 1024:.1f} "
        f"| {card['tflite']['peak_activation_bytes'] / 1024:.1f} |")
  ours = [c for c in cards if c["backbone"] == "ours"]
  if ours:
    card = ours[0]
    lines += [
        "",
        "## Ours, layer by layer",
        "",
        f"{card['params']:,} parameters ({card['trainable_params']:,} trainable; the rest are "
        f"batch-norm statistics, folded into the convolutions at export), "
        f"{card['macs']:,} MACs = {card['flops'] / 1e6:.2f} MFLOPs, "
        f"{card['other_ops']:,} other element ops. TFLite ops: "
        + ", ".join(f"{k} x{v}" for k, v in card["tflite"]["ops"].items()) + ".",
        "",
        "| Layer | Kind | Output | Params | MFLOPs |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for layer in card["layers"]:
      if layer["params"] or layer["macs"]:
        shape = "x".join(str(d) for d in layer["output_shape"])
        lines.append(f"| {layer['name']} | {layer['kind']} | {shape} | {layer['params']} "
                     f"| {layer['flops'] / 1e6:.3f} |")
  return "\n".join(lines + ["", NOTES.strip(), ""])
