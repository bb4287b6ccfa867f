"""The multi-task loss of the paper (Eq. 1) as a mapping from output to loss term.

    L = wkp Lkp + wakp Lakp + wkphv Lkphv + wcho Lcho + wdhp Ldhp + wseg Lseg + wds Lds

Every term is a per-example sum divided by the *global* batch size, so that the
gradients of a batch split over replicas (tf.distribute) add up to the
gradient of the whole batch on one device. The segmentation, pose and
orientation terms skip labels whose label-known flag is 0 and are divided by
the global batch size less the unknown labels (LABEL_KNOWN): the same as the
others when every label is known.

Targets are the dicts made by `hand25d.data.pipeline` (see docs/data_format.md);
outputs are the dict of logits of `hand25d.model.network.build_training_model`,
keyed by the names in `hand25d.spec`.
"""

import dataclasses
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from hand25d import paper
from hand25d import spec

Tensors = Mapping[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Weights of Eq. 1 (the paper's by default). A weight of 0 switches a term off."""
  kp: float = paper.EQ1_WEIGHTS["kp"]  # Primary keypoints.
  akp: float = paper.EQ1_WEIGHTS["akp"]  # Auxiliary keypoints (all 17 per hand).
  kphv: float = paper.EQ1_WEIGHTS["kphv"]  # Keypoint visibility and hand presence.
  cho: float = paper.EQ1_WEIGHTS["cho"]  # Categorical hand orientation.
  dhp: float = paper.EQ1_WEIGHTS["dhp"]  # Discrete hand pose.
  seg: float = paper.EQ1_WEIGHTS["seg"]  # Segmentation.
  ds: float = paper.EQ1_WEIGHTS["ds"]  # Deep supervision.
  fingertip_double: bool = True  # Table 1's "Wk": fingertips count twice.
  # How a keypoint term combines its channels: "sum" or "mean" (see
  # KEYPOINT_REDUCTIONS and docs/training.md, "What limits accuracy").
  keypoint_reduction: str = "sum"
  # Target of the keypoint cross-entropy: 0 = one-hot at the labelled cell
  # (the paper); > 0 = a Gaussian of this standard deviation, in cells of
  # each score map, around the labelled sub-pixel position. 1 cell learns
  # faster (docs/training.md, "What limits accuracy").
  target_sigma_cells: float = 1.0

  def __post_init__(self):
    for term in TERMS:
      w = getattr(self, term)
      if not w >= 0.0:  # Also rejects NaN.
        raise ValueError(f"loss weight {term}={w} must be >= 0")
    if self.keypoint_reduction not in KEYPOINT_REDUCTIONS:
      raise ValueError(f"keypoint_reduction {self.keypoint_reduction!r} not in "
                       f"{KEYPOINT_REDUCTIONS}")
    if not self.target_sigma_cells >= 0.0:
      raise ValueError(f"target_sigma_cells={self.target_sigma_cells} must be >= 0")
    if not self.active():
      raise ValueError("all loss weights are 0: at least one term must be on")

  def active(self) -> tuple[str, ...]:
    """The terms with a non-zero weight, in Eq. 1 order."""
    return tuple(t for t in TERMS if getattr(self, t) > 0.0)


TERMS = ("kp", "akp", "kphv", "cho", "dhp", "seg", "ds")
# "sum": a keypoint term is the sum over its channels (score maps) of each
# map's cross-entropy, the usual form of a per-keypoint loss and the one under
# which Eq. 1's weights balance the terms; "mean": the average over channels,
# which makes the auxiliary terms about 95% of the loss.
KEYPOINT_REDUCTIONS = ("sum", "mean")


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
                           channel_weights: tf.Tensor, reduction: str = "sum",
                           xy: tf.Tensor | None = None, stride: int = 1,
                           sigma_cells: float = 0.0) -> tf.Tensor:
  """Softmax cross-entropy over all positions of each score map, per example.

  Args:
    logits: [B, H, W, C] score maps.
    index: [B, C] int, flat index row * W + col of the labelled cell.
    mask: [B, C] float, 1 where the keypoint is labelled and visible.
    channel_weights: [C] weight of each channel (fingertips 2).
    reduction: "sum" or "mean" over channels (KEYPOINT_REDUCTIONS).
    xy: [B, C, 2] keypoints (x, y) in input pixels; needed if sigma_cells > 0.
    stride: input pixels per score-map cell; used with xy.
    sigma_cells: 0 for a one-hot target at `index`; otherwise the target is
      a Gaussian of this standard deviation (in cells) around xy, normalised
      over the map.

  Returns:
    [B] per-example sum (or mean) over channels of the weighted, masked
    cross-entropy, in nats.
  """
  if reduction not in KEYPOINT_REDUCTIONS:
    raise ValueError(f"reduction {reduction!r} not in {KEYPOINT_REDUCTIONS}")
  shape = tf.shape(logits)
  flat = tf.reshape(logits, [shape[0], shape[1] * shape[2], shape[3]])
  flat = tf.transpose(flat, [0, 2, 1])  # [B, C, H*W]
  if sigma_cells > 0.0:
    if xy is None:
      raise ValueError("a Gaussian target (sigma_cells > 0) needs the keypoints xy")
    target = gaussian_target(xy, shape[1], shape[2], stride, sigma_cells)
    ce = tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=flat)
  else:
    # Masked entries may hold any index; keep them in range for the op.
    safe_index = tf.where(mask > 0, index, tf.zeros_like(index))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_index, logits=flat)
  weighted = tf.where(mask > 0, ce, 0.0) * mask * channel_weights
  total = tf.reduce_sum(weighted, axis=1)
  if reduction == "mean":
    total = total / tf.cast(tf.shape(logits)[3], ce.dtype)
  return total


