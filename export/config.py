"""What an export is asked, what it writes, how it fails, and what it refuses before any work.

  ExportConfig     what to export and how to check it (export/tflite_main.py's flags)
  ExportError      and its kinds: CheckpointError, BudgetError, AgreementError,
                   OutDirError
  model_name, tflm_file, export_files
                   the files an export writes into its directory (docs/export.md,
                   "What is written")
  check_out_dir, check_config
                   the refusals before any work (docs/export.md, "Budgets")

`export.exporter.export(cfg)` makes the export.
"""

import dataclasses
import os
from typing import Optional

from export import convert
from export import qat as qat_lib
from hand25d import paper
from hand25d.model import config as model_config
from hand25d.training import config as train_config
from hand25d.training import evaluation

# The paper's bound on the float32 model ("under 300 KB", docs/export.md), in bytes.
FLOAT32_BUDGET_BYTES = paper.FLOAT32_BUDGET_BYTES
# Size target of an int8 model (reported, not enforced).
INT8_TARGET_BYTES = 80_000
REPORT_FILE = "report.json"
# The SHAVE deployment blob (export/shave/blob.py) written with the float32 model.
SHAVE_BLOB_FILE = "shave_fp16.blob"
# The SavedModel of the float inference network (a directory).
SAVED_MODEL_DIR = "saved_model"


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
