"""The cost of a row on this machine, from a short timed run, and the wall time it implies.

`measure` builds a row's training model and runs the real train step on the
real training pipeline for a few dozen steps, then the real evaluator on a
few validation batches; `estimate_seconds` turns that into the expected wall
time of the row under a `plan.Budget`. docs/results.md shows the estimate
beside the wall time the runs really took.
"""

import json
import math
import os
import time
from typing import Optional

import tf_keras as keras

from hand25d.data import pipeline
from hand25d.data import records
from hand25d.experiments import plan
from hand25d.model import network
from hand25d.training import distribute
from hand25d.training import evaluation
from hand25d.training import step as step_lib

TIMING_JSON = "timing.json"  # timing_main's record, in the results directory.


def load(results_dir: str) -> Optional[dict]:
  """The timing run's record in `results_dir`, or None if there is none.

  Raises:
    ValueError: a timing record that cannot be read as JSON (naming the file).
  """
  path = os.path.join(results_dir, TIMING_JSON)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: cannot be read as JSON: {e}") from e


def measure(row: plan.Row, budget: plan.Budget, data_dir: str, steps: int = 30,
            warmup: int = 2, eval_batches: int = 4) -> dict:
  """Times one row: model build, train-step tracing and rate, evaluation rate.

  Args:
    row: the row (its heads, input and backbone set the cost).
    budget: its batch size is used.
    data_dir: a data set with train and val splits.
    steps: timed training steps (after `warmup` untimed ones).
    warmup: untimed steps after the first (traced) one.
    eval_batches: timed validation batches (after one untimed).

  Returns:
    A JSON-able dict: batch_size, build_seconds, train_trace_seconds,
    train_examples_per_s, eval_trace_seconds, eval_examples_per_s, steps,
    load_average (1, 5, 15 min) at the end.
  """
  cfg = plan.train_config(row, budget, data_dir, seed=0, progress=False)
  strategy = distribute.make_strategy(cfg.distribution)
  start = time.perf_counter()
  with strategy.scope():
    model = network.build_training_model(cfg.model)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(model.trainable_variables)
  built = time.perf_counter()
  train_step = step_lib.make_train_step(model, optimizer, strategy, cfg.loss, cfg.batch_size)
  batches = iter(distribute.epoch_dataset(strategy, cfg, epoch=0))
  bool(train_step(next(batches))["applied"])  # Traces; waits for the step.
  traced = time.perf_counter()
  for _ in range(warmup):
    bool(train_step(next(batches))["applied"])
  timed = time.perf_counter()
  for _ in range(steps):
    bool(train_step(next(batches))["applied"])
  trained = time.perf_counter()

  evaluate = evaluation.make_evaluator(model)
  val = pipeline.make_dataset(cfg.data_dir, cfg.eval_split, cfg.batch_size,
                              input_mode=cfg.model.input_mode, training=False,
                              input_height=cfg.model.input_height,
                              input_width=cfg.model.input_width,
                              num_epochs=None)  # A split smaller than the timed batches repeats.
  eval_start = time.perf_counter()
  evaluate(val.take(1))
  eval_traced = time.perf_counter()
  examples = evaluate(val.skip(1).take(eval_batches))["num_examples"]
  eval_end = time.perf_counter()
  return {
      "batch_size": cfg.batch_size,
      "steps": steps,
      "build_seconds": built - start,
      "train_trace_seconds": traced - built,
      "train_examples_per_s": steps * cfg.batch_size / (trained - timed),
      "eval_trace_seconds": eval_traced - eval_start,
      "eval_examples_per_s": examples / (eval_end - eval_traced),
      "load_average": list(os.getloadavg()),
  }


def estimate_seconds(timing: dict, budget: plan.Budget, splits: dict,
                     epochs: Optional[int] = None) -> float:
  """Expected wall time of one (row, seed) under `budget`, from `measure`'s timing.

  Training, the validation evaluations (every `eval_every_epochs` and at the
  end), the test evaluation, and the model builds and tracings of training
  and of the test evaluation.

  Args:
    timing: `measure`'s result for the row, at budget.batch_size.
    budget: the budget.
    splits: {split: {"num_frames": n}} of the data set.
    epochs: the epochs the row trains (`budget.epochs_of`; default the budget's).

  Raises:
    ValueError: the timing was measured at another batch size.
  """
  if timing["batch_size"] != budget.batch_size:
    raise ValueError(f"timing measured at batch {timing['batch_size']}, the budget uses "
                     f"{budget.batch_size}; measure again with the budget's batch size")
  steps_per_epoch = budget.steps_per_epoch(splits["train"]["num_frames"])
  steps = steps_per_epoch * (budget.epochs if epochs is None else epochs)
  eval_every = max(1, steps_per_epoch * budget.eval_every_epochs)
  evals = steps // eval_every + (1 if steps % eval_every else 0)
  val_frames = splits["val"]["num_frames"]
  if budget.max_eval_batches:
    val_frames = min(val_frames, budget.max_eval_batches * budget.batch_size)
  eval_frames = evals * val_frames + splits["test"]["num_frames"]
  setup = 2 * (timing["build_seconds"] + timing["eval_trace_seconds"]) + timing[
      "train_trace_seconds"]
  return (setup + steps * budget.batch_size / timing["train_examples_per_s"]
          + eval_frames / timing["eval_examples_per_s"])


