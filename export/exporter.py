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
  * enforces the budgets: a float32 model over `cfg.max_float32_bytes`, or an
    op TensorFlow Lite Micro cannot run, raises `BudgetError` saying which
    and by how much, before anything is written;
  * measures the smallest TFLM tensor arena, checks TFLM against LiteRT and
    LiteRT against Keras (a model further from its Keras reference than
    FLOAT32_MAX_RELATIVE_DIFF or INT8_MAX_DIFF_STEPS allow raises
    `AgreementError`), and the mean keypoint error of the exported model on
    `cfg.eval_split` (the paper's metric, `hand25d.metrics`);
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
"""

import dataclasses
import os
from typing import Iterator, Optional

import numpy as np

from export import c_array
from export import convert
from export import metadata
from export import qat as qat_lib
from export.shave import blob
from export.shave import memory
from hand25d import atomic
from hand25d import litert
from hand25d import metrics
from hand25d import paper
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

# The paper's bound on the float32 model ("under 300 KB", docs/export.md), in bytes.
FLOAT32_BUDGET_BYTES = paper.FLOAT32_BUDGET_BYTES
# Size target of an int8 model (reported, not enforced).
INT8_TARGET_BYTES = 80_000
REPORT_FILE = "report.json"
# The SHAVE deployment blob (export/shave/blob.py) written with the float32 model.
SHAVE_BLOB_FILE = "shave_fp16.blob"
# The SavedModel of the float inference network (a directory).
SAVED_MODEL_DIR = "saved_model"
# How far an exported model may be from its Keras reference (largest
# difference of an output over the evaluation frames) before the export is
# refused as a conversion that changed what the network computes.
# float32: as a fraction of the output's largest magnitude. Measured: the
# shipped model's keypoint logits differ by 1.7e-4 on 4,000 test frames and
# reach a magnitude of ~37 (on testdata/tof_tiny's 12 frames): ~5e-6; the
# demo's differ by 6.6e-5. 1e-4 leaves a margin of ~20.
FLOAT32_MAX_RELATIVE_DIFF = 1e-4
# int8: in output quantization steps (the int8 output spans 256). Measured:
# PTQ (against the float model) 34 and 41 steps on the demo's keypoint logits;
# QAT (against the QAT model) 24 on the shipped model, 16-19 on the demo's.
# 96 is over twice the largest measured and under half the output's range.
INT8_MAX_DIFF_STEPS = 96


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """What to export and how to check it.

  Attributes:
    checkpoint: a checkpoint prefix, a checkpoint directory or a run's workdir
      (then its best checkpoint), as `hand25d.eval_main` takes.
    out_dir: where the models, C arrays and report go; the export replaces
      the directory as a whole (`check_out_dir` says what it may hold).
    quant: quantization modes to export, from `convert.QUANT_MODES`.
    data_dir: the data set for calibration, fine-tuning and evaluation;
      None takes the training run's.
    eval_split: split on which the exported models are evaluated.
    max_eval_frames: evaluate on at most this many frames (0: the whole split).
    calibration_split: split whose frames calibrate int8 PTQ.
    calibration_frames: frames that calibrate int8 PTQ.
    tflm_frames: frames run in TFLM and compared with LiteRT.
    max_float32_bytes: the float32 size budget.
    qat: the quantization-aware fine-tuning schedule.
    per_channel_weights: int8 convolution kernels with one scale per output
      channel instead of one per kernel. Off: a scale and its int64 zero point
      cost 12 bytes, per-channel parameters were about 27 KB of an 86 KB
      int8 model, and per-tensor weights cost at most 0.7% of the error in
      the measurements of docs/export.md ("Weight quantization").
  """
  checkpoint: str
  out_dir: str
  quant: tuple[str, ...] = ("float32",)
  data_dir: Optional[str] = None
  eval_split: str = "val"
  max_eval_frames: int = 0
  calibration_split: str = "train"
  calibration_frames: int = 100
  tflm_frames: int = 4
  max_float32_bytes: int = FLOAT32_BUDGET_BYTES
  qat: qat_lib.QatConfig = qat_lib.QatConfig()
  per_channel_weights: bool = False

  def __post_init__(self):
    unknown = [q for q in self.quant if q not in convert.QUANT_MODES]
    if unknown or not self.quant:
      raise ValueError(f"quantization modes {list(self.quant)}: expected one or more of "
                       f"{convert.QUANT_MODES}")
    for name in ("calibration_frames", "tflm_frames", "max_float32_bytes"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.max_eval_frames < 0:
      raise ValueError(f"max_eval_frames must be >= 0, got {self.max_eval_frames}")


class ExportError(RuntimeError):
  """The export cannot be made; the message says why and what to do."""


class CheckpointError(ExportError):
  """The checkpoint is missing or does not fit the network of its run config."""


class BudgetError(ExportError):
  """An exported model breaks a budget: too large, or not runnable in TFLM."""


class AgreementError(ExportError):
  """An exported model computes something else than its Keras reference."""


class OutDirError(ExportError):
  """The output directory cannot take the export."""


def model_name(quant: str) -> str:
  """Base name (and C symbol stem) of the files of one quantization mode."""
  return f"hand25d_{quant}"


def tflm_file(quant: str) -> str:
  """The TensorFlow Lite Micro model of one quantization mode (stripped, no metadata)."""
  return f"{model_name(quant)}_tflm.tflite"


def export_files() -> frozenset[str]:
  """The names of every file (and of SAVED_MODEL_DIR) an export can write into its directory."""
  return frozenset([REPORT_FILE, SHAVE_BLOB_FILE, SAVED_MODEL_DIR]
                   + [model_name(q) + ext for q in convert.QUANT_MODES
                      for ext in (".tflite", ".h", ".cc")]
                   + [tflm_file(q) for q in convert.QUANT_MODES])


def check_out_dir(out_dir: str) -> None:
  """Refuses, before any work, an output directory the export cannot replace.

  The export replaces `out_dir` as a whole (`atomic.replacing_dir`), so it
  must be a directory, or not exist yet below a directory; the directory
  above it must be writable; and it may hold only files an export writes
  (`export_files`) and the temporary files of a killed one: anything else
  would be lost.

  Raises:
    OutDirError: naming the path and what is wrong with it.
  """
  path = os.path.realpath(out_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise OutDirError(f"--out {out_dir} is not a directory")
  parent = os.path.dirname(path)
  while not os.path.exists(parent):  # The nearest directory that exists.
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise OutDirError(f"--out {out_dir} cannot be created: {parent} is not a directory")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise OutDirError(f"--out {out_dir}: {parent} is not writable (the export writes its "
                      "files beside the output directory, then renames them into place)")
  if os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK):
    raise OutDirError(f"--out {out_dir} is not writable")
  if os.path.isdir(path):
    foreign = sorted(n for n in os.listdir(path) if n not in export_files()
                     and not (n.startswith(".") and n.endswith(".tmp")))
    if foreign:
      raise OutDirError(f"--out {out_dir} holds {len(foreign)} entries an export does not "
                        f"write ({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
                        "the export replaces the directory as a whole: give an empty or new "
                        "directory, or one an export wrote")


def check_config(cfg: ExportConfig) -> None:
  """Refuses, before any model is built, an export that cannot be made.

  int8 QAT of a backbone in model_config.QAT_UNSUPPORTED_BACKBONES fails
  inside tensorflow-model-optimization, after float32 and PTQ have run; it is
  refused here instead, naming the backbone and the reason.

  Raises:
    CheckpointError: no run config above cfg.checkpoint.
    ExportError: int8_qat asked of a backbone QAT cannot export.
  """
  if "int8_qat" not in cfg.quant:
    return
  try:
    backbone = train_config.load(evaluation.find_run(cfg.checkpoint)[0]).model.backbone
  except (FileNotFoundError, ValueError) as e:
    raise CheckpointError(f"cannot export {cfg.checkpoint}: {e}") from e
  if backbone in model_config.QAT_UNSUPPORTED_BACKBONES:
    others = [q for q in cfg.quant if q != "int8_qat"] or ["float32", "int8_ptq"]
    raise ExportError(f"int8_qat cannot export backbone {backbone!r} of {cfg.checkpoint}: "
                      f"{model_config.QAT_UNSUPPORTED_BACKBONES[backbone]}; export it with "
                      f"--quant={','.join(others)}")


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
    raise CheckpointError(f"cannot export {checkpoint}: {e}") from e
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
             cfg: ExportConfig) -> tuple[bytes, keras.Model]:
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


def _check_size(quant: str, size: int, budget: int) -> None:
  if quant == "float32" and size > budget:
    over = size - budget
    raise BudgetError(f"float32 model is {size:,} bytes: {over:,} bytes "
                      f"({100 * over / budget:.1f}%) over the size budget of {budget:,} bytes "
                      "(ExportConfig.max_float32_bytes); make the network smaller")


def _tflm_arena(quant: str, model: bytes, image: np.ndarray, lite: litert.LiteRtModel) -> int:
  try:
    return litert.smallest_arena(model, [litert.quantize(image, lite.inputs[0])])
  except litert.TflmError as e:
    hint = "; build those layers from ops TFLM has" if e.unsupported_ops else ""
    raise BudgetError(f"{quant} model does not run in TensorFlow Lite Micro: {e}{hint}") from e


def _output_names(lite: litert.LiteRtModel, names: dict[str, tuple[int, ...]]) -> list[str]:
  """The output name of each LiteRT output, in the model's order (matched by shape)."""
  return [next(n for n, shape in names.items() if shape == tuple(d["shape"]))
          for d in lite.outputs]


def _max_abs(values: dict[str, np.ndarray], into: dict) -> None:
  for name, value in values.items():
    into[name] = max(into.get(name, 0.0), float(np.max(np.abs(value))))


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], into: dict) -> None:
  _max_abs({name: a[name] - b[name] for name in a}, into)


