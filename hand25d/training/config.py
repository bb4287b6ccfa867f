"""The configuration of a training run: one frozen dataclass, saved as JSON.

The run's config is written into its work directory (`config.json`) on the
first start; a resumed run must have the same config, or it stops with an
error that names the fields that differ.
"""

import dataclasses
import json
import os
import typing

from hand25d import atomic
from hand25d import losses
from hand25d import spec
from hand25d.model import config as model_config

DISTRIBUTIONS = ("auto", "one_device", "mirrored", "multi_worker")
CONFIG_FILE = "config.json"
# Fields that may change when a run resumes: they don't change what is learned.
# skip_corrupt_records may be turned on to resume a run stopped by a bad record;
# recipe only names where the other fields came from (a run saved before it
# existed resumes under its recipe).
RESUMABLE_FIELDS = ("log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                    "keep_checkpoints", "max_eval_batches", "progress", "skip_corrupt_records",
                    "summary_images", "recipe")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that defines a training run (see hand25d/train_main.py flags)."""
  data_dir: str
  model: model_config.ModelConfig = model_config.ModelConfig()
  loss: losses.LossWeights = losses.LossWeights()
  batch_size: int = 32  # Global, over all replicas and workers.
  epochs: int = 20
  # Peak; linear decay to 0 over the run (paper §5). The paper's 1e-3 is tuned
  # for ~140K steps; runs of a few thousand steps learn far faster at 1e-2
  # (docs/training.md, "Short runs").
  learning_rate: float = 1e-2
  warmup_steps: int = 0  # Linear warm-up from 0 to learning_rate first.
  seed: int = 0
  augment: bool = True
  train_split: str = "train"
  eval_split: str = "val"
  log_every_steps: int = 50
  eval_every_steps: int = 500  # Also at the end of the run.
  checkpoint_every_steps: int = 200
  keep_checkpoints: int = 3
  max_eval_batches: int = 0  # 0: the whole split.
  max_nonfinite_steps: int = 5  # Consecutive skipped steps that stop the run.
  distribution: str = "auto"  # auto: mirrored over all local devices if > 1.
  progress: bool = True  # Progress lines with an ETA in the log (hand25d/progress.py).
  # Validation frames (the first of eval_split) drawn into TensorBoard at every
  # evaluation with their predicted and true keypoints and segmentation; 0: none.
  summary_images: int = 4
  # Deterministic TensorFlow ops: bit-identical reruns and resumes, a little slower.
  deterministic: bool = False
  # Where a new run's weights come from, matched by layer name (train_main
  # --init_from, hand25d/training/warm_start.py): "pretrained" (the shipped
  # model), a .h5 beside its run's config.json, or a checkpoint, checkpoint
  # directory or run workdir; "" starts from random weights. Not read on resume.
  init_weights: str = ""
  # Layer-name prefixes of the layers to train; every other layer is frozen
  # (its weights and its BatchNorm statistics). (): train all. With
  # init_weights, trains new heads on a trained network, e.g. ("hand_hidden", "pose",
  # "orientation") for pose_from="keypoints+features" (docs/training.md,
  # "Pose and orientation").
  train_only: tuple[str, ...] = ()
  # Skip records that fail to read or decode instead of stopping; the run's
  # summary counts them (docs/data_format.md, "What is refused, and why").
  skip_corrupt_records: bool = False
  # The recipe the run's config started from (hand25d/training/recipes.py); "" none.
  recipe: str = ""

  def __post_init__(self):
    if self.model.input_mode not in spec.INPUT_MODES:
      raise ValueError(f"input_mode {self.model.input_mode!r} not in {spec.INPUT_MODES}")
    if self.distribution not in DISTRIBUTIONS:
      raise ValueError(f"distribution {self.distribution!r} not in {DISTRIBUTIONS}")
    for name in ("batch_size", "epochs", "log_every_steps", "eval_every_steps",
                 "checkpoint_every_steps", "keep_checkpoints", "max_nonfinite_steps"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("warmup_steps", "summary_images"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


def replace(cfg: TrainConfig, model: dict | None = None, loss: dict | None = None,
            **fields) -> TrainConfig:
  """`cfg` with top-level `fields` and the given ModelConfig / LossWeights fields replaced."""
  return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **(model or {})),
                             loss=dataclasses.replace(cfg.loss, **(loss or {})), **fields)


def with_heads_for_losses(cfg: TrainConfig) -> TrainConfig:
  """The config whose model has exactly the heads the active loss terms need."""
  w = cfg.loss
  heads = dict(aux_keypoints=w.akp > 0, visibility_presence=w.kphv > 0,
               orientation=w.cho > 0, pose=w.dhp > 0, segmentation=w.seg > 0,
               deep_supervision=w.ds > 0,
               # Lseg trains it; untrained, it would misguide the decoding.
               hand_mask=cfg.model.hand_mask and w.seg > 0)
  return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **heads))


def to_dict(cfg) -> dict:
  return dataclasses.asdict(cfg)


def _from_dict(cls, data: dict):
  hints = typing.get_type_hints(cls)
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = set(data) - known
  if unknown:
    raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
  kwargs = {}
  for name, value in data.items():
    hint = hints[name]
    if dataclasses.is_dataclass(hint):
      value = _from_dict(hint, value)
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[name] = value
  return cls(**kwargs)


def from_dict(data: dict) -> TrainConfig:
  return _from_dict(TrainConfig, data)


def model_from_dict(data: dict) -> model_config.ModelConfig:
  """A ModelConfig from a dict of some of its fields (lists become tuples).

  Raises:
    ValueError: a field ModelConfig does not have, or a value it refuses.
  """
  return _from_dict(model_config.ModelConfig, data)


# Model fields added after runs were saved, with the value those runs had
# (today's default may differ: the channel shuffle is on since it was
# measured, docs/training.md). A saved config without one is read with it, so
# an older run is never rebuilt, evaluated or resumed as another network.
SAVED_BEFORE_FIELD = {"decoder_shuffle": 0, "decoder_channels": 0, "score_stride": 2,
                      "pose_from": "features", "hand_mask": False,
                      "hand_mask_channels": 0}


def _as_saved(data: dict) -> dict:
  """A saved config dict with the fields it predates filled in (SAVED_BEFORE_FIELD)."""
  model = dict(data.get("model", {}))
  for name, value in SAVED_BEFORE_FIELD.items():
    model.setdefault(name, value)
  return {**data, "model": model}


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
  """Readable differences between two config dicts (as saved), ignoring RESUMABLE_FIELDS."""
  out = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += differences(va, vb, f"{prefix}{key}.")
    elif va != vb and key not in RESUMABLE_FIELDS:
      out.append(f"{prefix}{key}: saved {va!r}, now {vb!r}")
  return out


# TrainConfig fields that are paths: saved absolute (save_or_check).
_PATH_FIELDS = ("data_dir", "init_weights")


def _absolute(path: str) -> str:
  return os.path.abspath(path) if path else path


class RunConfigError(ValueError):
  """A run's config does not fit its working directory or its data set.

  Raised when the working directory holds a run with another config or a
  config.json that is not JSON (save_or_check), and when the training split
  is smaller than one batch (loop.check_data).
  """


def save_or_check(cfg: TrainConfig, workdir: str) -> None:
  """Writes config.json into a new workdir, or checks it against a resumed one.

  The data set's directory is stored as an absolute path.

  Raises:
    RunConfigError: the workdir holds a run with a different config (the
      message names the workdir and every difference, on one line), or a
      config.json that is not JSON.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  current = json.loads(json.dumps(to_dict(cfg)))  # Tuples as lists, as on disk.
  # Stored absolute, so that the run's commands (eval, export, fine-tuning)
  # find the data and the weights it started from from any working
  # directory. A run saved with a relative path (older runs) is compared as
  # resolved from here.
  for field in _PATH_FIELDS:
    current[field] = _absolute(current[field])
  if os.path.exists(path):
    try:
      with open(path) as f:
        saved = json.load(f)
    except ValueError as e:  # Not JSON (json.JSONDecodeError is a ValueError).
      raise RunConfigError(f"{path} cannot be read as JSON ({e}); restore it, or use a new "
                           "--workdir") from e
    if not isinstance(saved, dict):
      raise RunConfigError(f"{path} holds a {type(saved).__name__}, not a run config; "
                           "restore it, or use a new --workdir")
    saved = _as_saved(saved)
    for field in _PATH_FIELDS:
      saved[field] = _absolute(saved.get(field, ""))
    changed = differences(saved, current)
    if changed:
      raise RunConfigError(
          f"{workdir} holds a run with another config; resume it with the same "
          "settings or use a new --workdir. Differences: " + "; ".join(changed))
  atomic.write_json(path, current)


def load(workdir: str) -> TrainConfig:
  """The config of the run in `workdir`."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no {CONFIG_FILE} in {workdir}: not a hand25d training run")
  with open(path) as f:
    return from_dict(_as_saved(json.load(f)))
