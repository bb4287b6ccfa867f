"""Where a trained model's keypoint error comes from (not a test).

  .venv/bin/python benchmarks/error_analysis.py --checkpoint=RUN [--split=val]
      [--max_batches=20] [--out=FILE.json]

Evaluates a run's best checkpoint (Keras, inference mode) on a split and
breaks the mean 2D error of the visible primary keypoints down: the
distribution (median, share of keypoints and of the error sum above 4, 8,
16 and 32 px), one- against two-hand frames, distance from the camera, each
keypoint, and how many large errors (> 16 px) land on the *other* hand's
same keypoint (a left/right swap). With --mirror the network sees each
image mirrored left-right, and its keypoints are mirrored back with the two
hands' maps swapped: the left hands are then found by the right-hand maps
and the other way round, which tells the network's share of a difference
between the sides from the data's. With --mirror_ensemble the outputs are
the mean of the network's on each image and on its mirror image
(hand25d.mirror). docs/training.md, "What limits accuracy" and "The mirror
ensemble", reads it.
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import json

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import decoding
from hand25d import mirror as mirror_lib
from hand25d import spec
from hand25d.training import evaluation

import numpy as np
import tensorflow as tf

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir or checkpoint.",
                                  required=True)
_DATA = flags.DEFINE_string("data", None, "Data set (default: the run's).")
_SPLIT = flags.DEFINE_string("split", "val", "Split to analyse.")
_MAX_BATCHES = flags.DEFINE_integer("max_batches", 20, "Batches of 32 (0: the whole split).")
_OUT = flags.DEFINE_string("out", None, "Also write the figures as JSON here.")
_MIRROR = flags.DEFINE_bool("mirror", False, "Run the network on mirrored images (see above).")
_ENSEMBLE = flags.DEFINE_bool("mirror_ensemble", False,
                              "Average the outputs on each image and its mirror image.")

_LARGE_PX = 16.0
_DEPTH_BINS_M = ((0.0, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 2.0))


def _errors(model, data, mirror: bool = False, ensemble: bool = False
            ) -> dict[str, np.ndarray]:
  """Per visible primary keypoint: error, error to the other hand's same keypoint, etc."""
  predict = tf.function(lambda x: model(x, training=False))
  run = lambda x: {k: v.numpy() for k, v in predict(x).items()}  # noqa: E731
  n = spec.NUM_PRIMARY_KEYPOINTS
  cols = {k: [] for k in ("err", "other_err", "hands", "depth", "channel")}
  for features, targets in data:
    image = features["image"]
    outputs = run(image[:, :, ::-1] if mirror else image)
    if ensemble:
      outputs = mirror_lib.ensemble(outputs, run(mirror_lib.mirror_images(image)))
    xy, _ = decoding.decode_outputs(outputs)
    if mirror:  # Back to the image's coordinates; the left-hand maps found the right hand.
      xy[..., 0] = image.shape[2] - 1 - xy[..., 0]
      xy = np.concatenate([xy[:, n:], xy[:, :n]], axis=1)
    pick = spec.PRIMARY_KEYPOINT_INDICES
    true = targets["keypoints_xy"].numpy()[:, :, pick].reshape(-1, 2 * n, 2)
    visible = targets["keypoint_visible"].numpy()[:, :, pick].reshape(-1, 2 * n) > 0.5
    depth = targets["keypoints_depth"].numpy()[:, :, pick].reshape(-1, 2 * n)
    hands = targets["hand_present"].numpy().sum(axis=1)
    other = np.concatenate([true[:, n:], true[:, :n]], axis=1)
    other_visible = np.concatenate([visible[:, n:], visible[:, :n]], axis=1)
    err = np.linalg.norm(xy - true, axis=-1)
    other_err = np.where(other_visible, np.linalg.norm(xy - other, axis=-1), np.inf)
    b, c = np.nonzero(visible)
    cols["err"].append(err[b, c])
    cols["other_err"].append(other_err[b, c])
    cols["hands"].append(hands[b])
    cols["depth"].append(depth[b, c])
    cols["channel"].append(c)
  return {k: np.concatenate(v) for k, v in cols.items()}