def gaussian_target(xy: tf.Tensor, height: tf.Tensor, width: tf.Tensor, stride: int,
                    sigma_cells: float) -> tf.Tensor:
  """[B, C, H*W] Gaussian target distributions over the cells of a score map.

  Cell (row, col) at `stride` has its centre at ((col + 0.5) * stride - 0.5,
  (row + 0.5) * stride - 0.5) input pixels (hand25d.decoding). Each
  channel's target is exp(-d^2 / (2 (sigma_cells * stride)^2)) over the cell
  centres, d the distance to the keypoint, normalised to sum to 1 (a
  keypoint far outside the map gets a uniform target; such keypoints are
  masked as not visible anyway).
  """
  sigma = sigma_cells * stride
  cols = (tf.cast(tf.range(width), tf.float32) + 0.5) * stride - 0.5
  rows = (tf.cast(tf.range(height), tf.float32) + 0.5) * stride - 0.5
  gx = -tf.square(cols[None, None, :] - xy[..., 0:1]) / (2.0 * sigma * sigma)  # [B, C, W]
  gy = -tf.square(rows[None, None, :] - xy[..., 1:2]) / (2.0 * sigma * sigma)  # [B, C, H]
  logit = gy[..., :, None] + gx[..., None, :]  # [B, C, H, W]
  logit = tf.reshape(logit, tf.concat([tf.shape(xy)[:2], [height * width]], 0))
  return tf.nn.softmax(logit, axis=-1)


def _channel_weights(weights: LossWeights, primary: bool) -> tf.Tensor:
  table = spec.PRIMARY_CHANNEL_LOSS_WEIGHTS if primary else spec.AUX_CHANNEL_LOSS_WEIGHTS
  if not weights.fingertip_double:
    table = np.ones_like(table)
  return tf.constant(table)


def _primary_xy(targets: Tensors) -> tf.Tensor:
  """[B, 16, 2] keypoints of the primary channels, in input pixels."""
  xy = tf.gather(targets["keypoints_xy"], spec.PRIMARY_KEYPOINT_INDICES, axis=2)
  return tf.reshape(xy, [-1, spec.NUM_PRIMARY_CHANNELS, 2])


def _maps_loss(logits: tf.Tensor, targets: Tensors, weights: LossWeights, stride: int,
               primary: bool) -> tf.Tensor:
  """Keypoint cross-entropy of primary (16) or auxiliary (34) maps at `stride`."""
  pick = _primary if primary else _aux
  xy = None
  if weights.target_sigma_cells > 0:
    xy = (_primary_xy(targets) if primary else
          tf.reshape(targets["keypoints_xy"], [-1, spec.NUM_AUX_CHANNELS, 2]))
  return keypoint_cross_entropy(
      logits, pick(targets[keypoint_target_key(stride)]), pick(targets["keypoint_visible"]),
      _channel_weights(weights, primary), weights.keypoint_reduction, xy=xy, stride=stride,
      sigma_cells=weights.target_sigma_cells)


def _kp_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  return _maps_loss(outputs[spec.KEYPOINTS], targets, weights, spec.OUTPUT_STRIDE, True)


def _akp_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  return _maps_loss(outputs[spec.AUX_KEYPOINTS], targets, weights, spec.OUTPUT_STRIDE, False)


def _ds_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  return tf.add_n([
      _maps_loss(outputs[spec.deep_supervision_output(s)], targets, weights, s, True)
      for s in spec.DEEP_SUPERVISION_STRIDES
  ])


def _kphv_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  visibility = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=targets["keypoint_visible"], logits=outputs[spec.VISIBILITY])
  presence = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=targets["hand_present"], logits=outputs[spec.PRESENCE])
  return tf.reduce_mean(visibility, axis=[1, 2]) + tf.reduce_mean(presence, axis=1)


