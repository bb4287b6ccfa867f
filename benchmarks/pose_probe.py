"""How much of the hand pose and orientation each input carries: probes on frozen inputs.

  .venv/bin/python benchmarks/pose_probe.py --data=DIR [--checkpoint=RUN]
      [--train_frames=0] [--noise_px=1,2,4] [--out=benchmarks/results/pose_probe.json]

A probe is a small classifier trained on one input, with everything before it
fixed, and scored on the validation users (hands present with a known
label): how well can pose (9 classes) and orientation (8 bins) be read from

  true keypoints    the labelled 2D keypoints of a hand, relative to its
                    wrist and divided by the largest distance from it (as
                    hand25d.model.layers.HandKeypointGeometry does with the
                    predicted ones): all 17, and the 8 primary; and all 17
                    with Gaussian noise of each --noise_px (pixels of the
                    120x160 input, in training and validation alike), a
                    stand-in for a network's keypoint error;
  features          with --checkpoint, the trained network's Tier-3 output
                    (64 channels at 1/8), averaged over the whole frame (as
                    pose_from="features" heads read it) or over the true
                    mask of each hand (the best a per-hand pooling could do);
  predicted         with --checkpoint, the layout of the 17 keypoints per
                    hand the network predicts (its auxiliary score maps), by
                    soft-argmax (as pose_from="keypoints+features" reads
                    them) and by arg-max;
  keypoint features with --checkpoint, the auxiliary decoder's last hidden
                    features (1/4) at each of a hand's 17 keypoints,
                    concatenated: read at the true keypoints' cells, and
                    pooled under each predicted score map's spatial softmax
                    (what a head that looks at the fingers could read).

Each probe is an MLP (keypoints and keypoint features: 2 hidden layers of
128; pooled features: linear and one hidden layer of 64) with a one-hot side
appended, Adam, seed 0.
Probes on the true keypoints bound what the keypoint heads can reach;
docs/training.md ("Pose and orientation") reads them.
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import spec
from hand25d.data import pipeline
from hand25d.model import layers
from hand25d.training import evaluation

import numpy as np
import tensorflow as tf
import tf_keras as keras

_DATA = flags.DEFINE_string("data", None, "Data set directory.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Also probe this trained run's features.")
_TRAIN_FRAMES = flags.DEFINE_integer(
    "train_frames", 0, "Training frames the probes fit (0: the whole split). Shards are read in "
    "order, so fewer frames cover fewer training users.")
_VAL_FRAMES = flags.DEFINE_integer(
    "val_frames", 0, "Validation frames they are scored on (0: the whole split).")
_NOISE_PX = flags.DEFINE_list("noise_px", ["1", "2", "4"],
                               "Noise levels (px) of the noisy true-keypoint probes.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/pose_probe.json", "JSON output.")


def _layout(xy: np.ndarray) -> np.ndarray:
  """[N, sides, K, 2] keypoints -> [N, sides, 2K]: wrist-relative, scaled to the hand."""
  relative = xy - xy[:, :, :1]
  scale = np.linalg.norm(relative, axis=-1).max(-1)[..., None, None]
  return (relative / (scale + 1e-6)).reshape(xy.shape[0], xy.shape[1], -1)


def _argmax_xy(maps: np.ndarray) -> np.ndarray:
  """[B, H, W, sides * K] logits -> [B, sides, K, 2] arg-max cells (x, y)."""
  b, h, w, c = maps.shape
  index = maps.reshape(b, h * w, c).argmax(1)
  xy = np.stack([index % w, index // w], -1).astype(np.float32)
  return xy.reshape(b, spec.NUM_SIDES, c // spec.NUM_SIDES, 2)


def _at_cells(features: np.ndarray, xy: np.ndarray, stride: int) -> np.ndarray:
  """[B, h, w, C] features at the cells of [B, sides, K, 2] input pixels -> [B, sides, K * C]."""
  b, h, w, _ = features.shape
  # Pixel i's centre is at coordinate i (data/pipeline.py).
  cx = np.clip(((xy[..., 0] + 0.5) // stride).astype(int), 0, w - 1)
  cy = np.clip(((xy[..., 1] + 0.5) // stride).astype(int), 0, h - 1)
  picked = features[np.arange(b)[:, None, None], cy, cx]  # [B, sides, K, C]
  return picked.reshape(b, xy.shape[1], -1)


def _softmax_pooled(features: tf.Tensor, maps: tf.Tensor) -> np.ndarray:
  """[B, h, w, C] features pooled under each of [B, H, W, sides * K] maps' softmax.

  The softmax over each map's H x W cells is summed into the features' cells
  (H / h x W / w blocks). Returns [B, sides, K * C].
  """
  b, height, width, k = maps.shape
  weights = tf.nn.softmax(tf.reshape(maps, [b, height * width, k]), axis=1)
  weights = tf.reshape(weights, [b, height, width, k])
  factor = height // features.shape[1]
  weights = tf.nn.avg_pool2d(weights, factor, factor, "VALID") * factor * factor
  pooled = tf.einsum("bhwk,bhwc->bkc", weights, features).numpy()
  return pooled.reshape(b, spec.NUM_SIDES, -1)


def _collect(split: str, frames: int, features: keras.Model | None) -> dict[str, np.ndarray]:
  """Inputs and labels of the first `frames` frames of a split (0: all), per hand."""
  out = {}
  seen = 0
  for x, t in pipeline.make_dataset(_DATA.value, split, 32, training=False):
    present = t["hand_present"].numpy()
    rows = {
        "xy": t["keypoints_xy"].numpy(),
        "keypoints_17": _layout(t["keypoints_xy"].numpy()),
        "keypoints_8": _layout(t["keypoints_xy"].numpy()[:, :, list(spec.PRIMARY_KEYPOINT_INDICES)]),
        "pose": t["pose"].numpy(), "pose_known": t["pose_known"].numpy() * present,
        "orientation": t["orientation"].numpy().argmax(-1),
        "orientation_known": t["orientation_known"].numpy() * present,
    }
    if features is not None:
      tapped = features(x["image"], training=False)
      tier3, maps = tapped["tier3"], tapped["maps"]
      hidden = tapped["aux_hidden"]
      stride = x["image"].shape[1] // hidden.shape[1]
      rows["keypoint_features_true"] = _at_cells(hidden.numpy(), rows["xy"], stride)
      rows["keypoint_features_softmax"] = _softmax_pooled(hidden, maps)
      rows["predicted_soft_argmax"] = layers.HandKeypointGeometry(spec.NUM_SIDES)(maps).numpy()
      rows["predicted_argmax"] = _layout(_argmax_xy(maps.numpy()))
      masks = tf.one_hot(t["segmentation"], spec.NUM_SEGMENTATION_CLASSES)[..., 1:]
      masks = tf.image.resize(masks, tier3.shape[1:3], "area")
      masks /= tf.reduce_sum(masks, [1, 2], keepdims=True) + 1e-6
      global_average = tf.reduce_mean(tier3, [1, 2])
      rows["features_global"] = np.repeat(global_average.numpy()[:, None], spec.NUM_SIDES, 1)
      rows["features_true_mask"] = tf.einsum("bhwc,bhws->bsc", tier3, masks).numpy()
    for key, value in rows.items():
      out.setdefault(key, []).append(value)
    seen += len(present)
    if frames and seen >= frames:
      break
  return {key: np.concatenate(value)[:frames or None] for key, value in out.items()}


def _probe(train: dict, val: dict, inputs: str, label: str, hidden: tuple[int, ...]) -> float:
  """Validation accuracy of an MLP probe from `inputs` to `label` over known hands."""
  def rows(d):
    side = np.broadcast_to(np.eye(spec.NUM_SIDES), d[inputs].shape[:2] + (spec.NUM_SIDES,))
    x = np.concatenate([d[inputs], side], -1).reshape(-1, d[inputs].shape[-1] + spec.NUM_SIDES)
    known = d[f"{label}_known"].reshape(-1) > 0.5
    return x[known], d[label].reshape(-1)[known]

  (x_train, y_train), (x_val, y_val) = rows(train), rows(val)
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  keras.utils.set_random_seed(0)
  classes = spec.NUM_POSE_CLASSES if label == "pose" else spec.NUM_ORIENTATION_BINS
  model = keras.Sequential([keras.layers.Dense(n, activation="relu") for n in hidden]
                           + [keras.layers.Dense(classes)])
  model.compile(keras.optimizers.Adam(2e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit((x_train - mean) / std, y_train, batch_size=128, epochs=40, verbose=0)
  predicted = model.predict((x_val - mean) / std, verbose=0).argmax(-1)
  return float((predicted == y_val).mean())


def main(argv):
  del argv
  features = None
  if _CHECKPOINT.value:
    model, _, prefix = evaluation.load_model(_CHECKPOINT.value)
    features = keras.Model(model.input, {"tier3": model.get_layer("tier3_concat").output,
                                         "maps": model.output[spec.AUX_KEYPOINTS],
                                         "aux_hidden": model.get_layer(
                                             "aux_decoder_conv2_relu").output})
    print(f"features of {prefix}")
  train = _collect("train", _TRAIN_FRAMES.value, features)
  val = _collect("val", _VAL_FRAMES.value, features)
  probes = [("keypoints_17", (128, 128)), ("keypoints_8", (128, 128))]
  rng = np.random.default_rng(0)
  for noise in map(float, _NOISE_PX.value):
    name = f"keypoints_17_noise_{noise:g}px"
    for d in (train, val):
      d[name] = _layout(d["xy"] + rng.normal(0.0, noise, d["xy"].shape))
    probes.append((name, (128, 128)))
  if features is not None:
    probes += [(name, hidden) for name in ("features_global", "features_true_mask")
               for hidden in ((), (64,))]
    probes += [(name, (128, 128)) for name in ("predicted_soft_argmax", "predicted_argmax",
                                               "keypoint_features_true",
                                               "keypoint_features_softmax")]
  report = {"data": os.path.abspath(_DATA.value), "checkpoint": _CHECKPOINT.value,
            "train_frames": len(train["pose"]), "val_frames": len(val["pose"]), "probes": []}
  print(f"{'input':28s} {'hidden':>9s} {'pose':>6s} {'orientation':>11s}  (validation users)")
  for inputs, hidden in probes:
    row = {"input": inputs, "hidden": list(hidden),
           "pose_accuracy": _probe(train, val, inputs, "pose", hidden),
           "orientation_accuracy": _probe(train, val, inputs, "orientation", hidden)}
    report["probes"].append(row)
    print(f"{inputs:28s} {str(list(hidden)):>9s} {row['pose_accuracy']:6.3f} "
          f"{row['orientation_accuracy']:11.3f}", flush=True)
  atomic.write_json(_OUT.value, report)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  tf.get_logger().setLevel("ERROR")
  app.run(main)
