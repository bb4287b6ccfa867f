"""Warm start: a new run's weights taken, layer by layer name, from a trained model.

`train_main --init_from=SOURCE` (TrainConfig.init_weights) starts a run from

  pretrained   the shipped model (hand25d/pretrained/training.weights.h5,
               built from the config.json next to it);
  FILE.h5      weights saved by `model.save_weights` of a training model,
               with the config.json of the run that saved them in the same
               directory (as export/pretrained.py writes them);
  CHECKPOINT   a checkpoint prefix, a checkpoint directory or a run's workdir
               (its best checkpoint), as `eval_main --checkpoint` takes.

Keras' `.weights.h5` files are read by topology, not by layer name, so a
model with other heads would take weights into the wrong layers. Here the
source model is rebuilt from its own config and restored exactly, and each
layer of the new model that has weights takes the weights of the source's
layer of the same name (every layer of hand25d's networks has a stable
name). Layers the source lacks keep their initial weights (e.g. a head the
source was trained without); layers only the source has are left unused.
"""

import os

from absl import logging
import numpy as np
import tf_keras as keras

from hand25d import pretrained
from hand25d.model import network
from hand25d.training import config as config_lib
from hand25d.training import evaluation

PRETRAINED = "pretrained"
REPORT_FILE = "init_from.json"


def _h5_source(path: str) -> keras.Model:
  """The training model of a .h5 weights file, built from the config.json beside it."""
  cfg = source_config(path)
  config_path = os.path.join(os.path.dirname(os.path.abspath(path)), config_lib.CONFIG_FILE)
  model = network.build_training_model(cfg.model)
  try:
    model.load_weights(path)
  except (ValueError, OSError) as e:
    raise ValueError(f"init_from {path} does not match the model of {config_path}: "
                     f"{str(e).splitlines()[0][:300]}") from e
  return model


def source_config(init_from: str) -> config_lib.TrainConfig:
  """The config of the run that trained `init_from` (any form load_source takes).

  A run started from those weights builds their architecture by default
  (overrides.train_config, for train_main, takes its model section from
  here), so that fine-tuning never needs to know how the source was built.

  Raises:
    ValueError: no such file or run, or a .h5 without the config beside it.
  """
  if init_from == PRETRAINED:
    return config_lib.load(pretrained.DIRECTORY)
  if init_from.endswith(".h5"):
    directory = os.path.dirname(os.path.abspath(init_from))
    if not os.path.exists(os.path.join(directory, config_lib.CONFIG_FILE)):
      raise ValueError(f"init_from {init_from}: no {config_lib.CONFIG_FILE} next to it; a "
                       ".h5 needs the config of the run that saved it (or give that run's "
                       "checkpoint instead)")
    return config_lib.load(directory)
  try:
    workdir, _ = evaluation.find_run(init_from)
    return config_lib.load(workdir)
  except FileNotFoundError as e:
    raise ValueError(f"init_from {init_from!r} is neither {PRETRAINED!r}, a .h5 file nor a "
                     f"checkpoint: {e}") from e


def load_source(init_from: str) -> tuple[keras.Model, str]:
  """The trained model named by `init_from` and the file it was read from.

  Raises:
    ValueError: no such file, checkpoint or run, or a .h5 without its config.
  """
  if init_from == PRETRAINED:
    path = pretrained.path(pretrained.TRAINING_WEIGHTS)
    return _h5_source(path), path
  if init_from.endswith(".h5"):
    if not os.path.exists(init_from):
      raise ValueError(f"init_from {init_from} does not exist")
    return _h5_source(init_from), os.path.abspath(init_from)
  try:
    model, _, prefix = evaluation.load_model(init_from)
  except FileNotFoundError as e:
    raise ValueError(f"init_from {init_from!r} is neither {PRETRAINED!r}, a .h5 file nor a "
                     f"checkpoint: {e}") from e
  return model, prefix


def _weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
  return {layer.name: layer for layer in model.layers if layer.weights}


def copy_by_name(model: keras.Model, source: dict[str, list[np.ndarray]],
                 where: str) -> dict:
  """Sets the weights of `model`'s layers from `source`, matched by layer name.

  Args:
    model: the model to start (its layers with weights are matched).
    source: layer name -> that layer's weights (as `layer.get_weights()`).
    where: the source, for messages.

  Returns:
    {"loaded": names set from the source, "kept_initial": names the source
    lacks, "unused": source names the model lacks}, in layer order.

  Raises:
    ValueError: a layer whose weights have other shapes in the source (the
      first in the model's order, with both shapes; nothing is set), or no
      layer in common.
  """
  layers = _weighted_layers(model)
  common = [name for name in layers if name in source]  # In the model's layer order.
  for name in common:
    want = [tuple(w.shape) for w in layers[name].weights]
    have = [tuple(np.shape(w)) for w in source[name]]
    if want != have:
      raise ValueError(f"init_from {where}: layer {name!r} has weights of shapes {have} "
                       f"there but {want} in this model (another architecture or input size?)")
  if not common:
    raise ValueError(f"init_from {where}: no layer of this model is in it (another backbone?); "
                     f"this model has {sorted(layers)[:5]}..., it has {sorted(source)[:5]}...")
  for name in common:
    layers[name].set_weights(source[name])
  return {"loaded": common, "kept_initial": [n for n in layers if n not in source],
          "unused": [n for n in source if n not in layers]}


def warm_start(model: keras.Model, init_from: str) -> dict:
  """Starts `model` from the trained model `init_from` names (see the module doc).

  Logs what was loaded and what was not.

  Returns:
    copy_by_name's report with "init_from" (as given) and "source" (the file
    or checkpoint prefix read); the training loop writes it into the run's
    workdir as REPORT_FILE.

  Raises:
    ValueError: see load_source and copy_by_name.
  """
  source_model, where = load_source(init_from)
  source = {name: layer.get_weights() for name, layer in _weighted_layers(source_model).items()}
  report = {"init_from": init_from, "source": where, **copy_by_name(model, source, where)}
  logging.info("Started from %s: %d layers loaded, %d kept their initial weights (%s), "
               "%d of the source unused (%s)", where, len(report["loaded"]),
               len(report["kept_initial"]), ", ".join(report["kept_initial"]) or "none",
               len(report["unused"]), ", ".join(report["unused"]) or "none")
  return report