def _check_agreement(quant: str, checkpoint: str, reference: str, frames: int,
                     diff: dict[str, float], magnitude: dict[str, float],
                     steps: Optional[dict[str, float]]) -> None:
  """Refuses a model further from its Keras reference than the tolerance of its mode.

  Args:
    diff: per output, the largest |TFLite - Keras| over the frames.
    magnitude: per output, the largest |Keras| over the frames (float32).
    steps: per output, the output quantization step (int8), else None.

  Raises:
    AgreementError: naming the model, the output, the measured and the
      allowed difference.
  """
  for name, d in diff.items():
    if steps is None:
      allowed = FLOAT32_MAX_RELATIVE_DIFF * magnitude[name]
      if d > allowed:
        raise AgreementError(
            f"{model_name(quant)}.tflite of {checkpoint} differs from its Keras reference "
            f"({reference}) by {d:.3g} on output {name!r} over {frames} frames, over the "
            f"{allowed:.3g} allowed ({FLOAT32_MAX_RELATIVE_DIFF:g} of the output's largest "
            f"magnitude {magnitude[name]:.3g}, exporter.FLOAT32_MAX_RELATIVE_DIFF): the "
            "conversion changed what the network computes")
    elif d > INT8_MAX_DIFF_STEPS * steps[name]:
      raise AgreementError(
          f"{model_name(quant)}.tflite of {checkpoint} differs from its Keras reference "
          f"({reference}) by {d:.3g} = {d / steps[name]:.0f} output quantization steps (of "
          f"{steps[name]:.3g}) on output {name!r} over {frames} frames, over the "
          f"{INT8_MAX_DIFF_STEPS} steps allowed (exporter.INT8_MAX_DIFF_STEPS): the "
          "conversion changed what the network computes")


