"""The custom multi-task training loop (docs/training.md): train, evaluate, resume.

`train_and_evaluate(cfg, workdir)` trains the network of `cfg.model` with the
loss of Eq. 1 under a tf.distribute strategy, logs every term to absl logging
and TensorBoard, evaluates on the validation split, keeps the best checkpoint
by validation error, and always resumes exactly where the last checkpoint
left off: the step, the optimizer and the position in the data (each epoch's
data order is fixed by the seed, and a resumed epoch skips what was done).
"""

import json
import os
import signal
import time
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras as keras

from hand25d import atomic
from hand25d import progress
from hand25d.data import pipeline
from hand25d.data import integrity
from hand25d.data import records
from hand25d.model import config as model_config
from hand25d.model import network
from hand25d.training import config as config_lib
from hand25d.training import distribute
from hand25d.training import evaluation
from hand25d.training import schedule as schedule_lib
from hand25d.training import step as step_lib
from hand25d.training import summaries
from hand25d.training import warm_start

BEST_DIR = "best"
# Seconds between the training's progress lines (hand25d/progress.py).
_TRAIN_PROGRESS_S = 60.0
SUMMARY_FILE = "summary.json"
# A run whose last loss or largest weight exceeds these has diverged: finite,
# so never skipped as non-finite, but useless (seen: weights ~1e30, loss ~1e13).
DIVERGED_LOSS = 1e6
DIVERGED_WEIGHT = 1e6
# The best validation error, as the training and best/ checkpoints store it.
_BEST_ERROR_KEY = "best_error/.ATTRIBUTES/VARIABLE_VALUE"


class NonFiniteLossError(RuntimeError):
  """Too many consecutive steps had a non-finite loss or gradient."""


class _StopRequest:
  """Turns SIGINT/SIGTERM into a request to checkpoint and stop."""

  def __init__(self):
    self.signal_name: Optional[str] = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # Not the main thread: signals stay as they are.
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def check_data(cfg: config_lib.TrainConfig) -> dict:
  """Checks the splits a run reads, before it writes anything or takes a step.

  Every shard of the train and eval splits is checked against the manifest
  (size, sha256, record count; integrity.verify), and the train split must
  hold at least one batch. With cfg.skip_corrupt_records, the shards that
  fail and those without a recorded sha256 are read in full to count the
  records tf.data will skip (a shard whose digest matches holds what
  records.encode wrote).

  Returns:
    {"per_pass": {split: records skipped per pass}, "shards": {path: count}}
    with cfg.skip_corrupt_records, else {}.

  Raises:
    records.RecordError: no manifest in cfg.data_dir, a missing or empty
      split, or (without cfg.skip_corrupt_records) a shard that fails, with
      its bad records named and how to recover.
    config_lib.RunConfigError: fewer train frames than one batch.
  """
  manifest = records.load_manifest(cfg.data_dir)
  splits = list(dict.fromkeys((cfg.train_split, cfg.eval_split)))
  failing = integrity.verify(cfg.data_dir, splits, manifest)
  train_frames = int(manifest["splits"][cfg.train_split]["num_frames"])
  if train_frames < cfg.batch_size:
    raise config_lib.RunConfigError(
        f"split {cfg.train_split!r} of {cfg.data_dir} has {train_frames} frames, fewer than "
        f"one batch of {cfg.batch_size}; use a smaller --batch_size")
  if not failing and not cfg.skip_corrupt_records:
    return {}
  shards = {records.resolve(cfg.data_dir, s["file"]): (split, s)
            for split in splits for s in manifest["splits"][split]["shards"]}
  suspects = list(failing)
  if cfg.skip_corrupt_records:
    suspects += [p for p, (_, s) in shards.items() if "sha256" not in s and p not in failing]
  lines, lost = [], {}
  for path in suspects:
    found, count = integrity.bad_records(path, shards[path][1]["num_frames"])
    lines += ([failing[path]] if path in failing else []) + found
    if count:
      lost[path] = count
  if not cfg.skip_corrupt_records:
    raise records.RecordError(
        f"{len(failing)} shard(s) of {cfg.data_dir} fail the check against its manifest:\n  "
        + "\n  ".join(lines) + f"\nTo recover: {records.RECOVERY}.")
  per_pass = {split: sum(n for p, n in lost.items() if shards[p][0] == split) for split in splits}
  if lines:
    logging.warning("--skip_corrupt_records: records skipped per pass %s:\n  %s", per_pass,
                    "\n  ".join(lines))
  return {"per_pass": per_pass, "shards": lost}


