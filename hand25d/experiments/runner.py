"""Runs the table rows: train each (row, seed), test its best checkpoint, write a summary.

For every (row, seed) of `plan.schedule`, `run` trains into
`<workdir>/<row>/seed<k>/` with `hand25d.training.loop.train_and_evaluate`
(best checkpoint by validation error), evaluates that checkpoint on the TEST
split, and writes `<results_dir>/<row>_seed<k>.json` atomically. The summary
holds the row's definition, the budget (`plan.Budget.record`) and the row's
step cap, the training config, the data set's description, the training
summary, the validation error at every evaluation and whether it was flat at
the end (convergence.py), every test metric, the inference model's size and
FLOPs, and the wall time.

Resumable at two levels: a (row, seed) whose summary exists is skipped (after
checking it was made with the same config and data set), and a half-trained
run resumes from its last checkpoint (the training loop always does).
"""

import datetime
import hashlib
import json
import os
import re
import time
from typing import Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras as keras

from hand25d import atomic
from hand25d.data import records
from hand25d.experiments import convergence
from hand25d.experiments import plan
from hand25d.model import config as model_config
from hand25d.model import flops
from hand25d.model import network
from hand25d.training import config as config_lib
from hand25d.training import evaluation
from hand25d.training import loop
from hand25d.training import summaries as training_summaries

SUMMARY_PATTERN = re.compile(r"^(?P<row>[a-z0-9_]+)_seed(?P<seed>\d+)\.json$")
# The validation error's scalar in the training loop's eval events
# (hand25d/training/loop.py writes evaluation.scalars of each evaluation).
VALIDATION_ERROR_TAG = "mean_px_error"


def summary_path(results_dir: str, row: str, seed: int) -> str:
  return os.path.join(results_dir, f"{row}_seed{seed}.json")


def run_dir(workdir: str, row: str, seed: int) -> str:
  return os.path.join(workdir, row, f"seed{seed}")


def describe_data(data_dir: str) -> dict:
  """The data set as recorded in summaries: generator config, splits, users, fingerprint.

  The fingerprint is a digest of the shards' SHA-256s in the manifest: two
  data sets with the same fingerprint hold the same bytes.
  """
  manifest = records.load_manifest(data_dir)
  digest = hashlib.sha256()
  splits = {}
  for split, info in manifest["splits"].items():
    splits[split] = {"num_frames": info["num_frames"], "users": info["users"]}
    for shard in info["shards"]:
      digest.update(f"{split}/{shard['file']}/{shard['sha256']}\n".encode())
  return {"config": manifest.get("config"), "splits": splits,
          "fingerprint": digest.hexdigest()[:16]}


def model_cost(cfg: model_config.ModelConfig) -> dict:
  """Parameters and FLOPs (2 x MACs) of the inference network, as in the model card."""
  model = network.inference_model(cfg)
  return {"params": int(model.count_params()),
          "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
          "flops": int(flops.total_flops(model))}


def machine() -> dict:
  """The machine a measurement ran on: cores, load average (1, 5, 15 min), TensorFlow."""
  return {"cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
          "tensorflow": tf.__version__}


def validation_history(directory: str) -> list[tuple[int, float]]:
  """(step, validation mean px error) of every evaluation of the run in `directory`, by step.

  Read from the TensorBoard events the training loop writes into
  `<directory>/eval`. An evaluation repeated at one step (a resume after a
  kill between an evaluation and the next checkpoint) counts once, with the
  value written last; an evaluation without visible keypoints wrote no error
  and is absent. [] if there is no eval directory.
  """
  return training_summaries.scalars(
      os.path.join(directory, training_summaries.EVAL_DIR)).get(VALIDATION_ERROR_TAG, [])


def _json(data):
  return json.loads(json.dumps(data))  # Tuples as lists, as on disk.


class OtherRunError(ValueError):
  """A summary in the results directory was made by another run (config, row, budget, data)."""


