"""Keypoint decoding with and without the hand mask, and the choice of its weight (not a test).

  .venv/bin/python benchmarks/hand_mask_decoding.py --checkpoint=RUN [--data=DIR]
      [--weights=0,0.25,0.5,0.75,1,1.5,2] [--mask_from=hand_mask|segmentation]
      [--out=benchmarks/results/hand_mask_decoding.json]

Runs a trained model with a hand mask (ModelConfig.hand_mask) on the
validation and the test users and decodes its score maps at each weight of
the mask's log-probability (hand25d.decoding.decode's mask_weight; 0 is
decoding without the mask, the peer). For each: mean and median 2D error of
the visible primary keypoints (input pixels, 120x160), PCK@4, the share above
16 px, and the share of keypoints found within 8 px of the *other* hand's
same keypoint (a left/right swap). The weight to use is the one with the
lowest mean validation error, except that weights within 0.5% of that error
are a tie, which goes to the highest validation PCK@4 (the error curve is
flat near its minimum while larger weights cost precision);
decoding.HAND_MASK_WEIGHT is compared with it, and the test figures are
reported for both. With
--mask_from=segmentation the mask is the training model's segmentation head
(the paper's BiSeNet branch, too costly to deploy) averaged to the hand
mask's stride (or to --segmentation_stride): how far a better (or finer)
mask could go. docs/training.md ("Decoding
with the hand mask") reads it.
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import json

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import decoding
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d import metrics
from hand25d import progress
from hand25d import spec
from hand25d.training import evaluation

import numpy as np
import tensorflow as tf

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir or checkpoint.",
                                  required=True)
_DATA = flags.DEFINE_string("data", None, "Data set (default: the run's).")
_WEIGHTS = flags.DEFINE_list("weights", ["0", "0.25", "0.5", "0.75", "1", "1.5", "2"],
                             "Weights of the hand mask's log-probability; 0: without it.")
_MAX_BATCHES = flags.DEFINE_integer("max_batches", 0, "Batches of 32 per split (0: all).")
_OUT = flags.DEFINE_string("out", None, "Also write the figures as JSON here.")
_MASK_FROM = flags.DEFINE_enum(
    "mask_from", spec.HAND_MASK, [spec.HAND_MASK, spec.SEGMENTATION],
    "The mask decoded with: the model's hand mask, or its training-time segmentation "
    "head (stride 2, ~34 MFLOPs more) averaged to the hand mask's stride, for comparison.")

_SEGMENTATION_STRIDE = flags.DEFINE_enum(
    "segmentation_stride", str(spec.HAND_MASK_STRIDE), ["2", "4", "8"],
    "With --mask_from=segmentation: the stride the segmentation is averaged to (the hand "
    "mask's, or finer: whether a finer mask could help).")

_SPLITS = ("val", "test")
_SWAP_PX = 8.0
# Mean errors within this share of the lowest are a tie, broken by PCK@4.
_MEAN_TIE = 0.005


def _mask(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
  """(mask logits [B, H/s, W/s, 3], stride s): the hand mask, or the segmentation's pooled
  log-probabilities at --segmentation_stride."""
  if _MASK_FROM.value == spec.HAND_MASK:
    return outputs[spec.HAND_MASK], spec.HAND_MASK_STRIDE
  seg = outputs[spec.SEGMENTATION]
  prob = np.exp(seg - seg.max(axis=-1, keepdims=True))
  prob /= prob.sum(axis=-1, keepdims=True)
  b, h, w, c = prob.shape
  stride = int(_SEGMENTATION_STRIDE.value)
  f = stride // spec.SEGMENTATION_STRIDE
  pooled = prob.reshape(b, h // f, f, w // f, f, c).mean(axis=(2, 4))
  return np.log(np.maximum(pooled, 1e-30)), stride


def _errors(model, data, weights: list[float], what: str) -> dict[float, dict[str, np.ndarray]]:
  """Per weight: the error of each visible primary keypoint and to the other hand's."""
  predict = tf.function(lambda x: model(x, training=False))
  n = spec.NUM_PRIMARY_KEYPOINTS
  cols = {w: {"err": [], "other": []} for w in weights}
  with progress.Progress(what, total=None, unit="batches") as bar:
    for features, targets in data:
      outputs = {k: v.numpy() for k, v in predict(features["image"]).items()}
      true, visible = metrics.primary_labels({k: v.numpy() for k, v in targets.items()})
      other = np.concatenate([true[:, n:], true[:, :n]], axis=1)
      other_visible = np.concatenate([visible[:, n:], visible[:, :n]], axis=1)
      mask, mask_stride = _mask(outputs)
      for w in weights:
        xy, _ = decoding.decode(outputs[spec.KEYPOINTS], spec.OUTPUT_STRIDE,
                                hand_mask=mask if w else None, mask_stride=mask_stride,
                                mask_weight=w)
        other_err = np.where(other_visible, np.linalg.norm(xy - other, axis=-1), np.inf)
        cols[w]["err"].append(np.linalg.norm(xy - true, axis=-1)[visible])
        cols[w]["other"].append(other_err[visible])
      bar.update(1)
  return {w: {k: np.concatenate(v) for k, v in c.items()} for w, c in cols.items()}