def _export_one(quant: str, inference: keras.Model, train_cfg: train_config.TrainConfig,
                data_dir: str, cfg: ExportConfig, frames: list[tuple],
                version: str) -> tuple[bytes, bytes, dict]:
  """Converts, checks and evaluates one mode: (LiteRT model, TFLM model, its report).

  Each check runs the copy that goes to its runtime: LiteRT the LiteRT model
  (signature and metadata kept), TFLM the TFLM model (stripped).
  """
  converted, reference = _convert(quant, inference, train_cfg, data_dir, cfg)
  model_bytes = metadata.write(convert.strip(converted, keep_signature=True), model_name(quant),
                               quant, train_cfg.model, version)
  micro_bytes = convert.strip(converted)
  _check_size(quant, len(model_bytes), cfg.max_float32_bytes)
  lite = litert.LiteRtModel(model_bytes)
  arena = _tflm_arena(quant, micro_bytes, frames[0][0], lite)
  names = {name: tuple(t.shape) for name, t in inference.output.items()}

  @tf.function
  def keras_outputs(image):
    return reference(image, training=False)

  reference_kernels = litert.LiteRtModel(model_bytes, reference=True)
  evaluator, keras_evaluator = metrics.Evaluator(), metrics.Evaluator()
  keras_diff, keras_magnitude, tflm_diff, tflm_default_diff = {}, {}, {}, {}
  for i, (image, targets) in enumerate(frames):
    expected = {k: v.numpy() for k, v in keras_outputs(image).items()}
    keras_evaluator.update(expected, targets)
    got = lite([image], names)
    evaluator.update(got, targets)
    _max_diff(expected, got, keras_diff)
    _max_abs(expected, keras_magnitude)
    if i < cfg.tflm_frames:
      micro = litert.tflm_run(micro_bytes, [litert.quantize(image, lite.inputs[0])], arena,
                              num_outputs=len(lite.outputs))
      micro = dict(zip(_output_names(lite, names),
                       [litert.dequantize(m, d) for m, d in zip(micro, lite.outputs)]))
      _max_diff(reference_kernels([image], names), micro, tflm_diff)
      _max_diff(got, micro, tflm_default_diff)
  steps = ({name: float(d["quantization"][0])
            for name, d in zip(_output_names(lite, names), lite.outputs)}
           if quant != "float32" else None)
  keras_reference = "QAT model" if quant == "int8_qat" else FLOAT_REFERENCE
  _check_agreement(quant, cfg.checkpoint, keras_reference, len(frames), keras_diff,
                   keras_magnitude, steps)
  stats = card.tflite_stats(micro_bytes)
  result = evaluator.result()
  report = {
      "quant": quant,
      "file": f"{model_name(quant)}.tflite",
      "size_bytes": len(model_bytes),
      "tflm_file": tflm_file(quant),
      "tflm_size_bytes": len(micro_bytes),
      "metadata": {"name": model_name(quant), "version": version,
                   "signature": convert.SERVING_SIGNATURE,
                   "outputs": metadata.signature_outputs(model_bytes),
                   "packed_files": sorted(metadata.label_files())},
      "size_limit_bytes": cfg.max_float32_bytes if quant == "float32" else INT8_TARGET_BYTES,
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
               "keras_reference_mean_px_error": keras_evaluator.result()["mean_px_error"]},
      "tflm": {"arena_bytes": arena, "frames": min(cfg.tflm_frames, len(frames)),
               "max_abs_diff_vs_litert_reference": tflm_diff,
               "max_abs_diff_vs_litert_default": tflm_default_diff},
      "c_array": {"header": f"{model_name(quant)}.h", "source": f"{model_name(quant)}.cc",
                  "symbol": f"g_{model_name(quant)}", "alignment": c_array.ALIGNMENT},
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