def read_json_object(path: str, error: type[ValueError]) -> dict:
  """The JSON object in `path`; `error` naming the file if it cannot be read or is not one."""
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError) as e:  # json.JSONDecodeError, UnicodeDecodeError: ValueErrors.
    raise error(f"{path}: cannot be read as JSON: {e}") from e
  if not isinstance(value, dict):
    raise error(f"{path}: holds a {type(value).__name__}, not a JSON object")
  return value


def _check_same_run(path: str, cfg: config_lib.TrainConfig, data: dict, row: plan.Row,
                    budget: dict) -> None:
  """Raises OtherRunError if the summary at `path` came from another config, row, budget
  (`plan.Budget.record`; not checked in summaries older than that record) or data set."""
  saved = read_json_object(path, OtherRunError)
  current = _json(config_lib.to_dict(cfg))
  changed = config_lib.differences(dict(saved["train_config"], data_dir=None),
                                   dict(current, data_dir=None))
  if saved["row"] != _json(row.to_dict()):
    changed.append(f"row definition: saved {saved['row']}, now {_json(row.to_dict())}")
  if "budget" in saved and saved["budget"] != _json(budget):
    changed.append(f"budget: saved {saved['budget']}, now {_json(budget)}")
  if saved["data"]["fingerprint"] != data["fingerprint"]:
    changed.append(f"data set fingerprint: saved {saved['data']['fingerprint']}, "
                   f"now {data['fingerprint']}")
  if changed:
    raise OtherRunError(f"{path} was made by another run; delete it (and its run directory) "
                        "to rerun, or use another --results_dir. Differences: "
                        + "; ".join(changed))


def _train(cfg: config_lib.TrainConfig, directory: str) -> dict:
  """Trains (or resumes) the run; a run that already finished is not touched."""
  path = os.path.join(directory, loop.SUMMARY_FILE)
  if os.path.exists(path):
    done = read_json_object(path, OtherRunError)
    if done.get("status") == "finished":
      config_lib.save_or_check(cfg, directory)
      return done
  return loop.train_and_evaluate(cfg, directory)


def run_one(row: plan.Row, seed: int, cfg: config_lib.TrainConfig, data: dict,
            workdir: str, results_dir: str, budget: plan.Budget) -> Optional[dict]:
  """Trains and tests one (row, seed) and writes its summary.

  Args:
    row, seed: the run.
    cfg: its training config (`plan.train_config`).
    data: the data set's description (`describe_data`).
    workdir, results_dir: as for `run`.
    budget: the budget `cfg` came from (recorded in the summary).

  Returns:
    The summary, or None if training stopped on a signal (rerun to resume).
  """
  directory = os.path.abspath(run_dir(workdir, row.name, seed))
  resumed = tf.train.latest_checkpoint(os.path.join(directory, "checkpoints")) is not None
  start = time.time()
  training = _train(cfg, directory)
  if training["status"] != "finished":
    return None
  trained = time.time()
  best = os.path.join(directory, "checkpoints", loop.BEST_DIR)
  if not tf.train.latest_checkpoint(best):
    raise RuntimeError(f"{directory} finished without a best checkpoint: no validation "
                       "evaluation had visible keypoints; check the val split of "
                       f"{cfg.data_dir}")
  test = evaluation.evaluate_checkpoint(best, cfg.data_dir, "test",
                                        os.path.join(directory, "test"),
                                        batch_size=budget.test_batch_size)
  history = validation_history(directory)
  flat = convergence.flatness(history)
  summary = {
      "row": row.to_dict(),
      "seed": seed,
      "budget": budget.record(data["splits"]["train"]["num_frames"]),
      "step_cap": budget.max_steps_of(row) or None,
      "train_config": config_lib.to_dict(cfg),
      "data": data,
      "training": training,
      "validation_history": history,
      "flatness": None if flat is None else flat.to_dict(),
      "test": test,
      "model": model_cost(cfg.model),
      "run_dir": directory,
      "resumed": resumed,
      "wall_seconds": {"train": trained - start, "test": time.time() - trained},
      "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "machine": machine(),
  }
  summary = _json(summary)
  atomic.write_json(summary_path(results_dir, row.name, seed), summary)
  return summary


