"""Builds the trained model shipped in hand25d/pretrained from a recipe and a seed.

`build(cfg)` runs every stage in a work directory, each resumable:

  1. generates the recipe's synthetic data set (hand25d.data.generate);
  2. trains the recipe's run (hand25d.training.loop; resumes from its
     checkpoints), then each of the recipe's stages from the run before it
     (recipes.Stage, in train_<name>/);
  3. evaluates the best checkpoint on the test users (hand25d.training.evaluation);
  4. exports float32 and int8 QAT TFLite models, checked in TFLite Micro
     (export.exporter), evaluated on the test users;
  5. measures one-thread LiteRT latency of both;
  6. writes the training model's weights, the run config and the model
     card (model_card.json, model_card.md);
  7. with cfg.install, copies the files into hand25d/pretrained/.

docs/pretrained.md describes the files and the command.
"""

import dataclasses
import datetime
import json
import os
import statistics
import time

from absl import logging
import numpy as np

from export import config as export_config
from export import exporter
from export import qat
from hand25d import atomic
from hand25d import decoding
from hand25d import litert
from hand25d import paper
from hand25d import pretrained
from hand25d import spec
from hand25d.data import generate
from hand25d.data import resize
from hand25d.training import evaluation
from hand25d.training import loop
from hand25d.training import recipes
from hand25d.training import summaries as training_summaries


QUANT = ("float32", "int8_qat")
# The name each export has in hand25d/pretrained (install copies it there), as
# the model card names it.
SHIPPED_FILES = {"float32": pretrained.FLOAT32, "int8_qat": pretrained.INT8}
# Intended use and limits, written into the model card.
INTENDED_USE = (
    "2D keypoints (8 per hand, left and right) on the amplitude image of an egocentric "
    "continuous-wave time-of-flight camera like hand25d's simulated sensor (240x320, "
    "resized to 120x160), hands at 0.15-0.9 m, for lifting to 2.5D with the sensor's depth. "
    "A starting point for fine-tuning on a real sensor's labelled data.")
LIMITS = (
    "Trained on synthetic frames only (hand25d's renderer); accuracy on a real sensor is "
    "unmeasured and will be lower until the model is fine-tuned on that sensor's data. "
    "Another sensor's amplitude scale, resolution or intrinsics must be mapped onto the "
    "simulated sensor's. Hands outside 0.15-0.9 m, gloves, and objects unlike the "
    "renderer's distractors are outside what it was trained on.")


@dataclasses.dataclass(frozen=True)
class BuildConfig:
  """What to build and where.

  Attributes:
    recipe: a recipe name (hand25d.training.recipes) or a recipe JSON path.
    workdir: where the data set, the run and the exports go.
    seed: the training seed (weights and data order); the data set's seed is
      the recipe's.
    workers: processes generating the data set.
    install: copy the results into hand25d/pretrained/.
    latency_invokes: timed invokes per model for the latency figures.
    max_eval_frames: test frames the exported models are evaluated on (0: all).
    qat_steps: quantization-aware fine-tuning steps of the int8 model.
  """
  recipe: str
  workdir: str
  seed: int = 0
  workers: int = 2
  install: bool = False
  latency_invokes: int = 300
  max_eval_frames: int = 0
  qat_steps: int = qat.QatConfig.steps


def latency_ms(model_bytes: bytes, invokes: int, warmup: int = 20) -> dict:
  """Median and minimum ms of one LiteRT invoke, one thread, default delegate."""
  model = litert.LiteRtModel(model_bytes, num_threads=1)
  model.set_inputs([np.zeros(model.inputs[0]["shape"], np.float32)])
  times = []
  for i in range(warmup + invokes):
    start = time.perf_counter()
    model.interpreter.invoke()
    if i >= warmup:
      times.append(1e3 * (time.perf_counter() - start))
  return {"median_ms": statistics.median(times), "min_ms": min(times), "invokes": invokes}


def _metrics_subset(res: dict) -> dict:
  keys = ("mean_px_error", "median_px_error", "pck", "per_side_px_error", "pose_accuracy",
          "orientation_accuracy", "visibility_f1", "presence_f1", "segmentation_miou",
          "num_examples", "num_keypoints")
  return {k: res[k] for k in keys if k in res}


