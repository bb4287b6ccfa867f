"""The multi-task loss (Eq. 1) on hand-made cases."""

from hand25d import losses
from hand25d import spec

import numpy as np
import pytest
import tensorflow as tf

B = 2
IN_H, IN_W = 16, 32  # A small input; maps at stride s are IN_H/s x IN_W/s.
H, W = IN_H // spec.OUTPUT_STRIDE, IN_W // spec.OUTPUT_STRIDE


def _targets(rng):
  visible = (rng.random((B, 2, 17)) > 0.3).astype(np.float32)
  visible[1, 1] = 0.0  # The second example has no right hand.
  present = np.array([[1, 1], [1, 0]], np.float32)
  t = {
      "keypoint_visible": visible,
      "hand_present": present,
      "orientation": spec.ORIENTATION_SOFT_LABELS[rng.integers(0, 8, (B, 2))],
      "pose": rng.integers(0, 9, (B, 2)).astype(np.int32),
      "segmentation": rng.integers(0, 3, (B, H, W)).astype(np.int32),
      "keypoints_xy": (rng.random((B, 2, 17, 2)) * [IN_W, IN_H]).astype(np.float32),
  }
  for s in spec.DEEP_SUPERVISION_STRIDES:
    hs, ws = IN_H // s, IN_W // s
    t[losses.keypoint_target_key(s)] = rng.integers(0, hs * ws, (B, 2, 17)).astype(np.int32)
  return {k: tf.constant(v) for k, v in t.items()}


