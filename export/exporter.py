"""Export of a trained checkpoint: SavedModel, TFLite float32 / int8 (PTQ, QAT), TFLM, C array.

`export(cfg)` loads a training checkpoint, builds the batch-1 inference
network with true grouped convolutions (`network.inference_model`), and for
each quantization mode of `cfg.quant`:

  * converts it (float32; int8 by post-training quantization calibrated on
    frames of the real input pipeline; int8 by quantization-aware
    fine-tuning, `export.qat`) into two copies of one graph: the LiteRT
    model, which keeps its signature and carries TFLite metadata
    (`export.metadata`), and the TensorFlow Lite Micro model, without
    debug strings, signature or metadata (`convert.strip`);
  * enforces the budgets (`export.checks`): a float32 model over
    `cfg.max_float32_bytes`, or an op TensorFlow Lite Micro cannot run,
    raises `BudgetError` saying which and by how much, before anything is
    written;
  * measures the smallest TFLM tensor arena, checks TFLM against LiteRT and
    LiteRT against Keras (a model further from its Keras reference than
    checks.FLOAT32_MAX_RELATIVE_DIFF or checks.INT8_MAX_DIFF_STEPS allow raises
    `AgreementError`), and the mean keypoint error of the exported model on
    `cfg.eval_split` (the paper's metric, `hand25d.metrics`), of one pass
    and of the mirror ensemble (two passes, `hand25d.mirror`);
  * writes the LiteRT model `hand25d_<mode>.tflite`, the TFLM model
    `hand25d_<mode>_tflm.tflite` and its firmware array
    `hand25d_<mode>.h/.cc`; with float32, also the SHAVE deployment blob
    of the float inference model (`export.shave.blob`, fp16).

Whatever the modes, the float inference network also goes out as a
TensorFlow SavedModel (`saved_model/`, signature `serving_default`).
All results go into `report.json` (see docs/export.md). The files are written
as one set: into a temporary directory beside `cfg.out_dir`, which then
replaces it (`atomic.replacing_dir`), so a killed export leaves the previous
set whole, never a new file beside an old model and report.

`ExportConfig`, the names of the files, the errors (`ExportError` and its
kinds) and the refusals before any work are in `export.config`.
"""

import dataclasses
import os
from typing import Iterator, Optional

import numpy as np

from export import c_array
from export import checks
from export import config as export_config
from export import convert
from export import metadata
from export import qat as qat_lib
from export.shave import blob
from export.shave import memory
from hand25d import atomic
from hand25d import litert
from hand25d import metrics
from hand25d import mirror
from hand25d import progress
from hand25d.data import pipeline
from hand25d.model import card
from hand25d.model import config as model_config
from hand25d.model import flops
from hand25d.model import network
from hand25d.training import config as train_config
from hand25d.training import distribute
from hand25d.training import evaluation

import tensorflow as tf
import tf_keras as keras


def load_inference_model(checkpoint: str
                         ) -> tuple[keras.Model, train_config.TrainConfig, str]:
  """(inference model with the checkpoint's weights, the run's TrainConfig, prefix).

  Raises:
    CheckpointError: no checkpoint or run config there, or one of another
      architecture.
  """
  try:
    training, cfg, prefix = evaluation.load_model(checkpoint)
  # No run there; another architecture; no intact checkpoint.
  except (FileNotFoundError, ValueError, distribute.CorruptCheckpointError) as e:
    raise export_config.CheckpointError(f"cannot export {checkpoint}: {e}") from e
  return network.inference_model(cfg.model, weights_from=training), cfg, prefix