def freeze_all_but(model: keras.Model, prefixes: tuple[str, ...]) -> list[str]:
  """Freezes every layer of `model` whose name starts with none of `prefixes`.

  A frozen layer keeps its weights, and a frozen BatchNormalization also its
  statistics (it normalises as at inference).

  Returns:
    The names of the layers left trainable that have weights.

  Raises:
    ValueError: a prefix that names no layer with weights (naming it and
      some of the model's layer names).
  """
  weighted = [layer.name for layer in model.layers if layer.weights]
  for prefix in prefixes:
    if not any(name.startswith(prefix) for name in weighted):
      raise ValueError(f"train_only: no layer with weights of {model.name} starts with "
                       f"{prefix!r}; its layers include {weighted[-12:]}")
  for layer in model.layers:
    layer.trainable = any(layer.name.startswith(prefix) for prefix in prefixes)
  return [name for name in weighted if name.startswith(tuple(prefixes))]


def divergence(model: keras.Model, last_loss: float | None) -> str | None:
  """Why a run counts as diverged (DIVERGED_LOSS, DIVERGED_WEIGHT), or None."""
  largest = max(float(np.max(np.abs(w))) for w in model.get_weights())
  if not largest <= DIVERGED_WEIGHT:
    return f"largest weight {largest:.3g} > {DIVERGED_WEIGHT:g}"
  if last_loss is not None and not last_loss <= DIVERGED_LOSS:
    return f"last loss {last_loss:.3g} > {DIVERGED_LOSS:g}"
  return None


def _best_saved_error(workdir: str) -> float | None:
  """The validation error the run's best/ checkpoint was saved with, or None.

  None when there is no best/ checkpoint, when it was saved before best/
  stored its error, or when it cannot be read. Read from the chief's
  directory by every worker, so all take the same decisions.
  """
  found = distribute.checkpoints(os.path.join(workdir, "checkpoints", BEST_DIR))
  if not found:
    return None
  try:
    reader = tf.train.load_checkpoint(found[0])
    if not reader.has_tensor(_BEST_ERROR_KEY):
      return None
    return float(reader.get_tensor(_BEST_ERROR_KEY))
  except (tf.errors.OpError, IndexError, ValueError) as e:  # Damaged: as distribute.restore.
    logging.warning("cannot read the best error of %s: %s", found[0], str(e).splitlines()[0])
    return None


