"""Model card: size, compute, memory and ops of the deployable network.

`model_card(config)` builds the inference network of a backbone, counts its
parameters and per-layer MACs/FLOPs with the analytic counter
(`hand25d.model.flops`), converts it to float32 TFLite and reads the
converted graph for the op list, an independent MAC count (which must agree
with the analytic one) and the peak activation memory. `markdown(cards)`
renders the Table-2-style comparison of docs/model_card.md, followed by its
hand-written design notes, card_notes.md (package data).
"""

import collections
import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from hand25d import litert
from hand25d import paper
from hand25d.model import config as config_lib
from hand25d.model import flops
from hand25d.model import network

# The design notes of docs/model_card.md (its hand-written part, Markdown).
NOTES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "card_notes.md")
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
  return "\n".join(lines + ["", notes().strip(), ""])


def notes() -> str:
  """The design notes (NOTES_PATH) as they are."""
  with open(NOTES_PATH, encoding="utf-8") as f:
    return f.read()