def export(cfg: ExportConfig) -> dict:
  """Exports the checkpoint in every mode of cfg.quant; returns (and writes) the report.

  Nothing is written unless every mode meets its budgets and agrees with its
  Keras reference; then cfg.out_dir is replaced by the new set of files as a
  whole (files of an earlier export that this one does not write go too).

  Raises:
    OutDirError: cfg.out_dir cannot take the export (`check_out_dir`).
    CheckpointError: a missing checkpoint or one of another architecture.
    ExportError: int8_qat of a backbone QAT cannot export (`check_config`).
    BudgetError: a float32 model over cfg.max_float32_bytes, or a model that
      TensorFlow Lite Micro cannot run (an op it lacks, a kernel refusing its
      tensor types, ...).
    AgreementError: a model further from its Keras reference than
      FLOAT32_MAX_RELATIVE_DIFF or INT8_MAX_DIFF_STEPS allow.
    ExportError: no evaluation frames, or a network the SHAVE blob cannot hold.
  """
  check_out_dir(cfg.out_dir)
  check_config(cfg)
  # Of a killed export: a set never renamed into place, or the old set left aside.
  atomic.remove_stale_dirs(cfg.out_dir)
  atomic.remove_stale(cfg.out_dir)  # Temporary files of exports that wrote in place.
  inference, train_cfg, prefix = load_inference_model(cfg.checkpoint)
  data_dir = cfg.data_dir or train_cfg.data_dir
  frames = list(_frames(data_dir, cfg.eval_split, cfg.max_eval_frames, train_cfg.model))
  if not frames:
    raise ExportError(f"split {cfg.eval_split!r} of {data_dir} has no frames to evaluate on")
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
      "saved_model": {"dir": SAVED_MODEL_DIR, "signature": convert.SERVING_SIGNATURE,
                      "inputs": {inference.input.name: [None, *inference.input.shape[1:]]},
                      "outputs": {k: [None, *t.shape[1:]] for k, t in inference.output.items()}},
      "exports": reports,
  }
  with atomic.replacing_dir(cfg.out_dir) as staging:
    convert.write_saved_model(inference, os.path.join(staging, SAVED_MODEL_DIR))
    if "float32" in models:
      try:
        report["shave_blob"] = {"file": SHAVE_BLOB_FILE, **blob.write_blob(
            inference, os.path.join(staging, SHAVE_BLOB_FILE), "fp16")}
      except (ValueError, memory.SliceOverflowError) as e:
        raise ExportError(f"the SHAVE blob of {prefix} cannot be made: {e}") from e
    for quant, (model_bytes, micro_bytes) in models.items():
      atomic.write_bytes(os.path.join(staging, f"{model_name(quant)}.tflite"), model_bytes)
      atomic.write_bytes(os.path.join(staging, tflm_file(quant)), micro_bytes)
      c_array.write(micro_bytes, staging, model_name(quant))
    atomic.write_json(os.path.join(staging, REPORT_FILE), report)
  return report