def _outputs(rng):
  o = {
      spec.KEYPOINTS: rng.normal(size=(B, H, W, 16)),
      spec.AUX_KEYPOINTS: rng.normal(size=(B, H, W, 34)),
      spec.VISIBILITY: rng.normal(size=(B, 2, 17)),
      spec.PRESENCE: rng.normal(size=(B, 2)),
      spec.ORIENTATION: rng.normal(size=(B, 2, 8)),
      spec.POSE: rng.normal(size=(B, 2, 9)),
      spec.SEGMENTATION: rng.normal(size=(B, H, W, 3)),
  }
  for s in spec.DEEP_SUPERVISION_STRIDES:
    o[spec.deep_supervision_output(s)] = rng.normal(size=(B, IN_H // s, IN_W // s, 16))
  return {k: tf.constant(v, tf.float32) for k, v in o.items()}


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  return _outputs(rng), _targets(rng)


def test_keypoint_cross_entropy_matches_hand_computation():
  logits = np.zeros((1, 2, 3, 2), np.float32)
  logits[0, 1, 2, 0] = 2.0  # Channel 0 peaks at flat index 5.
  index = tf.constant([[5, 0]])
  mask = tf.constant([[1.0, 0.0]])
  got = losses.keypoint_cross_entropy(tf.constant(logits), index, mask, tf.constant([2.0, 1.0]))
  expected_ce = -(2.0 - np.log(np.exp(2.0) + 5.0))
  # Sum over channels (the default); channel 0 weighted 2, channel 1 masked out.
  np.testing.assert_allclose(got.numpy(), [2.0 * expected_ce], rtol=1e-6)
  mean = losses.keypoint_cross_entropy(tf.constant(logits), index, mask,
                                       tf.constant([2.0, 1.0]), reduction="mean")
  np.testing.assert_allclose(mean.numpy(), [2.0 * expected_ce / 2.0], rtol=1e-6)


def test_keypoint_terms_at_uniform_maps_are_pinned(batch):
  """Flat score maps: each visible map costs ln(cells), summed with its weight.

  This pins the normalisation under which Eq. 1's weights are used (sum over
  score maps, mean over the batch): docs/training.md, "What limits accuracy".
  """
  outputs, targets = batch
  flat = {k: tf.zeros_like(v) for k, v in outputs.items()}
  got = losses.compute_losses(flat, targets, losses.LossWeights(), B)
  visible = targets["keypoint_visible"].numpy()
  primary = visible[:, :, spec.PRIMARY_KEYPOINT_INDICES].reshape(B, -1)
  aux = visible.reshape(B, -1)
  kp = (primary * spec.PRIMARY_CHANNEL_LOSS_WEIGHTS).sum() / B * np.log(H * W)
  akp = (aux * spec.AUX_CHANNEL_LOSS_WEIGHTS).sum() / B * np.log(H * W)
  ds = sum((primary * spec.PRIMARY_CHANNEL_LOSS_WEIGHTS).sum() / B
           * np.log((IN_H // s) * (IN_W // s)) for s in spec.DEEP_SUPERVISION_STRIDES)
  np.testing.assert_allclose([got["kp"], got["akp"], got["ds"]], [kp, akp, ds], rtol=1e-5)
  mean = losses.compute_losses(flat, targets, losses.LossWeights(keypoint_reduction="mean"), B)
  np.testing.assert_allclose(mean["kp"], kp / spec.NUM_PRIMARY_CHANNELS, rtol=1e-5)
  np.testing.assert_allclose(mean["akp"], akp / spec.NUM_AUX_CHANNELS, rtol=1e-5)
  # The classification terms do not depend on the keypoint reduction.
  for term in ("kphv", "cho", "dhp", "seg"):
    np.testing.assert_allclose(mean[term], got[term], rtol=1e-6)


def test_gaussian_target_peaks_at_the_keypoint_and_sums_to_one():
  xy = tf.constant([[[5.0, 3.0], [0.4, 0.2]]])  # [B=1, C=2, 2] in input pixels.
  target = losses.gaussian_target(xy, 4, 6, stride=2, sigma_cells=1.0).numpy()
  assert target.shape == (1, 2, 24)
  np.testing.assert_allclose(target.sum(-1), 1.0, rtol=1e-6)
  # (5, 3) px is at cell coordinates (col 2.25, row 1.25): the nearest centre is (1, 2).
  row, col = divmod(int(target[0, 0].argmax()), 6)
  assert (row, col) == (1, 2)
  row, col = divmod(int(target[0, 1].argmax()), 6)
  assert (row, col) == (0, 0)


def test_gaussian_target_loss_is_lowest_for_matching_maps():
  """The soft target's cross-entropy prefers a peak at the keypoint to one a cell away."""
  xy = tf.constant([[[6.5, 2.5]]])  # Cell (row 1, col 3) centre at stride 2 is (6.5, 2.5).
  index, mask, weights = tf.constant([[7]]), tf.constant([[1.0]]), tf.constant([1.0])
  good = np.zeros((1, 4, 6, 1), np.float32)
  good[0, 1, 3, 0] = 5.0
  off = np.zeros((1, 4, 6, 1), np.float32)
  off[0, 1, 4, 0] = 5.0
  args = dict(xy=xy, stride=2, sigma_cells=1.0)
  a = losses.keypoint_cross_entropy(tf.constant(good), index, mask, weights, **args)
  b = losses.keypoint_cross_entropy(tf.constant(off), index, mask, weights, **args)
  assert a.numpy()[0] < b.numpy()[0]
  with pytest.raises(ValueError, match="needs the keypoints xy"):
    losses.keypoint_cross_entropy(tf.constant(good), index, mask, weights, sigma_cells=1.0)


def test_total_is_weighted_sum_of_terms(batch):
  outputs, targets = batch
  w = losses.LossWeights()
  got = losses.compute_losses(outputs, targets, w, global_batch_size=B)
  assert set(got) == set(losses.TERMS) | {"total"}
  expected = sum(getattr(w, t) * got[t].numpy() for t in losses.TERMS)
  np.testing.assert_allclose(got["total"].numpy(), expected, rtol=1e-6)
  assert all(np.isfinite(v.numpy()) and v.numpy() > 0 for v in got.values())


def test_switched_off_term_is_not_computed_and_has_no_gradient(batch):
  outputs, targets = batch
  w = losses.LossWeights(seg=0.0)
  seg = tf.Variable(outputs[spec.SEGMENTATION])
  with tf.GradientTape() as tape:
    got = losses.compute_losses({**outputs, spec.SEGMENTATION: seg}, targets, w, B)
  assert "seg" not in got
  assert tape.gradient(got["total"], seg) is None
  # Heads of inactive terms need not exist at all.
  del outputs[spec.SEGMENTATION]
  losses.compute_losses(outputs, targets, w, B)


def test_fingertip_doubling(batch):
  outputs, targets = batch
  on = losses.compute_losses(outputs, targets, losses.LossWeights(), B)
  off = losses.compute_losses(outputs, targets, losses.LossWeights(fingertip_double=False), B)
  assert on["kp"].numpy() > off["kp"].numpy()
  assert on["seg"].numpy() == off["seg"].numpy()


def test_absent_hand_does_not_contribute_to_pose(batch):
  outputs, targets = batch
  pose = outputs[spec.POSE].numpy()
  pose[1, 1] += 100.0  # Right hand of example 1 is absent.
  changed = dict(outputs, **{spec.POSE: tf.constant(pose)})
  a = losses.compute_losses(outputs, targets, losses.LossWeights(), B)["dhp"]
  b = losses.compute_losses(changed, targets, losses.LossWeights(), B)["dhp"]
  assert a.numpy() == b.numpy()


@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_global_batch_normalisation_splits_over_replicas(batch, sigma):
  outputs, targets = batch
  w = losses.LossWeights(target_sigma_cells=sigma)
  whole = losses.compute_losses(outputs, targets, w, B)["total"]
  halves = [losses.compute_losses({k: v[i:i + 1] for k, v in outputs.items()},
                                  {k: v[i:i + 1] for k, v in targets.items()}, w, B)["total"]
            for i in range(B)]
  np.testing.assert_allclose(whole.numpy(), sum(h.numpy() for h in halves), rtol=1e-6)


def test_bad_weights():
  with pytest.raises(ValueError, match="seg=-1"):
    losses.LossWeights(seg=-1.0)
  with pytest.raises(ValueError, match="keypoint_reduction 'max'"):
    losses.LossWeights(keypoint_reduction="max")
  with pytest.raises(ValueError, match="target_sigma_cells=-1"):
    losses.LossWeights(target_sigma_cells=-1.0)
  with pytest.raises(ValueError, match="at least one term"):
    losses.LossWeights(**{t: 0.0 for t in losses.TERMS})


def _with_flags(targets, seg, pose, orientation):
  return dict(targets, segmentation_known=tf.constant(seg, tf.float32),
              pose_known=tf.constant(pose, tf.float32),
              orientation_known=tf.constant(orientation, tf.float32))


def test_all_known_flags_leave_every_term_unchanged(batch):
  outputs, targets = batch
  plain = losses.compute_losses(outputs, targets, losses.LossWeights(), B)
  flagged = losses.compute_losses(
      outputs, _with_flags(targets, [1, 1], [[1, 1]] * B, [[1, 1]] * B), losses.LossWeights(), B)
  for term, value in plain.items():
    assert flagged[term].numpy() == value.numpy(), term


def test_unknown_labels_get_no_gradient_and_are_left_out_of_the_mean(batch):
  outputs, targets = batch
  flagged = _with_flags(targets, [0, 1], [[1, 1], [0, 1]], [[0, 1], [1, 1]])
  heads = {k: tf.Variable(outputs[k]) for k in (spec.SEGMENTATION, spec.POSE, spec.ORIENTATION)}
  with tf.GradientTape() as tape:
    got = losses.compute_losses({**outputs, **heads}, flagged, losses.LossWeights(), B)
  grads = {k: g.numpy() for k, g in zip(heads, tape.gradient(got["total"], list(heads.values())))}
  assert not np.any(grads[spec.SEGMENTATION][0]) and np.all(np.any(grads[spec.SEGMENTATION][1]))
  assert not np.any(grads[spec.POSE][1, 0]) and np.any(grads[spec.POSE][0, 0])
  assert not np.any(grads[spec.ORIENTATION][0, 0]) and np.any(grads[spec.ORIENTATION][0, 1])
  # Averaged over the known labels only: the segmentation term is example 1's alone.
  alone = losses.compute_losses({k: v[1:] for k, v in outputs.items()},
                                {k: v[1:] for k, v in targets.items()}, losses.LossWeights(), 1)
  np.testing.assert_allclose(got["seg"].numpy(), alone["seg"].numpy(), rtol=1e-6)


def test_a_batch_without_known_labels_contributes_zero_not_nan(batch):
  outputs, targets = batch
  flagged = _with_flags(targets, [0, 0], [[0, 0]] * B, [[0, 0]] * B)
  seg = tf.Variable(outputs[spec.SEGMENTATION])
  with tf.GradientTape() as tape:
    got = losses.compute_losses({**outputs, spec.SEGMENTATION: seg}, flagged,
                                losses.LossWeights(), B)
  for term in ("seg", "dhp", "cho"):
    assert got[term].numpy() == 0.0, term
  assert np.isfinite(got["total"].numpy())
  assert not np.any(tape.gradient(got["total"], seg).numpy())


def test_seg_term_adds_the_hand_mask_against_block_shares(batch):
  outputs, targets = batch
  rng = np.random.default_rng(1)
  s = spec.HAND_MASK_STRIDE
  shares = rng.dirichlet(np.ones(3), (B, IN_H // s, IN_W // s)).astype(np.float32)
  mask = rng.normal(size=shares.shape).astype(np.float32)
  w = losses.LossWeights()
  alone = losses.compute_losses(outputs, targets, w, B)["seg"].numpy()
  both = losses.compute_losses({**outputs, spec.HAND_MASK: tf.constant(mask)},
                               {**targets, "hand_mask": tf.constant(shares)}, w, B)["seg"]
  log_p = mask - np.log(np.exp(mask).sum(-1, keepdims=True))
  by_hand = -(shares * log_p).sum(-1).mean(axis=(1, 2)).mean()
  np.testing.assert_allclose(both.numpy(), alone + by_hand, rtol=1e-5)
  # The hand mask alone is a segmentation term too; with neither output, a clear error.
  only = {k: v for k, v in outputs.items() if k != spec.SEGMENTATION}
  got = losses.compute_losses({**only, spec.HAND_MASK: tf.constant(mask)},
                              {**targets, "hand_mask": tf.constant(shares)}, w, B)["seg"]
  np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-5)
  with pytest.raises(ValueError, match="Lseg needs a segmentation or hand_mask output"):
    losses.compute_losses(only, targets, w, B)
