"""Evaluation metrics (docs/training.md, "Metrics"), accumulated over batches in numpy.

The paper's metric is the mean 2D Euclidean error in pixels of the network
input over the visible primary keypoints. Alongside it: per keypoint and per
side errors, PCK, pose and orientation accuracy, visibility and presence F1
and segmentation mIoU. Heads missing from the outputs are skipped, and so are
labels whose label-known flag is 0 (pose, orientation, segmentation): an
unknown label is not counted as wrong.
"""

from typing import Mapping, Optional

import numpy as np

from hand25d import decoding
from hand25d import spec

PCK_THRESHOLDS_PX = (2.0, 4.0, 8.0)


def primary_labels(targets: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """The labels of the score maps' keypoints, in their channel order.

  Args:
    targets: pipeline targets of a batch: keypoints_xy [B, 2, 17, 2] (input
      pixels) and keypoint_visible [B, 2, 17].

  Returns:
    (xy [B, 16, 2] float, visible [B, 16] bool) of the primary keypoints,
    channel side * spec.NUM_PRIMARY_KEYPOINTS + k as the spec.KEYPOINTS maps.
  """
  pick = spec.PRIMARY_KEYPOINT_INDICES
  xy = np.asarray(targets["keypoints_xy"])[:, :, pick].reshape(-1, spec.NUM_PRIMARY_CHANNELS, 2)
  visible = np.asarray(targets["keypoint_visible"])[:, :, pick] > 0.5
  return xy, visible.reshape(-1, spec.NUM_PRIMARY_CHANNELS)


def _ratio(num: float, den: float) -> Optional[float]:
  return float(num) / float(den) if den > 0 else None


def _f1(tp: float, fp: float, fn: float) -> Optional[float]:
  return _ratio(2.0 * tp, 2.0 * tp + fp + fn)


class Evaluator:
  """Accumulates metrics batch by batch; `result()` gives a JSON-able dict."""

  def __init__(self):
    c = spec.NUM_PRIMARY_CHANNELS
    self._err_sum = np.zeros(c)
    self._err_count = np.zeros(c)
    self._pck_hits = np.zeros(len(PCK_THRESHOLDS_PX))
    self._counts = {}  # name -> [hits, total] or [tp, fp, fn].
    self._seg_confusion = np.zeros((spec.NUM_SEGMENTATION_CLASSES,) * 2, np.int64)
    self._errors = []  # Errors (px) of the evaluated keypoints, batch by batch: the median.
    self.num_examples = 0

  def _add(self, name: str, values) -> None:
    self._counts[name] = self._counts.get(name, 0) + np.asarray(values, np.float64)

  def update(self, outputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray]) -> None:
    """Adds one batch: model outputs (logits) and pipeline targets, as numpy."""
    self.num_examples += len(targets["hand_present"])
    present = np.asarray(targets["hand_present"]) > 0.5
    visible = np.asarray(targets["keypoint_visible"]) > 0.5
    if spec.KEYPOINTS in outputs:
      xy, _ = decoding.decode_outputs(outputs)
      true_xy, mask = primary_labels(targets)
      err = np.linalg.norm(xy - true_xy, axis=-1)
      self._err_sum += np.where(mask, err, 0.0).sum(axis=0)
      self._err_count += mask.sum(axis=0)
      self._pck_hits += [np.sum(mask & (err <= t)) for t in PCK_THRESHOLDS_PX]
      self._errors.append(err[mask])
    if spec.POSE in outputs:
      hit = np.argmax(outputs[spec.POSE], axis=-1) == np.asarray(targets["pose"])
      counted = present & _known(targets, "pose_known", present.shape)
      self._add("pose", [np.sum(hit & counted), np.sum(counted)])
    if spec.ORIENTATION in outputs:
      true_bin = np.argmax(targets["orientation"], axis=-1)
      hit = np.argmax(outputs[spec.ORIENTATION], axis=-1) == true_bin
      counted = present & _known(targets, "orientation_known", present.shape)
      self._add("orientation", [np.sum(hit & counted), np.sum(counted)])
    if spec.VISIBILITY in outputs:
      self._add("visibility", _confusion(np.asarray(outputs[spec.VISIBILITY]) > 0, visible))
    if spec.PRESENCE in outputs:
      self._add("presence", _confusion(np.asarray(outputs[spec.PRESENCE]) > 0, present))
    if spec.SEGMENTATION in outputs:
      k = spec.NUM_SEGMENTATION_CLASSES
      known = _known(targets, "segmentation_known", present.shape[:1])
      pred = np.argmax(outputs[spec.SEGMENTATION], axis=-1)[known].ravel()
      true = np.asarray(targets["segmentation"])[known].ravel()
      self._seg_confusion += np.bincount(true * k + pred, minlength=k * k).reshape(k, k)

  def result(self) -> dict:
    """The metrics so far; None where there was nothing to measure."""
    names = spec.channel_names()
    n = spec.NUM_PRIMARY_KEYPOINTS
    total = self._err_count.sum()
    res = {
        "num_examples": self.num_examples,
        "num_keypoints": int(total),
        "mean_px_error": _ratio(self._err_sum.sum(), total),
        "median_px_error": (float(np.median(np.concatenate(self._errors)))
                            if total else None),
        "per_keypoint_px_error": {
            name: _ratio(s, k) for name, s, k in zip(names, self._err_sum, self._err_count)},
        "per_side_px_error": {
            side: _ratio(self._err_sum[i * n:(i + 1) * n].sum(),
                         self._err_count[i * n:(i + 1) * n].sum())
            for i, side in enumerate(spec.SIDES)},
        "pck": {f"{t:g}px": _ratio(h, total) for t, h in zip(PCK_THRESHOLDS_PX, self._pck_hits)},
    }
    for name in ("pose", "orientation"):
      if name in self._counts:
        res[f"{name}_accuracy"] = _ratio(*self._counts[name])
    for name in ("visibility", "presence"):
      if name in self._counts:
        res[f"{name}_f1"] = _f1(*self._counts[name])
    if self._seg_confusion.sum():
      conf = self._seg_confusion
      inter = np.diag(conf)
      union = conf.sum(axis=0) + conf.sum(axis=1) - inter
      iou = {c: _ratio(i, u) for c, i, u in zip(spec.SEGMENTATION_CLASSES, inter, union)}
      valid = [v for v in iou.values() if v is not None]
      res["segmentation_iou"] = iou
      res["segmentation_miou"] = float(np.mean(valid)) if valid else None
    return res