def estimate_set(record: Optional[dict], budget: plan.Budget, splits: dict,
                 jobs: list[tuple[plan.Row, int]]) -> list[tuple[plan.Row, int, float, str]]:
  """(row, seed, expected seconds, row whose timing was used) of every job.

  A row that was not timed uses the timing of a timed row with the same
  backbone, preferring one with the same loss terms (the same heads), then
  plan.OURS (all heads: an upper bound for an ablated row). NaN where there
  is no such timing, and for every job if there is no record or it was
  measured at another batch size. A row under a step cap is estimated at its
  capped epochs (`budget.epochs_of`).

  Args:
    record: the timing run's record (timing_main's JSON: batch_size and
      {"rows": {name: measure()}}), or None.
    budget: the budget of the jobs.
    splits: {split: {"num_frames": n}} of the data set the jobs train on.
    jobs: (row, seed) pairs, as from plan.schedule.

  Raises:
    ValueError: the budget does not fit the data set or a row (`budget.epochs_of`).
  """
  timings = record["rows"] if record and record["batch_size"] == budget.batch_size else {}
  timed = [plan.ROWS_BY_NAME[name] for name in timings if name in plan.ROWS_BY_NAME]
  out = []
  for row, seed in jobs:
    epochs = budget.epochs_of(row, splits["train"]["num_frames"])
    candidates = sorted((r for r in timed if r.backbone == row.backbone),
                        key=lambda r: (r.name != row.name, r.loss != row.loss, r.name != plan.OURS))
    if candidates:
      source = candidates[0].name
      out.append((row, seed, estimate_seconds(timings[source], budget, splits, epochs), source))
    else:
      out.append((row, seed, math.nan, ""))
  return out


def dry_run(record: Optional[dict], budget: plan.Budget, data_dir: str,
            rows: list[plan.Row]) -> list[str]:
  """The lines `reproduce_main --dry_run` prints: the budget, then every scheduled run in
  order with its steps and expected wall time, then the total.

  The data set in `data_dir` sets the steps; where it is not generated yet,
  the benchmark's planned split sizes (plan.benchmark_frames) do, and the
  first line says so.

  Args:
    record: the timing run's record (`load`), or None.
    budget: the budget.
    data_dir: the data set the runs would train on.
    rows: the rows to run.

  Raises:
    ValueError: the budget does not fit the data set or a row (`budget.epochs_of`).
  """
  if os.path.exists(os.path.join(data_dir, records.MANIFEST)):
    splits = {split: {"num_frames": distribute.split_frames(data_dir, split)}
              for split in records.SPLITS}
    source = data_dir
  else:
    splits = {split: {"num_frames": n} for split, n in plan.benchmark_frames().items()}
    source = f"no data set in {data_dir} yet: the benchmark's planned splits"
  train = splits["train"]["num_frames"]
  full = budget.steps(train)
  lines = [f"budget: {budget.epochs} epochs of {train:,} frames at batch {budget.batch_size} "
           f"= {full:,} steps, learning rate {budget.learning_rate:g}, warm-up "
           f"{budget.warmup_steps} steps ({source})"]
  estimates = estimate_set(record, budget, splits, plan.schedule(rows, budget))
  for i, (row, seed, seconds, timed) in enumerate(estimates):
    steps = budget.epochs_of(row, train) * budget.steps_per_epoch(train)
    capped = "" if steps == full else f" (capped, not the budget's {full:,})"
    expected = (f"~{seconds / 60:.1f} min (timing of {timed})" if timed
                else "no timing of its backbone at this batch size")
    lines.append(f"{i + 1:2d}. {row.name} seed {seed}: {steps:,} steps{capped}, {expected}")
  total = sum(seconds for _, _, seconds, _ in estimates)
  lines.append(f"{len(estimates)} runs, total ~{total / 60:.0f} min" if not math.isnan(total)
               else f"{len(estimates)} runs; total unknown: no timing of some backbone at this "
               "batch size (run timing_main)")
  return lines