def _previous_summary(workdir: str) -> dict:
  """The summary an earlier process of this run wrote, or {}."""
  path = os.path.join(workdir, SUMMARY_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def train_and_evaluate(cfg: config_lib.TrainConfig, workdir: str) -> dict:
  """Trains (or resumes) the run in `workdir`, evaluating as it goes.

  Args:
    cfg: the run's configuration.
    workdir: where config.json, checkpoints, best/ and TensorBoard logs go.

  Returns:
    A summary dict (also written as summary.json): steps done, whether the run
    finished, diverged (see `divergence`) or stopped on a signal, the last and
    best validation metrics, and with cfg.skip_corrupt_records the records
    skipped.

  Raises:
    config_lib.RunConfigError (a ValueError): the workdir holds a run with
      another config, or the training split is smaller than one batch.
    ValueError: the workdir holds a run of another architecture, or
      cfg.init_weights names weights that do not fit (warm_start; nothing is written).
    records.RecordError: the data fail `check_data` (nothing is written), or a
      record fails to read during the run (a checkpoint is saved first).
    NonFiniteLossError: cfg.max_nonfinite_steps consecutive non-finite steps.
  """
  cfg = config_lib.with_heads_for_losses(cfg)
  if cfg.model.backbone in model_config.QAT_UNSUPPORTED_BACKBONES:
    logging.warning("backbone %s: this run can be exported as float32 and int8 PTQ, not as "
                    "int8 QAT: %s", cfg.model.backbone,
                    model_config.QAT_UNSUPPORTED_BACKBONES[cfg.model.backbone])
  skipped = check_data(cfg)
  keras.utils.set_random_seed(cfg.seed)  # Python, numpy and TensorFlow.
  if cfg.deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = distribute.make_strategy(cfg.distribution)
  chief = distribute.is_chief(strategy)
  start = None
  if cfg.init_weights and not distribute.checkpoints(distribute.checkpoint_dir(strategy, workdir)):
    # Matched before config.json is written, so a refused source leaves no run behind.
    start = network.build_training_model(cfg.model)
    start_report = warm_start.warm_start(start, cfg.init_weights)
  if cfg.train_only:  # Refuses a prefix that names no layer before anything is written.
    # `start` frozen as `model` will be, so their weights keep one order.
    trained = freeze_all_but(start or network.build_training_model(cfg.model), cfg.train_only)
    logging.info("train_only: training %d layers (%s); the rest are frozen", len(trained),
                 ", ".join(trained))
  if chief:
    config_lib.save_or_check(cfg, workdir)
  steps_per_epoch = distribute.split_frames(cfg.data_dir, cfg.train_split) // cfg.batch_size
  total_steps = steps_per_epoch * cfg.epochs

  with strategy.scope():
    model = network.build_training_model(
        cfg.model, synchronized_batchnorm=strategy.num_replicas_in_sync > 1)
    if cfg.train_only:
      freeze_all_but(model, cfg.train_only)
    schedule = schedule_lib.WarmupLinearDecay(cfg.learning_rate, total_steps,
                                              min(cfg.warmup_steps, total_steps - 1))
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.build(model.trainable_variables)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    best_error = tf.Variable(float("inf"), dtype=tf.float64, trainable=False,
                             name="best_error")
  ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var,
                             best_error=best_error)
  ckpt_dir = distribute.checkpoint_dir(strategy, workdir)
  manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=cfg.keep_checkpoints)
  # best/ keeps the error it was chosen by, so a resume can never replace it by a worse model.
  best_manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model, best_error=best_error),
      distribute.checkpoint_dir(strategy, workdir, BEST_DIR), max_to_keep=1)
  resumed = distribute.restore_newest(ckpt, ckpt_dir)
  if resumed:
    logging.info("Resumed %s at step %d", resumed, int(step_var.numpy()))
  elif start is not None:
    model.set_weights(start.get_weights())  # The same architecture: set in order.
    if chief:
      atomic.write_json(os.path.join(workdir, warm_start.REPORT_FILE), start_report)
  best = _best_saved_error(workdir)
  if best is not None and best < best_error.numpy():
    # best/ was saved after the checkpoint resumed from (a kill between an
    # evaluation and the next checkpoint): its error is the one to beat.
    logging.info("best/ holds a model of mean px error %.4f, better than the resumed "
                 "checkpoint's %s: later evaluations must beat it", best, best_error.numpy())
    best_error.assign(best)

  train_step = step_lib.make_train_step(model, optimizer, strategy, cfg.loss, cfg.batch_size)
  evaluate = evaluation.make_evaluator(model)
  writer = (tf.summary.create_file_writer(os.path.join(workdir, summaries.TRAIN_DIR)) if chief
            else tf.summary.create_noop_writer())
  eval_writer = (tf.summary.create_file_writer(os.path.join(workdir, summaries.EVAL_DIR))
                 if chief else tf.summary.create_noop_writer())
  if chief:  # At every start, resumes included: the config is the saved one.
    summaries.write_hparams(cfg, workdir)
  fixed_frames = []  # summaries.FixedFrames, loaded at the first evaluation.

  # The step of the newest intact checkpoint (the manager's latest may be a damaged one).
  saved = [_checkpoint_step(resumed) if resumed else None]

  def save(step: int) -> None:
    manager.save(checkpoint_number=step)
    distribute.cleanup(strategy, workdir)
    saved[0] = step

  def data_error(split: str, step: int, error: Exception) -> records.RecordError:
    """Saves a checkpoint (if this step has none) and names the bad record."""
    if saved[0] != step:
      save(step)
    named = pipeline.name_data_error(cfg.data_dir, split, error)
    return records.RecordError(f"{named}\nStep {step} is checkpointed in {ckpt_dir}; after "
                               "recovering, rerun the same command to resume.")

  def eval_data(batch_size: int) -> tf.data.Dataset:
    return pipeline.make_dataset(cfg.data_dir, cfg.eval_split, batch_size,
                                 input_mode=cfg.model.input_mode, training=False,
                                 input_height=cfg.model.input_height,
                                 input_width=cfg.model.input_width,
                                 skip_corrupt=cfg.skip_corrupt_records)

  def run_eval(step: int) -> dict:
    data = eval_data(cfg.batch_size)
    frames = distribute.split_frames(cfg.data_dir, cfg.eval_split)
    if cfg.max_eval_batches:
      data = data.take(cfg.max_eval_batches)
      frames = min(frames, cfg.max_eval_batches * cfg.batch_size)
    try:
      res = evaluate(data, total=frames, what=f"step {step} eval {cfg.eval_split}")
    except pipeline.DATA_ERRORS as e:
      raise data_error(cfg.eval_split, step, e) from e
    logging.info("step %d eval: mean px error %s", step, res["mean_px_error"])
    # Of equal errors the later model is kept: with the keypoint layers frozen
    # (train_only) every evaluation ties, and the heads keep learning.
    if res["mean_px_error"] is not None and res["mean_px_error"] <= best_error.numpy():
      best_error.assign(res["mean_px_error"])
      best_manager.save(checkpoint_number=step)
      distribute.cleanup(strategy, workdir)
    with eval_writer.as_default(step=step):
      for key, value in evaluation.scalars(res).items():
        tf.summary.scalar(key, value)
      if np.isfinite(best_error.numpy()):
        tf.summary.scalar("best_mean_px_error", float(best_error.numpy()))
      # On every worker, though only the chief's writer writes: the model's
      # variables are read through collectives, which all workers must join.
      if cfg.summary_images:
        if not fixed_frames:  # The first frames of the split, the same at every evaluation.
          fixed_frames.append(summaries.FixedFrames.first_batch(eval_data(cfg.summary_images)))
        fixed_frames[0].write(model, step)
    return res

  consecutive_bad = 0
  # A resumed run keeps its last evaluation until it makes a new one.
  last_eval = _previous_summary(workdir).get("last_eval")
  last_loss = None
  step = int(step_var.numpy())
  busy, examples = 0.0, 0  # Seconds in train steps (data included) since the last log.
  # The first steps trace the step function and fill the input pipeline: not
  # the steady rate; evaluations and checkpoints run paused. The ETA is that
  # of the training steps alone.
  # The step lines carry the ETA too, so a progress line a minute is enough.
  reporter = progress.Progress("train", total_steps, "steps", done=step, skip=2,
                               interval=_TRAIN_PROGRESS_S if cfg.progress and chief
                               else float("inf"))
  with _StopRequest() as stop, reporter:
    while step < total_steps and stop.signal_name is None:
      epoch, in_epoch = divmod(step, steps_per_epoch)
      batches = iter(distribute.epoch_dataset(strategy, cfg, epoch, skip_steps=in_epoch))
      for _ in range(steps_per_epoch - in_epoch):
        t0 = time.perf_counter()
        try:
          batch = next(batches)
        except pipeline.DATA_ERRORS as e:
          raise data_error(cfg.train_split, step, e) from e
        out = train_step(batch)
        applied = bool(out["applied"])  # Waits for the step to finish.
        if applied:  # A skipped non-finite step is not divergence.
          last_loss = float(out["total"])
        busy += time.perf_counter() - t0
        step += 1
        step_var.assign(step)
        examples += cfg.batch_size
        reporter.update()
        if applied:
          consecutive_bad = 0
        else:
          consecutive_bad += 1
          logging.warning("step %d: non-finite loss or gradient (%s); step skipped",
                          step, {k: float(v) for k, v in out.items() if k != "applied"})
          if consecutive_bad >= cfg.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"{consecutive_bad} consecutive steps had a non-finite loss or gradient "
                f"(last at step {step}); the weights and checkpoints are untouched. Lower "
                "--learning_rate or check the data.")
        if step % cfg.log_every_steps == 0 or step == total_steps:
          rate = examples / max(busy, 1e-9)
          lr = float(schedule(optimizer.iterations))
          with writer.as_default(step=step):
            for key, value in out.items():
              if key != "applied":
                tf.summary.scalar(f"loss/{key}", value)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("examples_per_second", rate)
          logging.info("step %d/%d  %s  lr %.2e  %.1f ex/s  ETA %s", step, total_steps,
                       "  ".join(f"{k} {float(v):.4f}" for k, v in out.items()
                                 if k != "applied"), lr, rate,
                       progress.format_duration(reporter.eta()))
          busy, examples = 0.0, 0
        with reporter.paused():
          # Evaluate first: a checkpoint at an evaluation step then holds the best
          # error that evaluation set, so a resumed run never compares against a
          # stale one (and replaces best/ with a worse model).
          if step % cfg.eval_every_steps == 0 or step == total_steps:
            last_eval = run_eval(step)
          if step % cfg.checkpoint_every_steps == 0:
            save(step)
        if stop.signal_name is not None:
          break
    if saved[0] != step:
      with reporter.paused():
        save(step)
  status = "finished" if step >= total_steps else f"stopped by {stop.signal_name}"
  if status != "finished":
    logging.warning("%s at step %d: checkpoint saved, resume with the same command",
                    status, step)
  diverged = divergence(model, last_loss)
  if diverged:
    status = "diverged"
    logging.warning("The run diverged (%s): lower --learning_rate and start a new run", diverged)
  summary = {"status": status, "step": step, "total_steps": total_steps,
             "best_mean_px_error": (None if best_error.numpy() == float("inf")
                                    else float(best_error.numpy())),
             "last_eval": last_eval}
  if diverged:
    summary["diverged"] = diverged
  if cfg.skip_corrupt_records:
    summary["skipped_records"] = skipped
  if chief:
    atomic.write_json(os.path.join(workdir, SUMMARY_FILE), summary)
  return summary


def _checkpoint_step(path: str) -> int:
  return int(path.rsplit("-", 1)[-1])
