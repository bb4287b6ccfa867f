"""Two-hand compositing: paste one side's hand from frame b into frame a by depth.

Works on any decoded frame dicts with a segmentation mask (synthetic or
imported), at any resolution, as long as keypoints are in the same pixel frame
as the images. `composite_batch` handles a batch at once (the input pipeline
pairs each example with its neighbour in the batch); `composite` is the
single-frame form. Eager (numpy in, tensors out) and inside tf.data alike.
"""

import tensorflow as tf

from hand25d import spec

# Keys with a leading side axis: they move with the hand.
PER_SIDE_KEYS = ("keypoints_xy", "keypoints_depth", "keypoint_visible", "hand_present", "pose",
                 "orientation_bin", "roll_deg")
# Label-known flags (hand25d.data.records.KNOWN_FEATURES) with a side axis:
# they move with the hand too. A frame without them is fully labelled.
PER_SIDE_FLAGS = ("pose_known", "orientation_known")
# Keys whose last two axes are the image: pixels move with the hand.
IMAGE_KEYS = ("amplitude", "depth", "true_depth", "phase_frames")


def keypoint_labels_at(segmentation: tf.Tensor, keypoints_xy: tf.Tensor) -> tf.Tensor:
  """[B, S, K] segmentation class at each keypoint's nearest pixel (-1 outside).

  Args:
    segmentation: [B, H, W] masks.
    keypoints_xy: [B, S, K, 2] pixel coordinates.
  """
  h, w = tf.shape(segmentation)[1], tf.shape(segmentation)[2]
  col = tf.cast(tf.round(keypoints_xy[..., 0]), tf.int32)
  row = tf.cast(tf.round(keypoints_xy[..., 1]), tf.int32)
  inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
  batch = tf.broadcast_to(tf.range(tf.shape(col)[0])[:, None, None], tf.shape(col))
  idx = tf.stack([batch, tf.clip_by_value(row, 0, h - 1), tf.clip_by_value(col, 0, w - 1)], -1)
  return tf.where(inside, tf.cast(tf.gather_nd(segmentation, idx), tf.int32), -1)


def _known(frame: dict, name: str, shape) -> tf.Tensor:
  """A label-known flag of a (batched) frame as bool; all known if the frame has none."""
  if name in frame:
    return tf.cast(frame[name], tf.bool)
  return tf.ones(shape, tf.bool)


def can_composite(a: dict, b: dict, side) -> tf.Tensor:
  """True where b has a hand of `side` and a has none (a frame holds one hand per side).

  b's segmentation must be known: without a mask its hand cannot be cut out.

  Works on single frames (side an int) and on batches (side an int or [B]).
  """
  present_a = tf.convert_to_tensor(a["hand_present"])
  present_b = tf.convert_to_tensor(b["hand_present"])
  side = tf.convert_to_tensor(side, tf.int32)
  take = lambda p: tf.gather(p, side, axis=-1, batch_dims=side.shape.rank)
  seg_known_b = _known(b, "segmentation_known", tf.shape(present_b)[:-1])
  return (tf.cast(take(present_b), tf.bool) & tf.logical_not(tf.cast(take(present_a), tf.bool)) &
          seg_known_b)


