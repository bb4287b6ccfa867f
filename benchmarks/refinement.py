"""Sub-pixel refinement of the decoded keypoints, and the choice of its constants (not a test).

  .venv/bin/python benchmarks/refinement.py --checkpoint=RUN [--data=DIR]
      [--radii=1,2,3,4,5] [--temperatures=0.35,0.5,0.7,1]
      [--out=benchmarks/results/refinement.json]

Runs a trained model on the validation and the test users and decodes its
score maps (with its hand mask, if it has one) with each refinement: none
(the peak cell's centre), the parabola through the peak and its two
neighbours on each axis (hand25d's refinement before the local
soft-argmax, kept here as the peer), and the local soft-argmax of
hand25d.decoding at each window radius and temperature; with a hand mask
also `capped`, hand25d's refinement on maps capped at each chosen peak's
logit, so that a stronger peak the mask demoted cannot pull the keypoint
(not chosen: docs/training.md). For each: mean and
median 2D error of the visible primary keypoints (input pixels, 120x160),
PCK@2 and PCK@4, and the mean signed error (x, y). The refinement moves
keypoints by at most a few cells, so PCK@4 (2 cells at stride 2) is what it
is chosen for: decoding.REFINE_RADIUS and REFINE_TEMPERATURE are the grid
point with the highest validation PCK@4, and the test figures are reported
for them.
docs/training.md ("Sub-pixel decoding") reads it.
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
_RADII = flags.DEFINE_list("radii", ["1", "2", "3", "4", "5"],
                           "Window radii of the local soft-argmax (cells).")
_TEMPERATURES = flags.DEFINE_list("temperatures", ["0.35", "0.5", "0.7", "1"],
                                  "Softmax temperatures of the local soft-argmax (logits).")
_MAX_BATCHES = flags.DEFINE_integer("max_batches", 0, "Batches of 32 per split (0: all).")
_OUT = flags.DEFINE_string("out", None, "Also write the figures as JSON here.")

_SPLITS = ("val", "test")


def _parabola(maps: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
  """The peer: [B, C, 2] (dx, dy) cell offsets from the peak cells to the parabolas' vertices."""
  b, h, w, c = maps.shape
  bi, ci = np.meshgrid(np.arange(b), np.arange(c), indexing="ij")

  def at(r, q):
    return maps[bi, np.clip(r, 0, h - 1), np.clip(q, 0, w - 1), ci].astype(np.float64)

  def offset(left, centre, right, inside):
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
      vertex = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    return np.where(inside, np.clip(vertex, -0.5, 0.5), 0.0)

  centre = at(row, col)
  dx = offset(at(row, col - 1), centre, at(row, col + 1), (col > 0) & (col < w - 1))
  dy = offset(at(row - 1, col), centre, at(row + 1, col), (row > 0) & (row < h - 1))
  return np.stack([dx, dy], axis=-1)


def _variants(outputs: dict[str, np.ndarray], grid: list[tuple[int, float]]
              ) -> dict[str, np.ndarray]:
  """Decoded [B, 16, 2] keypoints per refinement."""
  maps, mask = outputs[spec.KEYPOINTS], outputs.get(spec.HAND_MASK)
  stride = spec.OUTPUT_STRIDE
  cells, _ = decoding.decode(maps, stride, refine=False, hand_mask=mask)
  col = decoding.pixel_to_cell(cells[..., 0], stride)
  row = decoding.pixel_to_cell(cells[..., 1], stride)
  res = {"none": cells, "parabola": cells + _parabola(maps, row, col) * stride}
  for radius, temperature in grid:
    res[f"r{radius}_t{temperature:g}"], _ = decoding.decode(
        maps, stride, hand_mask=mask, refine_radius=radius, refine_temperature=temperature)
  if mask is not None:  # hand25d's refinement on maps capped at each chosen peak's logit.
    peak = np.take_along_axis(maps.reshape(len(maps), -1, maps.shape[-1]),
                              (row * maps.shape[2] + col)[:, None, :], axis=1)
    capped = np.minimum(maps, peak[:, None])
    res["capped"], _ = decoding.decode(capped, stride, hand_mask=mask)
  return res


