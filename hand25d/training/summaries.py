"""TensorBoard: the run's hyperparameters, fixed validation frames, and reading the logs back.

`write_hparams` records the run's config once per process start (resumes
included; save_or_check keeps it the same) in the HParams dashboard, with the
last and the best validation error as its metrics. `FixedFrames` holds the
first frames of the validation split (the loop loads them) and, at every
evaluation, draws the network's predictions on them beside the labels
(`render`, in numpy): the same frames every time, so the images show the run
learning. `events` and `scalars` read a log directory back (the reproduction's
flatness test, the learning-curve plots, the model card's wall time).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp
import tf_keras as keras

from hand25d import colours
from hand25d import decoding
from hand25d import spec
from hand25d.training import config as config_lib

# The eval writer's directory under the workdir (loop.py) and the scalars there
# that the HParams dashboard shows per run.
EVAL_DIR = "eval"
TRAIN_DIR = "train"  # The training writer's directory (loss scalars).
HPARAMS_METRICS = {"mean_px_error": "val mean px error (last)",
                   "best_mean_px_error": "val mean px error (best)"}
IMAGES_TAG = "validation_frames"
# Config fields that say how a run is logged or watched, not what it learns.
_NOT_HPARAMS = (set(config_lib.RESUMABLE_FIELDS) - {"recipe"}) | {"max_nonfinite_steps"}

_EVENTS_PREFIX = "events.out.tfevents."  # tf.summary's file names: prefix, creation time, host.

_SIDE_RGB = colours.SIDES
_CLASS_RGB = np.array(colours.SEGMENTATION, np.uint8)  # spec.SEGMENTATION_CLASSES.
_UNKNOWN_RGB = (96, 96, 96)  # A mask flagged unknown.
_SCALE = 2  # Drawn at twice the input size: markers of a few pixels stay readable.
_GAP = 2  # White pixels between the panels of a frame.


def hparams(cfg: config_lib.TrainConfig) -> dict[str, bool | int | float | str]:
  """The run's hyperparameters, flat: 'learning_rate', 'loss.seg', 'model.backbone', ...

  Every field of the config but those of logging and watching (RESUMABLE_FIELDS
  other than recipe, and max_nonfinite_steps); tuples become strings.
  """
  out = {}
  for key, value in config_lib.to_dict(cfg).items():
    if key in _NOT_HPARAMS:
      continue
    items = ({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict)
             else {key: value})
    for name, v in items.items():
      out[name] = v if isinstance(v, (bool, int, float, str)) else str(v)
  return out


def write_hparams(cfg: config_lib.TrainConfig, workdir: str) -> None:
  """Writes the run's hyperparameters and metric names into workdir's own events.

  TensorBoard's HParams dashboard then lists the run (as a session) with
  HPARAMS_METRICS read from its eval/ scalars.
  """
  values = hparams(cfg)
  writer = tf.summary.create_file_writer(workdir)
  with writer.as_default():
    hp.hparams_config(
        hparams=[hp.HParam(name) for name in values],
        metrics=[hp.Metric(tag, group=EVAL_DIR, display_name=name)
                 for tag, name in HPARAMS_METRICS.items()])
    hp.hparams(values, trial_id=os.path.basename(os.path.normpath(workdir)))
  writer.close()


def events(log_dir: str):
  """Every tf.compat.v1.Event of the TensorBoard event files in log_dir, as written.

  A run that was resumed has one file per process that wrote to the
  directory; the files are read in the order of the creation time their
  names start with (to the second), each in write order. Nothing if log_dir
  does not exist.
  """
  names = os.listdir(log_dir) if os.path.isdir(log_dir) else []
  for name in sorted((n for n in names if n.startswith(_EVENTS_PREFIX)), key=_creation_time):
    for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
      yield tf.compat.v1.Event.FromString(record.numpy())


def _creation_time(name: str) -> tuple[int, str]:
  """The creation time (s) an event file's name starts with, then the name."""
  stamp = name[len(_EVENTS_PREFIX):].split(".", 1)[0]
  return (int(stamp) if stamp.isdigit() else 0, name)


def scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
  """tag -> [(step, value)] of every scalar summary in log_dir, by step.

  A step logged twice (a resume after a kill between a log and the next
  checkpoint repeats it) keeps the value with the latest wall time. Tensor
  summaries that are not numeric scalars (the validation frames, the
  hyperparameters, text) are left out.
  """
  found: dict[str, dict[int, tuple[float, float]]] = {}  # tag -> step -> (wall time, value)
  for event in events(log_dir):
    for value in event.summary.value:
      array = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
      if array is None or array.ndim != 0 or array.dtype.kind not in "fiu":
        continue
      points = found.setdefault(value.tag, {})
      if event.wall_time >= points.get(int(event.step), (-float("inf"),))[0]:
        points[int(event.step)] = (event.wall_time, float(array))
  return {tag: [(step, v) for step, (_, v) in sorted(points.items())]
          for tag, points in found.items()}


def _put(canvas: np.ndarray, rows: np.ndarray, cols: np.ndarray, rgb) -> None:
  """Colours the pixels (rows, cols) of canvas that fall inside it."""
  rows, cols = np.floor(rows + 0.5).astype(int), np.floor(cols + 0.5).astype(int)
  inside = (rows >= 0) & (rows < canvas.shape[0]) & (cols >= 0) & (cols < canvas.shape[1])
  canvas[rows[inside], cols[inside]] = rgb


def _line(canvas, x0, y0, x1, y1, rgb) -> None:
  n = int(max(abs(x1 - x0), abs(y1 - y0))) + 2
  _put(canvas, np.linspace(y0, y1, n), np.linspace(x0, x1, n), rgb)


