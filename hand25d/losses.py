"""The multi-task loss of the paper (Eq. 1) as a mapping from output to loss term.

    L = wkp Lkp + wakp Lakp + wkphv Lkphv + wcho Lcho + wdhp Ldhp + wseg Lseg + wds Lds

Every term is a per-example sum divided by the *global* batch size, so that the
gradients of a batch split over replicas (tf.distribute) add up to the
gradient of the whole batch on one device.

Targets are the dicts made by `hand25d.data.pipeline` (see docs/data_format.md);
outputs are the dict of logits of `hand25d.model.network.build_training_model`,
keyed by the names in `hand25d.spec`.
"""

import dataclasses
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from hand25d import spec

Tensors = Mapping[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Weights of Eq. 1 (paper defaults). A weight of 0 switches a term off."""
  kp: float = 1.0  # Primary keypoints.
  akp: float = 1.0  # Auxiliary keypoints (all 17 per hand).
  kphv: float = 20.0  # Keypoint visibility and hand presence.
  cho: float = 20.0  # Categorical hand orientation.
  dhp: float = 10.0  # Discrete hand pose.
  seg: float = 50.0  # Segmentation.
  ds: float = 1.0  # Deep supervision.
  fingertip_double: bool = True  # Table 1's "Wk": fingertips count twice.

  def __post_init__(self):
    for term in TERMS:
      w = getattr(self, term)
      if not w >= 0.0:  # Also rejects NaN.
        raise ValueError(f"loss weight {term}={w} must be >= 0")
    if not self.active():
      raise ValueError("all loss weights are 0: at least one term must be on")

  def active(self) -> tuple[str, ...]:
    """The terms with a non-zero weight, in Eq. 1 order."""
    return tuple(t for t in TERMS if getattr(self, t) > 0.0)


TERMS = ("kp", "akp", "kphv", "cho", "dhp", "seg", "ds")


def keypoint_target_key(stride: int) -> str:
  """Name of the target holding flat keypoint cell indices at `stride`."""
  return f"keypoint_index_s{stride}"


def _primary(per_hand: tf.Tensor) -> tf.Tensor:
  """[B, sides, 17] -> [B, 16] in primary channel order."""
  primary = tf.gather(per_hand, spec.PRIMARY_KEYPOINT_INDICES, axis=2)
  return tf.reshape(primary, [-1, spec.NUM_PRIMARY_CHANNELS])


def _aux(per_hand: tf.Tensor) -> tf.Tensor:
  """[B, sides, 17] -> [B, 34] in auxiliary channel order."""
  return tf.reshape(per_hand, [-1, spec.NUM_AUX_CHANNELS])


def keypoint_cross_entropy(logits: tf.Tensor, index: tf.Tensor, mask: tf.Tensor,
                           channel_weights: tf.Tensor) -> tf.Tensor:
  """Softmax cross-entropy over all positions of each score map, per example.

  Args:
    logits: [B, H, W, C] score maps.
    index: [B, C] int, flat index row * W + col of the labelled cell.
    mask: [B, C] float, 1 where the keypoint is labelled and visible.
    channel_weights: [C] weight of each channel (fingertips 2).

  Returns:
    [B] per-example mean over channels of the weighted, masked cross-entropy.
  """
  shape = tf.shape(logits)
  flat = tf.reshape(logits, [shape[0], shape[1] * shape[2], shape[3]])
  flat = tf.transpose(flat, [0, 2, 1])  # [B, C, H*W]
  # Masked entries may hold any index; keep them in range for the op.
  safe_index = tf.where(mask > 0, index, tf.zeros_like(index))
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_index, logits=flat)
  weighted = ce * mask * channel_weights
  return tf.reduce_sum(weighted, axis=1) / tf.cast(tf.shape(logits)[3], ce.dtype)


def _channel_weights(weights: LossWeights, primary: bool) -> tf.Tensor:
  table = spec.PRIMARY_CHANNEL_LOSS_WEIGHTS if primary else spec.AUX_CHANNEL_LOSS_WEIGHTS
  if not weights.fingertip_double:
    table = np.ones_like(table)
  return tf.constant(table)


def _kp_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  return keypoint_cross_entropy(
      outputs[spec.KEYPOINTS], _primary(targets[keypoint_target_key(spec.OUTPUT_STRIDE)]),
      _primary(targets["keypoint_visible"]), _channel_weights(weights, primary=True))


def _akp_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  return keypoint_cross_entropy(
      outputs[spec.AUX_KEYPOINTS], _aux(targets[keypoint_target_key(spec.OUTPUT_STRIDE)]),
      _aux(targets["keypoint_visible"]), _channel_weights(weights, primary=False))


def _ds_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  mask = _primary(targets["keypoint_visible"])
  channel_weights = _channel_weights(weights, primary=True)
  return tf.add_n([
      keypoint_cross_entropy(outputs[spec.deep_supervision_output(s)],
                             _primary(targets[keypoint_target_key(s)]), mask, channel_weights)
      for s in spec.DEEP_SUPERVISION_STRIDES
  ])


def _kphv_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  visibility = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=targets["keypoint_visible"], logits=outputs[spec.VISIBILITY])
  presence = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=targets["hand_present"], logits=outputs[spec.PRESENCE])
  return tf.reduce_mean(visibility, axis=[1, 2]) + tf.reduce_mean(presence, axis=1)


def _per_hand_mean(per_hand: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
  """[B, sides] -> [B]: mean over the hands that are present."""
  return tf.reduce_sum(per_hand * present, axis=1) / float(spec.NUM_SIDES)


def _cho_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  ce = tf.nn.softmax_cross_entropy_with_logits(labels=targets["orientation"],
                                               logits=outputs[spec.ORIENTATION])
  return _per_hand_mean(ce, targets["hand_present"])


def _dhp_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets["pose"],
                                                      logits=outputs[spec.POSE])
  return _per_hand_mean(ce, targets["hand_present"])


def _seg_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets["segmentation"],
                                                      logits=outputs[spec.SEGMENTATION])
  return tf.reduce_mean(ce, axis=[1, 2])


# Each term: (outputs, targets, weights) -> [B] per-example loss.
LOSS_FNS: dict[str, Callable[[Tensors, Tensors, LossWeights], tf.Tensor]] = {
    "kp": _kp_loss,
    "akp": _akp_loss,
    "kphv": _kphv_loss,
    "cho": _cho_loss,
    "dhp": _dhp_loss,
    "seg": _seg_loss,
    "ds": _ds_loss,
}


def compute_losses(outputs: Tensors, targets: Tensors, weights: LossWeights,
                   global_batch_size: int) -> dict[str, tf.Tensor]:
  """Every active term (unweighted, averaged over the global batch) and 'total'.

  Args:
    outputs: the model's dict of logits (the heads of the active terms).
    targets: the pipeline's dict of targets.
    weights: the weights of Eq. 1; terms with weight 0 are not computed.
    global_batch_size: examples in the batch over all replicas.

  Returns:
    {term: scalar} for the active terms, plus 'total' = the weighted sum.
  """
  losses = {}
  for term in weights.active():
    per_example = LOSS_FNS[term](outputs, targets, weights)
    losses[term] = tf.reduce_sum(per_example) / float(global_batch_size)
  losses["total"] = tf.add_n([getattr(weights, t) * losses[t] for t in weights.active()])
  return losses