def analyse(e: dict[str, np.ndarray]) -> dict:
  """The figures of the module docstring from _errors' columns."""
  err = e["err"]
  stats = lambda m: {"keypoints": int(m.sum()), "mean_px": float(err[m].mean()),  # noqa: E731
                     "median_px": float(np.median(err[m])),
                     f"over_{_LARGE_PX:g}px": float(np.mean(err[m] > _LARGE_PX))}
  large = err > _LARGE_PX
  return {
      "keypoints": int(err.size), "mean_px": float(err.mean()),
      "median_px": float(np.median(err)),
      "tail": {f"{t}px": {"share_of_keypoints": float(np.mean(err > t)),
                          "share_of_error_sum": float(err[err > t].sum() / err.sum())}
               for t in (4, 8, 16, 32)},
      "large_errors_on_other_hand": float(np.mean(e["other_err"][large] < 8.0)),
      "by_side": {side: stats((e["channel"] // spec.NUM_PRIMARY_KEYPOINTS) == i)
                  for i, side in enumerate(spec.SIDES)},
      "by_hands_in_frame": {f"{h}": stats(e["hands"] == h) for h in (1, 2)
                            if np.any(e["hands"] == h)},
      "by_depth_m": {f"{lo}-{hi}": stats((e["depth"] >= lo) & (e["depth"] < hi))
                     for lo, hi in _DEPTH_BINS_M
                     if np.any((e["depth"] >= lo) & (e["depth"] < hi))},
      "by_keypoint": {name: stats(e["channel"] == c) for c, name in
                      enumerate(spec.channel_names()) if np.any(e["channel"] == c)},
  }


def main(argv):
  del argv
  if _MIRROR.value and _ENSEMBLE.value:
    raise app.UsageError("--mirror and --mirror_ensemble: choose one")
  model, cfg, prefix = evaluation.load_model(_CHECKPOINT.value)
  data = evaluation.eval_dataset(cfg, _DATA.value or cfg.data_dir, _SPLIT.value,
                                 max_batches=_MAX_BATCHES.value, with_extras=True)
  res = {"checkpoint": prefix, "split": _SPLIT.value, "mirror": _MIRROR.value,
         "mirror_ensemble": _ENSEMBLE.value,
         **analyse(_errors(model, data, _MIRROR.value, _ENSEMBLE.value))}
  how = " (mirrored)" if _MIRROR.value else " (mirror ensemble)" if _ENSEMBLE.value else ""
  print(f"{prefix} on {_SPLIT.value}{how}: "
        f"{res['keypoints']} keypoints, mean {res['mean_px']:.2f} px, "
        f"median {res['median_px']:.2f} px")
  for t, v in res["tail"].items():
    print(f"  > {t}: {100 * v['share_of_keypoints']:.1f}% of keypoints, "
          f"{100 * v['share_of_error_sum']:.1f}% of the error sum")
  print(f"  large errors (> {_LARGE_PX:g} px) on the other hand's keypoint: "
        f"{100 * res['large_errors_on_other_hand']:.1f}%")
  for group in ("by_side", "by_hands_in_frame", "by_depth_m", "by_keypoint"):
    for key, s in res[group].items():
      print(f"  {group[3:]} {key:24s} n={s['keypoints']:5d}  mean {s['mean_px']:6.2f}  "
            f"median {s['median_px']:5.2f}  >{_LARGE_PX:g}px {100 * s[f'over_{_LARGE_PX:g}px']:4.1f}%")
  if _OUT.value:
    atomic.write_json(_OUT.value, res)
  print(json.dumps({"mean_px": res["mean_px"], "median_px": res["median_px"]}))


if __name__ == "__main__":
  app.run(main)
