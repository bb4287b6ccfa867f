"""Evaluation of a training model on a data split, and of a saved checkpoint."""

import os
from typing import Callable, Optional

import tensorflow as tf
import tf_keras as keras

from hand25d import atomic
from hand25d import metrics
from hand25d import mirror
from hand25d import progress
from hand25d.data import pipeline
from hand25d.model import network
from hand25d.training import config as config_lib
from hand25d.training import distribute


def make_evaluator(model: keras.Model, mirror_ensemble: bool = False) -> Callable[..., dict]:
  """Returns evaluate(dataset, total=None, what="eval") -> `metrics.Evaluator.result()`.

  evaluate logs its progress (hand25d.progress) as "what: frames/total ...";
  `total` is the number of frames the dataset holds, if known (for the ETA).
  The first batch, which traces the model, is left out of the rate. With
  `mirror_ensemble` every output is the mean of the model's on each image and
  on its mirror image (hand25d.mirror).
  """

  @tf.function
  def predict(images):
    return model(images, training=False)

  def outputs_of(images) -> dict:
    outputs = {k: v.numpy() for k, v in predict(images).items()}
    if not mirror_ensemble:
      return outputs
    mirrored = predict(mirror.mirror_images(images))
    return mirror.ensemble(outputs, {k: v.numpy() for k, v in mirrored.items()})

  def evaluate(dataset: tf.data.Dataset, total: Optional[int] = None, what: str = "eval") -> dict:
    ev = metrics.Evaluator()
    with progress.Progress(what, total, "frames", skip=1) as reporter:
      for features, targets in dataset:
        ev.update(outputs_of(features["image"]), {k: v.numpy() for k, v in targets.items()})
        reporter.update(int(features["image"].shape[0]))
    return ev.result()

  return evaluate


def scalars(res: dict) -> dict[str, float]:
  """The numeric entries of a result dict, flattened to 'a/b' names."""
  out = {}
  for key, value in res.items():
    if isinstance(value, dict):
      out.update({f"{key}/{k}": v for k, v in scalars(value).items()})
    elif isinstance(value, (int, float)) and value is not None:
      out[key] = float(value)
  return out


def find_run(checkpoint: str) -> tuple[str, str]:
  """(workdir, checkpoint prefix) of a checkpoint path, a checkpoint dir or a workdir.

  Raises:
    FileNotFoundError: no checkpoint or no run config is found there.
  """
  path = os.path.abspath(checkpoint)
  if os.path.isdir(path):
    for candidate in (path, os.path.join(path, "checkpoints", "best"),
                      os.path.join(path, "checkpoints")):
      found = distribute.checkpoints(candidate)
      if found:
        path = found[0]
        break
    else:
      raise FileNotFoundError(f"no checkpoint in {checkpoint}")
  elif not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"checkpoint {checkpoint} not found (no {path}.index)")
  run = os.path.dirname(path)
  while not os.path.exists(os.path.join(run, config_lib.CONFIG_FILE)):
    parent = os.path.dirname(run)
    if parent == run:
      raise FileNotFoundError(
          f"no {config_lib.CONFIG_FILE} above checkpoint {checkpoint}: not a hand25d run")
    run = parent
  return run, path


def load_model(checkpoint: str) -> tuple[keras.Model, config_lib.TrainConfig, str]:
  """The training model of a saved run with the checkpoint's weights restored.

  Given a directory, a newest checkpoint that is damaged is skipped with a
  warning (distribute.restore_newest); a checkpoint named by its prefix is
  restored as named.

  Returns:
    (model, the run's config, the checkpoint prefix restored).

  Raises:
    distribute.CorruptCheckpointError: the named checkpoint, or every one in
      the directory, is damaged.
  """
  workdir, prefix = find_run(checkpoint)
  cfg = config_lib.load(workdir)
  model = network.build_training_model(cfg.model)
  ckpt = tf.train.Checkpoint(model=model)
  if os.path.isdir(checkpoint):
    prefix = distribute.restore_newest(ckpt, os.path.dirname(prefix))
  else:
    distribute.restore(ckpt, prefix)
  return model, cfg, prefix


def eval_dataset(cfg: config_lib.TrainConfig, data_dir: str, split: str, batch_size: int = 32,
                 max_batches: int = 0, with_extras: bool = False) -> tf.data.Dataset:
  """`split` of `data_dir` as a run's model reads it, unaugmented, in order.

  Args:
    cfg: the run's config (its model's input mode and size).
    data_dir: a data set (docs/data_format.md).
    split: "train", "val" or "test".
    batch_size: frames per batch.
    max_batches: only the first this many batches (0: all).
    with_extras: also the targets pipeline.make_dataset adds for analyses
      (keypoints' depth, roll, the depth image).

  Returns:
    (features, targets) batches of pipeline.make_dataset.
  """
  data = pipeline.make_dataset(data_dir, split, batch_size, training=False,
                               input_mode=cfg.model.input_mode,
                               input_height=cfg.model.input_height,
                               input_width=cfg.model.input_width, with_extras=with_extras)
  return data.take(max_batches) if max_batches else data


def evaluate_checkpoint(checkpoint: str, data_dir: str, split: str, out_dir: str,
                        batch_size: int = 32, mirror_ensemble: bool = False) -> dict:
  """Evaluates a checkpoint on `split` of `data_dir`; writes metrics.json and .md.

  With `mirror_ensemble`, of the mean outputs on each image and its mirror
  image (`make_evaluator`).

  Returns:
    The metrics dict, with the checkpoint, data, split and mirror_ensemble
    recorded in it.

  Raises:
    hand25d.data.records.RecordError: a bad record, named by shard and record index.
  """
  model, cfg, prefix = load_model(checkpoint)
  data = eval_dataset(cfg, data_dir, split, batch_size)
  try:
    res = make_evaluator(model, mirror_ensemble)(
        data, distribute.split_frames(data_dir, split), f"eval {split}")
  except pipeline.DATA_ERRORS as e:
    raise pipeline.name_data_error(data_dir, split, e) from e
  res = {"checkpoint": prefix, "data_dir": os.path.abspath(data_dir), "split": split,
         "mirror_ensemble": mirror_ensemble, **res}
  atomic.write_json(os.path.join(out_dir, "metrics.json"), res)
  atomic.write_text(os.path.join(out_dir, "metrics.md"), metrics.format_markdown(res))
  return res
