"""How the terms of Eq. 1 share the network: magnitudes and encoder gradients.

Eq. 1 weighs seven terms. Whether its weights make sense depends on the
scale of each term, which the paper does not state. What decides what the
shared encoder learns is the gradient each weighted term sends into it; this
module measures that, term by term, on real batches
(`benchmarks/loss_balance.py` prints it; docs/training.md, "What limits
accuracy", reads it).
"""

from typing import Iterable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from hand25d import losses

# Layers of the shared encoder of the "ours" backbone (hand25d.model.blocks).
ENCODER_PREFIX = "tier"


def encoder_variables(model: keras.Model, prefix: str = ENCODER_PREFIX) -> list[tf.Variable]:
  """Trainable variables of the layers whose name starts with `prefix`.

  Raises:
    ValueError: no layer of `model` has such a name.
  """
  found = [v for layer in model.layers if layer.name.startswith(prefix)
           for v in layer.trainable_variables]
  if not found:
    raise ValueError(f"model {model.name!r} has no trainable layer named {prefix}*")
  return found


def term_gradients(model: keras.Model, batches: Iterable, weights: losses.LossWeights,
                   variables: list[tf.Variable] | None = None) -> dict[str, dict[str, float]]:
  """Each active term's value and the gradient it sends into `variables`.

  The model runs in training mode (batch statistics), as in a train step;
  nothing is updated.

  Args:
    model: a training model (dict of named outputs).
    batches: (features, targets) batches of the pipeline.
    weights: the loss weights and keypoint reduction to measure.
    variables: where to measure the gradient; default the shared encoder.

  Returns:
    {term: {"value": mean unweighted term, "weighted": weight * value,
    "share": share of the total loss, "grad_norm": mean over batches of the
    L2 norm of d(weight * term)/d(variables), "grad_share": grad_norm over
    the sum of all terms' grad_norm}}.
  """
  variables = encoder_variables(model) if variables is None else variables
  sums: dict[str, np.ndarray] = {}
  count = 0
  for features, targets in batches:
    batch_size = int(features["image"].shape[0])
    with tf.GradientTape(persistent=True) as tape:
      outputs = model(features["image"], training=True)
      terms = losses.compute_losses(outputs, targets, weights, batch_size)
      weighted = {t: getattr(weights, t) * terms[t] for t in weights.active()}
    for term, value in weighted.items():
      grads = tape.gradient(value, variables, unconnected_gradients="zero")
      norm = float(tf.linalg.global_norm(grads))
      sums[term] = sums.get(term, 0.0) + np.array([float(terms[term]), float(value), norm])
    del tape
    count += 1
  if not count:
    raise ValueError("no batches to measure")
  total = sum(v[1] for v in sums.values())
  total_grad = sum(v[2] for v in sums.values())
  return {term: {"value": v[0] / count, "weighted": v[1] / count, "share": v[1] / total,
                 "grad_norm": v[2] / count, "grad_share": v[2] / total_grad}
          for term, v in sums.items()}