def _stats(e: dict[str, np.ndarray]) -> dict:
  err = e["err"]
  return {"keypoints": int(err.size), "mean_px": float(err.mean()),
          "median_px": float(np.median(err)), "pck4": float(np.mean(err <= 4.0)),
          "over_16px": float(np.mean(err > 16.0)),
          "swaps": float(np.mean((err > _SWAP_PX) & (e["other"] < _SWAP_PX)))}


def _best(rows: dict[str, dict]) -> str:
  """The weight of lowest mean error; of those within _MEAN_TIE of it, the highest PCK@4."""
  low = min(v["mean_px"] for v in rows.values())
  near = [w for w, v in rows.items() if v["mean_px"] <= low * (1.0 + _MEAN_TIE)]
  return max(near, key=lambda w: (rows[w]["pck4"], -rows[w]["mean_px"]))


def main(argv):
  del argv
  if (_MASK_FROM.value == spec.HAND_MASK
      and not flags.FLAGS["segmentation_stride"].using_default_value):
    raise app.UsageError("--segmentation_stride needs --mask_from=segmentation")
  weights = sorted({float(w) for w in _WEIGHTS.value} | {0.0, decoding.HAND_MASK_WEIGHT})
  model, cfg, prefix = evaluation.load_model(_CHECKPOINT.value)
  if _MASK_FROM.value == spec.HAND_MASK and not cfg.model.hand_mask:
    raise app.UsageError(f"{prefix}: the model has no hand mask (ModelConfig.hand_mask)")
  if _MASK_FROM.value == spec.SEGMENTATION and not cfg.model.segmentation:
    raise app.UsageError(f"{prefix}: the model has no segmentation head")
  res = {"checkpoint": prefix, "data": _DATA.value or cfg.data_dir, "mask_from": _MASK_FROM.value,
         "mask_stride": (spec.HAND_MASK_STRIDE if _MASK_FROM.value == spec.HAND_MASK
                         else int(_SEGMENTATION_STRIDE.value)),
         "hand_mask_weight": decoding.HAND_MASK_WEIGHT,
         "hand_mask_floor": decoding.HAND_MASK_FLOOR, "splits": {}}
  for split in _SPLITS:
    data = evaluation.eval_dataset(cfg, res["data"], split, max_batches=_MAX_BATCHES.value)
    errors = _errors(model, data, weights, f"{split} frames")
    res["splits"][split] = {f"{w:g}": _stats(e) for w, e in errors.items()}
  val = res["splits"]["val"]
  res["best_weight_on_val"] = _best(val)
  print(f"{prefix}: 2D error of the visible primary keypoints by hand-mask weight "
        "(0: decoded without the mask)")
  for split, rows in res["splits"].items():
    print(f"  {split} ({next(iter(rows.values()))['keypoints']} keypoints)")
    for w, s in rows.items():
      print(f"    weight {w:>5}: mean {s['mean_px']:6.3f}  median {s['median_px']:5.3f}  "
            f"PCK@4 {s['pck4']:.3f}  >16px {100 * s['over_16px']:4.1f}%  "
            f"swaps {100 * s['swaps']:4.2f}%")
  print(f"  best weight on the validation users: {res['best_weight_on_val']}; "
        f"decoding.HAND_MASK_WEIGHT = {decoding.HAND_MASK_WEIGHT:g}")
  if _OUT.value:
    atomic.write_json(_OUT.value, res)
  test = res["splits"]["test"]
  print(json.dumps({"test_mean_px_without_mask": test["0"]["mean_px"],
                    "test_mean_px_with_mask": test[f"{decoding.HAND_MASK_WEIGHT:g}"]["mean_px"],
                    "best_weight_on_val": res["best_weight_on_val"]}))


if __name__ == "__main__":
  app.run(main)