def _known(targets: Mapping[str, np.ndarray], name: str, shape) -> np.ndarray:
  """A label-known flag of the targets as bool (all known if the targets lack it)."""
  return np.asarray(targets[name]) > 0.5 if name in targets else np.ones(shape, bool)


def _confusion(pred: np.ndarray, true: np.ndarray) -> list[int]:
  """[tp, fp, fn] of boolean predictions against boolean truth."""
  return [np.sum(pred & true), np.sum(pred & ~true), np.sum(~pred & true)]


def _fmt(value: Optional[float], digits: int = 3) -> str:
  return "n/a" if value is None else f"{value:.{digits}f}"


def format_markdown(res: Mapping) -> str:
  """A readable markdown table of `Evaluator.result()`."""
  rows = [("mean 2D error (px, visible primary keypoints)", _fmt(res["mean_px_error"])),
          ("median 2D error (px)", _fmt(res.get("median_px_error"))),
          ("keypoints evaluated", str(res["num_keypoints"]))]
  if res.get("mirror_ensemble"):
    rows.append(("outputs", "mirror ensemble: mean of the image's and its mirror image's"))
  rows += [(f"{side} hand error (px)", _fmt(v)) for side, v in res["per_side_px_error"].items()]
  rows += [(f"PCK@{t}", _fmt(v)) for t, v in res["pck"].items()]
  for key, label in (("pose_accuracy", "pose accuracy"),
                     ("orientation_accuracy", "orientation accuracy"),
                     ("visibility_f1", "keypoint visibility F1"),
                     ("presence_f1", "hand presence F1"),
                     ("segmentation_miou", "segmentation mIoU")):
    if key in res:
      rows.append((label, _fmt(res[key])))
  lines = ["| metric | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
  lines += ["", "| keypoint | error (px) |", "| --- | --- |"]
  lines += [f"| {k} | {_fmt(v)} |" for k, v in res["per_keypoint_px_error"].items()]
  return "\n".join(lines) + "\n"