def _frames(data_dir: str, split: str, limit: int, model_cfg: model_config.ModelConfig
            ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
  """(image [1, H, W, 1], targets) numpy pairs of a split, at most `limit` (0: all)."""
  data = pipeline.make_dataset(data_dir, split, 1, input_mode=model_cfg.input_mode,
                               training=False, input_height=model_cfg.input_height,
                               input_width=model_cfg.input_width)
  if limit:
    data = data.take(limit)
  for features, targets in data:
    yield features["image"].numpy(), {k: v.numpy() for k, v in targets.items()}


def _convert(quant: str, inference: keras.Model, train_cfg: train_config.TrainConfig,
             data_dir: str,
             cfg: export_config.ExportConfig) -> tuple[bytes, keras.Model]:
  """(the converter's TFLite model, the Keras model it should reproduce)."""
  if quant == "float32":
    return convert.to_tflite(inference, quant), inference
  if quant == "int8_ptq":
    def representative():
      for image, _ in _frames(data_dir, cfg.calibration_split, cfg.calibration_frames,
                              train_cfg.model):
        yield [image]
    return (convert.to_tflite(inference, quant, representative, cfg.per_channel_weights),
            inference)
  qat_model = qat_lib.fine_tune(inference, train_cfg, data_dir, cfg.qat,
                                per_channel_weights=cfg.per_channel_weights)
  return convert.to_tflite(qat_model, quant), qat_model


# report["exports"][quant]["keras_reference"] of the modes checked against the
# float Keras inference model (float32 and PTQ; QAT against its QAT model).
FLOAT_REFERENCE = "float inference model"


def _export_one(quant: str, inference: keras.Model, train_cfg: train_config.TrainConfig,
                data_dir: str, cfg: export_config.ExportConfig, frames: list[tuple],
                version: str) -> tuple[bytes, bytes, dict]:
  """Converts, checks and evaluates one mode: (LiteRT model, TFLM model, its report).

  Each check runs the copy that goes to its runtime: LiteRT the LiteRT model
  (signature and metadata kept), TFLM the TFLM model (stripped).
  """
  stem = export_config.model_name(quant)
  converted, reference = _convert(quant, inference, train_cfg, data_dir, cfg)
  # The int8 QAT model's grouped score 1x1, dense: XNNPACK runs it 16x faster.
  converted = convert.dense_pointwise_groups(converted)
  model_bytes = metadata.write(convert.strip(converted, keep_signature=True), stem, quant,
                               train_cfg.model, version)
  micro_bytes = convert.strip(converted)
  checks.check_size(quant, len(model_bytes), cfg.max_float32_bytes)
  lite = litert.LiteRtModel(model_bytes)
  arena = checks.tflm_arena(quant, micro_bytes, frames[0][0], lite)
  names = {name: tuple(t.shape) for name, t in inference.output.items()}

  @tf.function
  def keras_outputs(image):
    return reference(image, training=False)

  reference_kernels = litert.LiteRtModel(model_bytes, reference=True)
  evaluator, keras_evaluator = metrics.Evaluator(), metrics.Evaluator()
  ensemble_evaluator = metrics.Evaluator()  # The mirror ensemble (hand25d.mirror).
  keras_diff, keras_magnitude, tflm_diff, tflm_default_diff = {}, {}, {}, {}
  bar = progress.Progress(f"export {quant}: checking", total=len(frames), unit="frames", skip=1)
  for i, (image, targets) in enumerate(frames):
    bar.update(1)
    expected = {k: v.numpy() for k, v in keras_outputs(image).items()}
    keras_evaluator.update(expected, targets)
    got = lite([image], names)
    evaluator.update(got, targets)
    mirrored = lite([np.ascontiguousarray(mirror.mirror_images(image))], names)
    ensemble_evaluator.update(mirror.ensemble(got, mirrored), targets)
    checks.max_diff(expected, got, keras_diff)
    checks.max_abs(expected, keras_magnitude)
    if i < cfg.tflm_frames:
      micro = litert.tflm_run(micro_bytes, [litert.quantize(image, lite.inputs[0])], arena,
                              num_outputs=len(lite.outputs))
      micro = dict(zip(checks.output_names(lite, names),
                       [litert.dequantize(m, d) for m, d in zip(micro, lite.outputs)]))
      checks.max_diff(reference_kernels([image], names), micro, tflm_diff)
      checks.max_diff(got, micro, tflm_default_diff)
  bar.finish()
  steps = ({name: float(d["quantization"][0])
            for name, d in zip(checks.output_names(lite, names), lite.outputs)}
           if quant != "float32" else None)
  keras_reference = "QAT model" if quant == "int8_qat" else FLOAT_REFERENCE
  checks.check_agreement(quant, cfg.checkpoint, keras_reference, len(frames), keras_diff,
                         keras_magnitude, steps)
  stats = card.tflite_stats(micro_bytes)
  result, ensemble = evaluator.result(), ensemble_evaluator.result()
  report = {
      "quant": quant,
      "file": f"{stem}.tflite",
      "size_bytes": len(model_bytes),
      "tflm_file": export_config.tflm_file(quant),
      "tflm_size_bytes": len(micro_bytes),
      "metadata": {"name": stem, "version": version,
                   "signature": convert.SERVING_SIGNATURE,
                   "outputs": metadata.signature_outputs(model_bytes),
                   "packed_files": sorted(metadata.label_files())},
      "size_limit_bytes": (cfg.max_float32_bytes if quant == "float32"
                           else export_config.INT8_TARGET_BYTES),
      "size_limit_kind": "budget (enforced)" if quant == "float32" else "target (reported)",
      "params": inference.count_params(),
      "trainable_params": int(sum(np.prod(w.shape) for w in inference.trainable_weights)),
      "flops": flops.total_flops(inference),
      "tflite_macs": stats["macs"],
      "ops": stats["ops"],
      "peak_activation_bytes": stats["peak_activation_bytes"],
      "keras_reference": keras_reference,
      "keras_vs_tflite_max_abs_diff": keras_diff,
      "output_quantization_step": steps,
      "eval": {"split": cfg.eval_split, "frames": len(frames),
               "mean_px_error": result["mean_px_error"], "pck": result["pck"],
               "mirror_ensemble": {"mean_px_error": ensemble["mean_px_error"],
                                   "pck": ensemble["pck"]},
               "keras_reference_mean_px_error": keras_evaluator.result()["mean_px_error"]},
      "tflm": {"arena_bytes": arena, "frames": min(cfg.tflm_frames, len(frames)),
               "max_abs_diff_vs_litert_reference": tflm_diff,
               "max_abs_diff_vs_litert_default": tflm_default_diff},
      "c_array": {"header": f"{stem}.h", "source": f"{stem}.cc",
                  "symbol": f"g_{stem}", "alignment": c_array.ALIGNMENT},
  }
  if quant == "int8_qat":
    report["qat"] = dataclasses.asdict(cfg.qat)
  if quant != "float32":
    report["weight_quantization"] = "per_channel" if cfg.per_channel_weights else "per_tensor"
  if quant == "int8_ptq":
    report["calibration"] = {"split": cfg.calibration_split, "frames": cfg.calibration_frames}
  return model_bytes, micro_bytes, report


def _keras_px_error(model: keras.Model, frames: list[tuple]) -> Optional[float]:
  predict = tf.function(lambda image: model(image, training=False))
  evaluator = metrics.Evaluator()
  for image, targets in frames:
    evaluator.update({k: v.numpy() for k, v in predict(image).items()}, targets)
  return evaluator.result()["mean_px_error"]


def export(cfg: export_config.ExportConfig) -> dict:
  """Exports the checkpoint in every mode of cfg.quant; returns (and writes) the report.

  Nothing is written unless every mode meets its budgets and agrees with its
  Keras reference; then cfg.out_dir is replaced by the new set of files as a
  whole (files of an earlier export that this one does not write go too).

  Raises:
    OutDirError: cfg.out_dir cannot take the export (`config.check_out_dir`).
    CheckpointError: a missing checkpoint or one of another architecture.
    ExportError: int8_qat of a backbone QAT cannot export (`config.check_config`).
    BudgetError: a float32 model over cfg.max_float32_bytes, or a model that
      TensorFlow Lite Micro cannot run (an op it lacks, a kernel refusing its
      tensor types, ...).
    AgreementError: a model further from its Keras reference than
      checks.FLOAT32_MAX_RELATIVE_DIFF or checks.INT8_MAX_DIFF_STEPS allow.
    ExportError: no evaluation frames, or a network the SHAVE blob cannot hold.
  """
  export_config.check_out_dir(cfg.out_dir)
  export_config.check_config(cfg)
  # Of a killed export: a set never renamed into place, or the old set left aside.
  atomic.remove_stale_dirs(cfg.out_dir)
  atomic.remove_stale(cfg.out_dir)  # Temporary files of exports that wrote in place.
  inference, train_cfg, prefix = load_inference_model(cfg.checkpoint)
  data_dir = cfg.data_dir or train_cfg.data_dir
  frames = list(_frames(data_dir, cfg.eval_split, cfg.max_eval_frames, train_cfg.model))
  if not frames:
    raise export_config.ExportError(
        f"split {cfg.eval_split!r} of {data_dir} has no frames to evaluate on")
  models, reports = {}, {}
  version = metadata.version(prefix)
  for quant in cfg.quant:
    model_bytes, micro_bytes, reports[quant] = _export_one(quant, inference, train_cfg,
                                                           data_dir, cfg, frames, version)
    models[quant] = (model_bytes, micro_bytes)
  # The float Keras model's error: the float32 and PTQ checks already ran it
  # on these frames as their reference; only a QAT-only export runs it again.
  keras_error = next((r["eval"]["keras_reference_mean_px_error"] for r in reports.values()
                      if r["keras_reference"] == FLOAT_REFERENCE), None)
  if keras_error is None:
    keras_error = _keras_px_error(inference, frames)
  report = {
      "checkpoint": prefix,
      "data_dir": os.path.abspath(data_dir),
      "model": dataclasses.asdict(train_cfg.model),
      "mean_px_error": {"keras_float32": keras_error,
                        **{q: r["eval"]["mean_px_error"] for q, r in reports.items()}},
      "saved_model": {"dir": export_config.SAVED_MODEL_DIR,
                      "signature": convert.SERVING_SIGNATURE,
                      "inputs": {inference.input.name: [None, *inference.input.shape[1:]]},
                      "outputs": {k: [None, *t.shape[1:]] for k, t in inference.output.items()}},
      "exports": reports,
  }
  with atomic.replacing_dir(cfg.out_dir) as staging:
    convert.write_saved_model(inference, os.path.join(staging, export_config.SAVED_MODEL_DIR))
    if "float32" in models:
      try:
        report["shave_blob"] = {"file": export_config.SHAVE_BLOB_FILE, **blob.write_blob(
            inference, os.path.join(staging, export_config.SHAVE_BLOB_FILE), "fp16")}
      except (ValueError, memory.SliceOverflowError) as e:
        raise export_config.ExportError(f"the SHAVE blob of {prefix} cannot be made: {e}") from e
    for quant, (model_bytes, micro_bytes) in models.items():
      stem = export_config.model_name(quant)
      atomic.write_bytes(os.path.join(staging, f"{stem}.tflite"), model_bytes)
      atomic.write_bytes(os.path.join(staging, export_config.tflm_file(quant)), micro_bytes)
      c_array.write(micro_bytes, staging, stem)
    atomic.write_json(os.path.join(staging, export_config.REPORT_FILE), report)
  return report


def _fmt(value: Optional[float], spec: str) -> str:
  return "n/a" if value is None else format(value, spec)


def summary(report: dict) -> str:
  """A readable table of a report: one row per exported model."""
  lines = [f"checkpoint {report['checkpoint']}",
           f"Keras float32 mean px error: {_fmt(report['mean_px_error']['keras_float32'], '.3f')}",
           "",
           "| model | bytes | TFLM bytes | limit | px error | px error, mirror ensemble | "
           "Keras-TFLite max diff | TFLM arena | TFLM-LiteRT(ref) max diff |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for quant, r in report["exports"].items():
    diff = max(r["keras_vs_tflite_max_abs_diff"].values())
    lines.append(f"| {r['file']} | {r['size_bytes']:,} | {r['tflm_size_bytes']:,} | "
                 f"{r['size_limit_bytes']:,} | "
                 f"{_fmt(r['eval']['mean_px_error'], '.3f')} | "
                 f"{_fmt(r['eval']['mirror_ensemble']['mean_px_error'], '.3f')} | {diff:.3g} | "
                 f"{r['tflm']['arena_bytes']:,} | "
                 f"{max(r['tflm']['max_abs_diff_vs_litert_reference'].values()):.3g} |")
  first = next(iter(report["exports"].values()))
  lines += ["", f"params {first['params']:,}, FLOPs {first['flops']:,}; ops: "
            + ", ".join(f"{k} x{v}" for k, v in first["ops"].items())]
  return "\n".join(lines)