def _fmt(value: Optional[float], spec: str) -> str:
  return "n/a" if value is None else format(value, spec)


def summary(report: dict) -> str:
  """A readable table of a report: one row per exported model."""
  lines = [f"checkpoint {report['checkpoint']}",
           f"Keras float32 mean px error: {_fmt(report['mean_px_error']['keras_float32'], '.3f')}",
           "",
           "| model | bytes | TFLM bytes | limit | px error | Keras-TFLite max diff | "
           "TFLM arena | TFLM-LiteRT(ref) max diff |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for quant, r in report["exports"].items():
    diff = max(r["keras_vs_tflite_max_abs_diff"].values())
    lines.append(f"| {r['file']} | {r['size_bytes']:,} | {r['tflm_size_bytes']:,} | "
                 f"{r['size_limit_bytes']:,} | "
                 f"{_fmt(r['eval']['mean_px_error'], '.3f')} | {diff:.3g} | "
                 f"{r['tflm']['arena_bytes']:,} | "
                 f"{max(r['tflm']['max_abs_diff_vs_litert_reference'].values()):.3g} |")
  first = next(iter(report["exports"].values()))
  lines += ["", f"params {first['params']:,}, FLOPs {first['flops']:,}; ops: "
            + ", ".join(f"{k} x{v}" for k, v in first["ops"].items())]
  return "\n".join(lines)