def decoding_settings(hand_mask: bool) -> dict:
  """How the card's keypoint figures were decoded (hand25d/decoding.py's constants).

  Args:
    hand_mask: whether the model has a hand mask (ModelConfig.hand_mask),
      which decoding then adds to the score maps.

  Returns:
    JSON-ready dict: the refinement's window radius (cells) and temperature,
    and the hand mask's weight and floor (None without a hand mask).
  """
  return {"function": "hand25d.decoding.decode_outputs",
          "refine_radius_cells": decoding.REFINE_RADIUS,
          "refine_temperature": decoding.REFINE_TEMPERATURE,
          "hand_mask_weight": decoding.HAND_MASK_WEIGHT if hand_mask else None,
          "hand_mask_floor": decoding.HAND_MASK_FLOOR if hand_mask else None}


def card_markdown(card: dict) -> str:
  """The readable model card."""
  one, two = card["metrics_test_users"], card.get("metrics_test_users_mirror_ensemble", {})
  rows = [("mean 2D error (px, 120x160)", "mean_px_error"),
          ("median 2D error (px)", "median_px_error"),
          *[(f"PCK@{k}", ("pck", k)) for k in one["pck"]],
          ("pose accuracy", "pose_accuracy"),
          ("orientation accuracy", "orientation_accuracy"),
          ("keypoint visibility F1", "visibility_f1"),
          ("hand presence F1", "presence_f1"),
          ("segmentation mIoU", "segmentation_miou")]
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
  get = lambda m, key: (m.get(key[0], {}).get(key[1]) if isinstance(key, tuple)  # noqa: E731
                        else m.get(key))
  lines = [
      "# hand25d pretrained model card", "",
      f"Built {card['built']} by `{card['command']}`.", "",
      "## Intended use", "", card["intended_use"], "",
      "## Limits", "", card["limits"], "",
      "## Data", "",
      f"Synthetic only: hand25d generator version {card['data']['generator_version']}, "
      f"seed {card['data']['seed']}, {card['data']['num_frames']:,} frames "
      f"({', '.join(f'{s} {n:,}' for s, n in card['data']['split_frames'].items())}), "
      f"split by user ({'/'.join(str(n) for n in paper.USERS_PER_SPLIT)} users, as the "
      "paper).", "",
      "## Training", "",
      f"Recipe `{card['recipe']['name']}`: {card['recipe']['description']}", "",
      f"{card['training']['steps']:,} steps of batch {card['training']['batch_size']}"
      + "".join(f", then stage {st['name']} ({st['steps']:,} steps): "
                f"{st['description'].rstrip('.')}"
                for st in card["training"].get("stages", []))
      + f"; {card['training']['wall_hours']:.2f} h of training on this machine "
      f"({card['training']['cpu_count']} CPUs); best checkpoint by validation error at "
      f"step {card['training']['best_step']}" + (" of the last stage" if card["training"].get(
          "stages") else "") + ".", "",
      "## Accuracy on the test users (Keras float32, best checkpoint)", "",
      _decoding_sentence(card["decoding"]), "",
      "One pass: the network on each frame, as the paper. Mirror ensemble: the mean of its "
      "outputs on each frame and on the frame's mirror image (`hand25d.mirror`; two passes, "
      "twice the network's latency; docs/training.md, \"The mirror ensemble\").", "",
      "| metric | one pass | mirror ensemble |", "| --- | ---: | ---: |",
      *[f"| {a} | {fmt(get(one, key))} | {fmt(get(two, key))} |" for a, key in rows], "",
      "## Exported models", "",
      "| file | bytes | TFLM copy (bytes) | mean 2D error (px, test) | the same, mirror "
      "ensemble | TFLM arena (bytes) | latency median (ms, 1 thread, one pass) |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for e in card["exports"].values():
    lines.append(f"| {e['file']} | {e['size_bytes']:,} | {e['tflm_size_bytes']:,} | "
                 f"{fmt(e['mean_px_error'])} | {fmt(e.get('mirror_ensemble_mean_px_error'))} | "
                 f"{e['tflm_arena_bytes']:,} | {e['latency']['median_ms']:.3f} |")
  lines += ["", "bytes: the LiteRT model (its signature and TFLite metadata kept); TFLM copy: "
            "the same graph stripped for TensorFlow Lite Micro and firmware arrays "
            "(docs/export.md)."]
  lines += ["", f"Inference network: {card['network']['params']:,} parameters, "
            f"{card['network']['flops'] / 1e6:.1f} MFLOPs at 120x160.", ""]
  return "\n".join(lines)


def _decoding_sentence(d: dict) -> str:
  mask = ("" if d["hand_mask_weight"] is None else
          f", with the hand mask's log-probability (weight {d['hand_mask_weight']:g}, floor "
          f"{d['hand_mask_floor']:g}) added for the arg-max")
  return (f"Keypoints decoded by `{d['function']}`: the arg-max cell of each score map{mask}, "
          f"refined by a local soft-argmax (temperature {d['refine_temperature']:g}, over the "
          f"cells within {d['refine_radius_cells']} of it on each axis; docs/training.md, "
          "\"Sub-pixel decoding\").")


def build(cfg: BuildConfig) -> dict:
  """Runs the stages of the module docstring; returns the model card."""
  recipe = recipes.load(cfg.recipe)
  data_dir = os.path.join(cfg.workdir, "data")
  run_dir = os.path.join(cfg.workdir, "train")
  export_dir = os.path.join(cfg.workdir, "export")
  os.makedirs(cfg.workdir, exist_ok=True)

  logging.info("1/6 data set: %s", recipe.data)
  manifest = generate.generate(generate.GeneratorConfig(**recipe.data), data_dir,
                               workers=cfg.workers)
  if recipe.store_at_input:
    model_cfg = recipes.train_config(recipe, data_dir).model
    stored = os.path.join(cfg.workdir, f"data_{model_cfg.input_height}x{model_cfg.input_width}")
    logging.info("1/6 storing the data set at %dx%d in %s", model_cfg.input_height,
                 model_cfg.input_width, stored)
    resize.resize_dataset(data_dir, stored, model_cfg.input_height, model_cfg.input_width)
    data_dir = stored
  logging.info("2/6 training: recipe %s, seed %d", recipe.name, cfg.seed)
  train_cfg = recipes.train_config(recipe, data_dir, seed=cfg.seed)
  summary = _finished(loop.train_and_evaluate(train_cfg, run_dir))
  steps, run_dirs, stages = summary["step"], [run_dir], []
  for stage in recipe.stages:
    logging.info("2/6 stage %s: %s", stage.name, stage.description)
    stage_cfg = recipes.stage_config(recipe, stage, data_dir, run_dir, seed=cfg.seed)
    run_dir = os.path.join(cfg.workdir, f"train_{stage.name}")
    summary = _finished(loop.train_and_evaluate(stage_cfg, run_dir))
    run_dirs.append(run_dir)
    stages.append({"name": stage.name, "description": stage.description,
                   "steps": summary["step"],
                   "best_val_mean_px_error": summary["best_mean_px_error"]})
  logging.info("3/6 evaluating the best checkpoint on the test users")
  metrics = evaluation.evaluate_checkpoint(run_dir, data_dir, "test",
                                           os.path.join(cfg.workdir, "eval"))
  ensemble_metrics = evaluation.evaluate_checkpoint(
      run_dir, data_dir, "test", os.path.join(cfg.workdir, "eval_mirror_ensemble"),
      mirror_ensemble=True)
  logging.info("4/6 export: %s", ", ".join(QUANT))
  report = exporter.export(export_config.ExportConfig(
      checkpoint=run_dir, out_dir=export_dir, quant=QUANT, eval_split="test",
      max_eval_frames=cfg.max_eval_frames, qat=qat.QatConfig(steps=cfg.qat_steps)))
  logging.info("5/6 latency")
  exports = {}
  for quant in QUANT:
    r = report["exports"][quant]
    with open(os.path.join(export_dir, r["file"]), "rb") as f:
      model_bytes = f.read()
    exports[quant] = {"file": SHIPPED_FILES[quant], "size_bytes": r["size_bytes"],
                      "tflm_size_bytes": r["tflm_size_bytes"],
                      "mean_px_error": r["eval"]["mean_px_error"],
                      "mirror_ensemble_mean_px_error":
                          r["eval"]["mirror_ensemble"]["mean_px_error"],
                      "eval_frames": r["eval"]["frames"],
                      "tflm_arena_bytes": r["tflm"]["arena_bytes"],
                      "latency": latency_ms(model_bytes, cfg.latency_invokes)}
  logging.info("6/6 weights and model card")
  model, run_cfg, prefix = evaluation.load_model(run_dir)
  model.save_weights(os.path.join(cfg.workdir, pretrained.TRAINING_WEIGHTS))
  card = {
      "built": datetime.date.today().isoformat(),
      "command": (f"python -m export.pretrained_main --recipe={recipe.name} "
                  f"--seed={cfg.seed}"),
      "intended_use": INTENDED_USE,
      "limits": LIMITS,
      "data": {"generator_version": manifest["generator_version"], "seed": manifest["seed"],
               "num_frames": manifest["num_frames"],
               "split_frames": {s: v["num_frames"] for s, v in manifest["splits"].items()},
               "sensor": {"height": manifest["height"], "width": manifest["width"],
                          "intrinsics": manifest["intrinsics"],
                          "modulation_hz": manifest["modulation_hz"]},
               "range_m": [spec.SENSOR.min_depth_m, spec.SENSOR.max_depth_m]},
      "recipe": {"name": recipe.name, "description": recipe.description},
      "training": {"steps": steps, "batch_size": run_cfg.batch_size,
                   "best_step": int(prefix.rsplit("-", 1)[-1]),
                   "best_val_mean_px_error": summary["best_mean_px_error"],
                   "wall_hours": sum(_wall_hours(d) for d in run_dirs),
                   "cpu_count": os.cpu_count(), "seed": cfg.seed, "stages": stages},
      "decoding": decoding_settings(run_cfg.model.hand_mask),
      "metrics_test_users": _metrics_subset(metrics),
      "metrics_test_users_mirror_ensemble": _metrics_subset(ensemble_metrics),
      "exports": exports,
      "network": {"params": report["exports"]["float32"]["params"],
                  "flops": report["exports"]["float32"]["flops"]},
  }
  shipped_cfg = json.loads(json.dumps(dataclasses.asdict(run_cfg)))
  # Shipped as package data: the data set named as where it was built from,
  # not by the build machine's absolute path.
  shipped_cfg["data_dir"] = os.path.relpath(run_cfg.data_dir)
  if run_cfg.init_weights:  # The run a stage started from, likewise.
    shipped_cfg["init_weights"] = os.path.relpath(run_cfg.init_weights)
  atomic.write_json(os.path.join(cfg.workdir, pretrained.CONFIG), shipped_cfg)
  atomic.write_json(os.path.join(cfg.workdir, pretrained.MODEL_CARD_JSON), card)
  atomic.write_text(os.path.join(cfg.workdir, pretrained.MODEL_CARD_MD), card_markdown(card))
  if cfg.install:
    install(cfg.workdir, export_dir)
  return card


def _finished(summary: dict) -> dict:
  """A run's summary, if it finished (else RuntimeError: rerun to resume)."""
  if summary["status"] != "finished":
    raise RuntimeError(f"training {summary['status']} at step {summary['step']}; rerun the "
                       "same command to resume")
  return summary


# A gap between two training log events longer than this is an interruption.
_RESUME_GAP_S = 600.0


def _wall_hours(run_dir: str) -> float:
  """Training wall time from the run's TensorBoard log, interruptions left out."""
  log_dir = os.path.join(run_dir, training_summaries.TRAIN_DIR)
  times = [event.wall_time for event in training_summaries.events(log_dir)]
  if not times:
    raise FileNotFoundError(f"no TensorBoard events in {log_dir}: the run's training log")
  gaps = np.diff(sorted(times))
  return float(gaps[gaps < _RESUME_GAP_S].sum()) / 3600.0


def install(workdir: str, export_dir: str) -> None:
  """Copies a built model's files into hand25d/pretrained/ (each atomically)."""
  sources = {shipped: os.path.join(export_dir, f"{export_config.model_name(quant)}.tflite")
             for quant, shipped in SHIPPED_FILES.items()}
  for name in pretrained.FILES:
    source = sources.get(name, os.path.join(workdir, name))
    with open(source, "rb") as f:
      atomic.write_bytes(os.path.join(pretrained.DIRECTORY, name), f.read())
  logging.info("installed %s into %s", ", ".join(pretrained.FILES), pretrained.DIRECTORY)