def composite_batch(a: dict, b: dict, side: tf.Tensor, apply: tf.Tensor) -> dict:
  """Batched compositing: where `apply`, frame a gets b's hand of `side`.

  b's hand pixels are pasted where they are nearer than a's surface
  (measured depth; 0 = invalid counts as infinitely far in a and as near in
  b's hand). b's labels of `side` replace a's; the visibility of every
  keypoint of a composited frame is re-checked against the merged mask, so a
  keypoint covered by the other hand becomes invisible. Callers check
  can_composite; frames where it is false must have `apply` false.

  Args:
    a, b: batched frame dicts (see PER_SIDE_KEYS, IMAGE_KEYS; 'segmentation'
      and 'depth' are required).
    side: int32 [B], spec.LEFT or spec.RIGHT per example.
    apply: bool [B], which examples to composite.

  Returns:
    A new batched frame dict with a's keys.
  """
  seg_a = tf.convert_to_tensor(a["segmentation"])
  seg_b = tf.convert_to_tensor(b["segmentation"])
  side = tf.cast(side, tf.int32)
  hand_class = tf.gather(tf.constant(spec.SIDE_SEGMENTATION_CLASS, seg_b.dtype), side)
  depth_a = tf.cast(a["depth"], tf.float32)
  depth_b = tf.cast(b["depth"], tf.float32)
  a_far = tf.where(depth_a > 0, depth_a, float("inf"))
  paste = (apply[:, None, None] & tf.equal(seg_b, hand_class[:, None, None]) &
           (depth_b <= a_far))
  out = dict(a)
  for key in IMAGE_KEYS:
    if key in a and key in b:
      va, vb = tf.convert_to_tensor(a[key]), tf.convert_to_tensor(b[key])
      mask = tf.reshape(paste, tf.concat([tf.shape(paste)[:1], tf.ones([va.shape.rank - 3],
                                                                       tf.int32),
                                          tf.shape(paste)[1:]], 0))
      out[key] = tf.where(mask, tf.cast(vb, va.dtype), va)
  out["segmentation"] = tf.where(paste, seg_b, seg_a)
  is_side = tf.equal(tf.range(spec.NUM_SIDES)[None, :], side[:, None]) & apply[:, None]
  for key in PER_SIDE_KEYS:
    va, vb = tf.convert_to_tensor(a[key]), tf.convert_to_tensor(b[key])
    mask = tf.reshape(is_side, [-1, spec.NUM_SIDES] + [1] * (va.shape.rank - 2))
    out[key] = tf.where(mask, tf.cast(vb, va.dtype), va)
  batch = tf.shape(seg_a)[:1]
  per_side = tf.concat([batch, [spec.NUM_SIDES]], 0)
  for key in PER_SIDE_FLAGS:
    out[key] = tf.cast(tf.where(is_side, _known(b, key, per_side), _known(a, key, per_side)),
                       tf.int32)
  seg_known_a = _known(a, "segmentation_known", batch)
  seg_known_b = _known(b, "segmentation_known", batch)
  out["segmentation_known"] = tf.cast(tf.where(apply, seg_known_a & seg_known_b, seg_known_a),
                                      tf.int32)
  # Visibility: still on its own hand's pixels in the merged mask; with a's
  # mask unknown, a's own keypoints only lose what the pasted hand covers.
  xy = tf.cast(out["keypoints_xy"], tf.float32)
  labels = keypoint_labels_at(out["segmentation"], xy)
  own = tf.equal(labels, tf.constant(spec.SIDE_SEGMENTATION_CLASS, tf.int32)[None, :, None])
  covered = tf.equal(keypoint_labels_at(tf.cast(paste, tf.int32), xy), 1)
  unknown_own = ~seg_known_a[:, None, None] & ~is_side[:, :, None]
  own = own | (unknown_own & ~covered)
  vis = out["keypoint_visible"]
  out["keypoint_visible"] = tf.where(apply[:, None, None] & ~own, tf.zeros_like(vis), vis)
  present = out["hand_present"]
  pasted_none = ~tf.reduce_any(paste, axis=[1, 2])
  out["hand_present"] = tf.where(is_side & pasted_none[:, None], tf.zeros_like(present), present)
  return out


def composite(a: dict, b: dict, side: int) -> dict:
  """Frame a with b's hand of `side` pasted in (single frames; see composite_batch)."""
  batch = lambda f: {k: tf.convert_to_tensor(v)[None] for k, v in f.items()}
  out = composite_batch(batch(a), batch(b), tf.constant([side]), tf.constant([True]))
  return {k: v[0] for k, v in out.items()}