def _square(canvas, x, y, r, rgb) -> None:
  """An open square of half-width r: a label."""
  for a in (-r, r):
    _line(canvas, x - r, y + a, x + r, y + a, rgb)
    _line(canvas, x + a, y - r, x + a, y + r, rgb)


def _cross(canvas, x, y, r, rgb) -> None:
  """An x of half-width r: a prediction."""
  _line(canvas, x - r, y - r, x + r, y + r, rgb)
  _line(canvas, x - r, y + r, x + r, y - r, rgb)


def _to_canvas(xy: np.ndarray) -> np.ndarray:
  """Input pixel coordinates (centres at integers) -> canvas pixel coordinates."""
  return (np.asarray(xy, np.float64) + 0.5) * _SCALE - 0.5


def _grey(image: np.ndarray) -> np.ndarray:
  """[H, W] network input -> [H*s, W*s, 3] uint8, scaled to its 99.5th percentile."""
  top = float(np.percentile(image, 99.5)) or 1.0
  grey = (np.clip(image / top, 0.0, 1.0) * 255).astype(np.uint8)
  grey = grey.repeat(_SCALE, 0).repeat(_SCALE, 1)
  return np.repeat(grey[..., None], 3, axis=-1)


def _mask(classes: np.ndarray, height: int, width: int) -> np.ndarray:
  """[h, w] class indices at the segmentation stride -> [height, width, 3] uint8."""
  factor = height // classes.shape[0]
  return _CLASS_RGB[np.clip(classes, 0, len(_CLASS_RGB) - 1)].repeat(factor, 0).repeat(factor, 1)


def render(images: np.ndarray, outputs: dict, targets: dict) -> np.ndarray:
  """Pictures of frames with their predictions: [B, H*2, W*2*panels + gaps, 3] uint8.

  Per frame, side by side: the network input with the true primary keypoints
  (open squares, visible ones only) and the predicted ones (x, decoded as
  evaluation decodes them, hand25d.decoding; for hands present in the label
  or, with a presence head, in the prediction) joined to the label by a
  line; the predicted segmentation (if the model has the head); the true
  segmentation (grey: flagged unknown). Sides in hand25d/colours.py's colours
  (left vermilion, right sky blue).

  Args:
    images: [B, H, W, 1] network inputs.
    outputs: the model's outputs for them, as numpy.
    targets: the pipeline's targets for them, as numpy.
  """
  b, h, w = images.shape[:3]
  height, width = h * _SCALE, w * _SCALE
  n = spec.NUM_PRIMARY_KEYPOINTS
  true_xy = np.asarray(targets["keypoints_xy"])[:, :, spec.PRIMARY_KEYPOINT_INDICES]
  visible = np.asarray(targets["keypoint_visible"])[:, :, spec.PRIMARY_KEYPOINT_INDICES] > 0.5
  present = np.asarray(targets["hand_present"]) > 0.5
  if spec.PRESENCE in outputs:
    present = present | (np.asarray(outputs[spec.PRESENCE]) > 0)
  pred_xy = None
  if spec.KEYPOINTS in outputs:
    pred_xy, _ = decoding.decode_outputs(outputs)
    pred_xy = pred_xy.reshape(b, spec.NUM_SIDES, n, 2)
  frames = []
  for i in range(b):
    canvas = _grey(images[i, ..., 0])
    for side in range(spec.NUM_SIDES):
      rgb = _SIDE_RGB[side]
      true = _to_canvas(true_xy[i, side])
      labelled = np.flatnonzero(visible[i, side])
      predicted = pred_xy is not None and present[i, side]
      if predicted:
        pred = _to_canvas(pred_xy[i, side])
        for k in labelled:  # The error, dimmed.
          _line(canvas, *pred[k], *true[k], tuple(c // 2 for c in rgb))
      for k in labelled:
        _square(canvas, *true[k], 3, rgb)
      if predicted:
        for k in range(n):
          _cross(canvas, *pred[k], 2, rgb)
    panels = [canvas]
    if spec.SEGMENTATION in outputs:
      panels.append(_mask(np.argmax(outputs[spec.SEGMENTATION][i], axis=-1), height, width))
    if targets.get("segmentation_known", np.ones(b))[i] > 0.5:
      panels.append(_mask(np.asarray(targets["segmentation"][i]), height, width))
    else:
      panels.append(np.full((height, width, 3), _UNKNOWN_RGB, np.uint8))
    gap = np.full((height, _GAP, 3), 255, np.uint8)
    frames.append(np.concatenate(sum(([p, gap] for p in panels), [])[:-1], axis=1))
  return np.stack(frames)


@dataclasses.dataclass
class FixedFrames:
  """A few frames kept in memory to draw with the model's predictions at every evaluation."""
  images: np.ndarray  # [K, H, W, 1] network inputs.
  targets: dict  # Their targets, as numpy.

  @classmethod
  def first_batch(cls, dataset: tf.data.Dataset) -> "FixedFrames":
    """The frames of the first (features, targets) batch of an evaluation dataset."""
    features, targets = next(iter(dataset))
    return cls(features["image"].numpy(), {k: v.numpy() for k, v in targets.items()})

  def write(self, model: keras.Model, step: int) -> None:
    """tf.summary.image of the frames with the model's predictions, in the default writer."""
    outputs = {k: v.numpy() for k, v in model(self.images, training=False).items()}
    pictures = render(self.images, outputs, self.targets)
    tf.summary.image(IMAGES_TAG, pictures, step=step, max_outputs=len(pictures),
                     description="Fixed validation frames: input with true (squares) and "
                     "predicted (x) keypoints, predicted segmentation, true segmentation. "
                     "Left vermilion, right sky blue.")