def _errors(model, data, grid, what: str) -> dict[str, dict[str, np.ndarray]]:
  """Per refinement: the error vector (x, y) of each visible primary keypoint."""
  predict = tf.function(lambda x: model(x, training=False))
  cols: dict[str, list[np.ndarray]] = {}
  with progress.Progress(what, total=None, unit="batches") as bar:
    for features, targets in data:
      outputs = {k: v.numpy() for k, v in predict(features["image"]).items()}
      true, visible = metrics.primary_labels({k: v.numpy() for k, v in targets.items()})
      for name, xy in _variants(outputs, grid).items():
        cols.setdefault(name, []).append((xy - true)[visible])
      bar.update(1)
  return {name: np.concatenate(v) for name, v in cols.items()}


def _stats(diff: np.ndarray) -> dict:
  err = np.linalg.norm(diff, axis=-1)
  return {"keypoints": int(err.size), "mean_px": float(err.mean()),
          "median_px": float(np.median(err)), "pck2": float(np.mean(err <= 2.0)),
          "pck4": float(np.mean(err <= 4.0)), "bias_xy_px": diff.mean(axis=0).tolist()}


def _best(rows: dict[str, dict]) -> str:
  """The soft-argmax grid point with the highest PCK@4."""
  grid = {k: v for k, v in rows.items() if k[0] == "r" and k[1].isdigit()}
  return max(grid, key=lambda k: grid[k]["pck4"])


def main(argv):
  del argv
  grid = [(int(r), float(t)) for r in _RADII.value for t in _TEMPERATURES.value]
  grid = sorted(set(grid) | {(decoding.REFINE_RADIUS, decoding.REFINE_TEMPERATURE)})
  model, cfg, prefix = evaluation.load_model(_CHECKPOINT.value)
  res = {"checkpoint": prefix, "data": _DATA.value or cfg.data_dir,
         "hand_mask": bool(cfg.model.hand_mask),
         "refine_radius": decoding.REFINE_RADIUS,
         "refine_temperature": decoding.REFINE_TEMPERATURE, "splits": {}}
  for split in _SPLITS:
    data = evaluation.eval_dataset(cfg, res["data"], split, max_batches=_MAX_BATCHES.value)
    errors = _errors(model, data, grid, f"{split} frames")
    res["splits"][split] = {name: _stats(e) for name, e in errors.items()}
  res["best_on_val"] = _best(res["splits"]["val"])
  current = f"r{decoding.REFINE_RADIUS}_t{decoding.REFINE_TEMPERATURE:g}"
  print(f"{prefix}: 2D error of the visible primary keypoints by refinement "
        "(rR_tT: local soft-argmax, radius R cells, temperature T)")
  for split, rows in res["splits"].items():
    print(f"  {split} ({next(iter(rows.values()))['keypoints']} keypoints)")
    for name, s in rows.items():
      print(f"    {name:>10}: mean {s['mean_px']:6.3f}  median {s['median_px']:5.3f}  "
            f"PCK@2 {s['pck2']:.4f}  PCK@4 {s['pck4']:.4f}  "
            f"bias ({s['bias_xy_px'][0]:+.3f}, {s['bias_xy_px'][1]:+.3f}) px")
  print(f"  best on the validation users: {res['best_on_val']}; hand25d.decoding uses {current}")
  if _OUT.value:
    atomic.write_json(_OUT.value, res)
  test = res["splits"]["test"]
  print(json.dumps({"test_parabola": {k: test["parabola"][k] for k in ("mean_px", "pck4")},
                    "test_soft_argmax": {k: test[current][k] for k in ("mean_px", "pck4")},
                    "best_on_val": res["best_on_val"]}))


if __name__ == "__main__":
  app.run(main)