# Terms whose labels may be unknown (docs/data_format.md, label-known flags):
# term -> the target holding the flags. Such a term is averaged over the
# known labels of the global batch, not over all examples.
LABEL_KNOWN = {"cho": "orientation_known", "dhp": "pose_known", "seg": "segmentation_known"}


def _known(targets: Tensors, term: str, shape: tf.Tensor) -> tf.Tensor:
  """The label-known flags of a term's labels (float, 1 = known); all known if absent."""
  name = LABEL_KNOWN[term]
  return targets[name] if name in targets else tf.ones(shape)


def _per_hand_mean(per_hand: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
  """[B, sides] -> [B]: mean over the hands that are present."""
  return tf.reduce_sum(per_hand * present, axis=1) / float(spec.NUM_SIDES)


def _cho_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  ce = tf.nn.softmax_cross_entropy_with_logits(labels=targets["orientation"],
                                               logits=outputs[spec.ORIENTATION])
  return _per_hand_mean(ce, targets["hand_present"] * _known(targets, "cho", tf.shape(ce)))


def _dhp_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  del weights
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets["pose"],
                                                      logits=outputs[spec.POSE])
  return _per_hand_mean(ce, targets["hand_present"] * _known(targets, "dhp", tf.shape(ce)))


def _seg_loss(outputs: Tensors, targets: Tensors, weights: LossWeights) -> tf.Tensor:
  """Mean cross-entropy over the cells of each segmentation output the model has.

  The segmentation head's against the class of each cell; the hand mask's
  (ModelConfig.hand_mask) against the share of each class in its 8x8 block.
  """
  del weights
  terms = []
  if spec.SEGMENTATION in outputs:
    terms.append(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=targets["segmentation"], logits=outputs[spec.SEGMENTATION]))
  if spec.HAND_MASK in outputs:
    terms.append(tf.nn.softmax_cross_entropy_with_logits(
        labels=targets["hand_mask"], logits=outputs[spec.HAND_MASK]))
  if not terms:
    raise ValueError(f"Lseg needs a {spec.SEGMENTATION} or {spec.HAND_MASK} output; the model "
                     f"has {sorted(outputs)}")
  per_example = tf.add_n([tf.reduce_mean(ce, axis=[1, 2]) for ce in terms])
  # tf.where, not a product: an unknown mask contributes exactly 0 and no gradient.
  known = _known(targets, "seg", tf.shape(per_example))
  return tf.where(known > 0, per_example * known, 0.0)


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


def _unknown_count(targets: Tensors, term: str, batch_size: tf.Tensor) -> tf.Tensor:
  """Examples' worth of unknown labels of `term` in the global batch.

  One minus the mean of an example's flags (an unknown hand of two counts
  half an example), summed over the batch and over the replicas; exactly 0
  when every label is known.
  """
  flags = tf.reshape(_known(targets, term, [batch_size]), [batch_size, -1])
  unknown = tf.reduce_sum(1.0 - tf.reduce_mean(flags, axis=1))
  context = tf.distribute.get_replica_context()
  if context is None:  # Cross-replica context: the batch is the whole batch.
    return unknown
  return context.all_reduce(tf.distribute.ReduceOp.SUM, unknown)


def compute_losses(outputs: Tensors, targets: Tensors, weights: LossWeights,
                   global_batch_size: int) -> dict[str, tf.Tensor]:
  """Every active term (unweighted, averaged over the global batch) and 'total'.

  Args:
    outputs: the model's dict of logits (the heads of the active terms).
    targets: the pipeline's dict of targets.
    weights: the weights of Eq. 1; terms with weight 0 are not computed.
    global_batch_size: examples in the batch over all replicas.

  Returns:
    {term: scalar} for the active terms, plus 'total' = the weighted sum. A
    term with label-known flags in the targets (LABEL_KNOWN) is divided by
    the global batch size less its unknown labels (_unknown_count): the
    same when all are known, 0 when none is.
  """
  losses = {}
  for term in weights.active():
    per_example = LOSS_FNS[term](outputs, targets, weights)
    if term in LABEL_KNOWN and LABEL_KNOWN[term] in targets:
      # Over the known labels only; none known: 0, not NaN.
      known = float(global_batch_size) - _unknown_count(targets, term, tf.shape(per_example)[0])
      losses[term] = tf.math.divide_no_nan(tf.reduce_sum(per_example), known)
    else:
      losses[term] = tf.reduce_sum(per_example) / float(global_batch_size)
  losses["total"] = tf.add_n([getattr(weights, t) * losses[t] for t in weights.active()])
  return losses