def _eta_seconds(remaining: Sequence[plan.Row], done: list[tuple[plan.Row, float]]) -> float:
  """Time left, from the runs done in this process (same backbone where possible)."""
  if not done:
    return float("nan")
  overall = np.mean([s for _, s in done])
  total = 0.0
  for row in remaining:
    same = [s for r, s in done if r.backbone == row.backbone]
    total += np.mean(same) if same else overall
  return float(total)


def run(rows: Sequence[plan.Row], budget: plan.Budget, data_dir: str, workdir: str,
        results_dir: str, progress: bool = True) -> list[dict]:
  """Runs every (row, seed) of `plan.schedule(rows, budget)` that has no summary yet.

  Args:
    rows: the rows to run.
    budget: the training budget and seeds.
    data_dir: the benchmark data set (train, val and test splits).
    workdir: runs go to <workdir>/<row>/seed<k>/.
    results_dir: summaries go to <results_dir>/<row>_seed<k>.json.
    progress: the training loop's progress lines with an ETA (hand25d.progress).

  Returns:
    The summaries of all scheduled runs that are done (made now or before);
    fewer than scheduled if a run was stopped by SIGINT/SIGTERM.

  Raises:
    OtherRunError: an existing summary was made with another config, row
      definition, budget or data set.
    config.RunConfigError: a run directory holds a run with another config.
    plan.BudgetError: the budget does not fit the data set or a row
      (`plan.train_config`).
    records.RecordError: the data set is missing, or fails its check.
  """
  data = describe_data(data_dir)
  try:
    record = budget.record(data["splits"]["train"]["num_frames"])
  except plan.BudgetError as e:
    raise plan.BudgetError(f"{data_dir}: {e}") from e
  jobs = plan.schedule(rows, budget)
  summaries, timed = [], []
  for i, (row, seed) in enumerate(jobs):
    cfg = plan.train_config(row, budget, data_dir, seed, progress=progress)
    path = summary_path(results_dir, row.name, seed)
    if os.path.exists(path):
      _check_same_run(path, cfg, data, row, record)
      with open(path) as f:
        summaries.append(json.load(f))
      logging.info("[%d/%d] %s seed %d: done before (%s), skipped", i + 1, len(jobs), row.name,
                   seed, path)
      continue
    eta = _eta_seconds([r for r, _ in jobs[i:]], timed)
    logging.info("[%d/%d] %s seed %d (%s): training in %s; set ETA %s", i + 1, len(jobs),
                 row.name, seed, row.label, run_dir(workdir, row.name, seed),
                 "unknown until a run is done" if np.isnan(eta) else f"{eta / 60:.0f} min")
    start = time.time()
    summary = run_one(row, seed, cfg, data, workdir, results_dir, budget)
    if summary is None:
      logging.warning("%s seed %d stopped; rerun the same command to resume it", row.name, seed)
      return summaries
    keras.backend.clear_session()  # Free the run's models and traced functions.
    timed.append((row, time.time() - start))
    summaries.append(summary)
    flat = summary["flatness"]
    logging.info("[%d/%d] %s seed %d: test error %s px (paper %.3f) in %.1f min, %s; wrote %s",
                 i + 1, len(jobs), row.name, seed, summary["test"]["mean_px_error"],
                 row.paper_px, timed[-1][1] / 60,
                 "flatness unknown (fewer than two evaluations)" if flat is None else
                 f"validation error fell {100 * flat['fall']:.1f}% from step "
                 f"{flat['start']['step']} ({'flat' if flat['flat'] else 'not flat'})", path)
  return summaries
