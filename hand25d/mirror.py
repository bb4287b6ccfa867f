"""The mirror ensemble: the network run on an image and on its mirror image.

The mirror image of a left hand (columns reversed) looks like a right hand, so
the network's right-hand outputs on the mirrored image are a second estimate
of the left hand, and its left-hand outputs one of the right hand. `unmirror`
maps the outputs of a mirrored input back to the image's columns and sides;
`ensemble` averages them with the outputs of the image itself. It costs a
second pass of the network and nothing else: no weights, no training.
docs/training.md ("The mirror ensemble") measures it.

The averages are of logits. For a score map the softmax of the mean is the
normalised geometric mean of the two passes' softmaxes, sqrt(p1 p2): a
keypoint is put where both passes agree it may be, and the distribution is
softer than either pass's where they disagree. The maps' cells mirror
exactly: cell column c of a map at stride s covers input pixels [c s, c s +
s - 1], and its mirror column W/s - 1 - c covers their mirror pixels (W the
input width, a multiple of every output stride). The keypoint and hand-mask
targets are symmetric in that way; the segmentation head's are not quite
(they are sampled by nearest-neighbour down-sizing, which takes the last
pixel of each block, hand25d.data.pipeline), so its two passes disagree by
about a pixel and their mean is slightly blurred. Pose classes and orientation bins are mirror
symmetric by construction (hand25d.data.poses.hand_frame), so only their
sides swap, as in the training pipeline's flip (hand25d.data.pipeline.augment).

Numpy only, shared by evaluation and the on-device runtime.
"""

from typing import Mapping

import numpy as np

from hand25d import spec

# Score maps and segmentation logits [B, H, W, C]: the channel each channel becomes.
_MAP_PERMUTATIONS = {
    spec.KEYPOINTS: spec.PRIMARY_FLIP_PERMUTATION,
    spec.AUX_KEYPOINTS: spec.AUX_FLIP_PERMUTATION,
    spec.SEGMENTATION: spec.SEGMENTATION_FLIP_PERMUTATION,
    spec.HAND_MASK: spec.SEGMENTATION_FLIP_PERMUTATION,
    **{spec.deep_supervision_output(s): spec.PRIMARY_FLIP_PERMUTATION
       for s in spec.DEEP_SUPERVISION_STRIDES},
}
# Per-side outputs [B, NUM_SIDES, ...]: the sides swap.
_PER_SIDE = (spec.PRESENCE, spec.VISIBILITY, spec.POSE, spec.ORIENTATION)


def mirror_images(images):
  """[B, H, W, C] images with their columns reversed (numpy or TensorFlow; a view in numpy).

  Raises:
    ValueError: the images are not of rank 4 (e.g. one [H, W, C] image).
  """
  if len(images.shape) != 4:
    raise ValueError(f"expected images [B, H, W, C], got shape {list(images.shape)}")
  return images[:, :, ::-1]


def unmirror(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Outputs of the network on mirrored images, in the images' own columns and sides.

  Args:
    outputs: output name (spec) -> logits, as the network gives them: maps
      [B, H, W, C] (keypoints, auxiliary keypoints, deep supervision, hand
      mask, segmentation) and per-side [B, NUM_SIDES, ...] (presence,
      visibility, pose, orientation).

  Returns:
    The same names: maps with their columns reversed and the two hands'
    channels (or segmentation classes) swapped, per-side outputs with their
    sides swapped.

  Raises:
    ValueError: an output this module does not know, or of a shape its name
      does not have (named).
  """
  out = {}
  for name, value in outputs.items():
    value = np.asarray(value)
    if name in _MAP_PERMUTATIONS:
      permutation = _MAP_PERMUTATIONS[name]
      if value.ndim != 4 or value.shape[-1] != len(permutation):
        raise ValueError(f"output {name!r}: expected maps [B, H, W, {len(permutation)}], "
                         f"got shape {list(value.shape)}")
      out[name] = value[:, :, ::-1][..., list(permutation)]
    elif name in _PER_SIDE:
      if value.ndim < 2 or value.shape[1] != spec.NUM_SIDES:
        raise ValueError(f"output {name!r}: expected [B, {spec.NUM_SIDES}, ...] (one entry "
                         f"per side), got shape {list(value.shape)}")
      out[name] = value[:, ::-1]
    else:
      raise ValueError(f"output {name!r} has no known mirror; known: "
                       f"{sorted(_MAP_PERMUTATIONS) + sorted(_PER_SIDE)}")
  return out


def ensemble(outputs: Mapping[str, np.ndarray],
             mirrored_outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The mean of the outputs on the images and, unmirrored, on their mirror images.

  Args:
    outputs: output name -> logits of the network on the images.
    mirrored_outputs: the same on `mirror_images(images)`.

  Returns:
    Output name -> float32 mean logits, the shapes of `outputs`; decode it as
    one pass's outputs (hand25d.decoding.decode_outputs).

  Raises:
    ValueError: the two passes have different outputs, or see `unmirror`.
  """
  if set(outputs) != set(mirrored_outputs):
    raise ValueError(f"the two passes have different outputs: {sorted(outputs)} and "
                     f"{sorted(mirrored_outputs)}")
  back = unmirror(mirrored_outputs)
  out = {}
  for name, value in outputs.items():
    value = np.asarray(value, np.float32)
    if value.shape != back[name].shape:
      raise ValueError(f"output {name!r}: shape {list(value.shape)} on the images and "
                       f"{list(back[name].shape)} on their mirror images")
    out[name] = (value + back[name].astype(np.float32)) * np.float32(0.5)
  return out
