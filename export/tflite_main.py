r"""Exports a trained checkpoint as TFLite (float32 / int8), with C arrays and a report.

  python -m export.tflite_main --checkpoint=runs/train --out=runs/export \
      --quant=float32,int8_ptq,int8_qat

Writes, per mode, the LiteRT model (signature and TFLite metadata kept), its
stripped TensorFlow Lite Micro copy and C array; and the float network as a
SavedModel.

Exits non-zero with a message, before any work, if --out cannot take the
export (not a directory, not writable, or holding files an export does not
write) or the checkpoint is missing or of another architecture; and, before
anything is written, if the float32 model is over budget, TensorFlow Lite
Micro cannot run a model, or a model differs from its Keras reference beyond
the tolerance. See docs/export.md.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from export import config as export_config
from export import convert
from export import exporter
from export import qat
from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)

_EXPORT = export_config.ExportConfig
_CHECKPOINT = config_flags.define(_EXPORT, "checkpoint",
                                  "Checkpoint prefix, checkpoint directory or run workdir.")
_OUT = config_flags.define(_EXPORT, "out_dir", "Output directory.", name="out")
_QUANT = config_flags.define(_EXPORT, "quant", f"Quantization modes, any of {convert.QUANT_MODES}.")
_DATA = config_flags.define(_EXPORT, "data_dir", "Data set directory (default: the run's).",
                            name="data")
_SPLIT = config_flags.define(_EXPORT, "eval_split", "Split to evaluate the exported models on.",
                             name="split")
# The exported models are evaluated one frame per batch.
_MAX_EVAL_BATCHES = config_flags.define(
    _EXPORT, "max_eval_frames", "Evaluate on at most this many batches of one frame (0: all).",
    name="max_eval_batches")
flags.DEFINE_alias("max_eval_frames", "max_eval_batches")  # The old name, for one release.
_CALIBRATION_FRAMES = config_flags.define(_EXPORT, "calibration_frames",
                                          "Training frames that calibrate int8 PTQ.")
_MAX_FLOAT32_BYTES = config_flags.define(_EXPORT, "max_float32_bytes",
                                         "Size budget of the float32 model in bytes.")
_PER_CHANNEL = config_flags.define(_EXPORT, "per_channel_weights",
                                  "int8: one scale per output channel of each kernel "
                                  "instead of one per kernel.")
_QAT_STEPS = config_flags.define(qat.QatConfig, "steps", "Quantization-aware fine-tuning steps.",
                                 name="qat_steps")
_QAT_BATCH_SIZE = config_flags.define(qat.QatConfig, "batch_size",
                                      "Quantization-aware fine-tuning batch size.",
                                      name="qat_batch_size")
_QAT_LEARNING_RATE = config_flags.define(qat.QatConfig, "learning_rate",
                                         "Initial QAT learning rate (linear decay to 0).",
                                         name="qat_learning_rate")


def main(argv):
  del argv
  try:
    cfg = export_config.ExportConfig(
        checkpoint=_CHECKPOINT.value, out_dir=_OUT.value, quant=tuple(_QUANT.value),
        data_dir=_DATA.value, eval_split=_SPLIT.value, max_eval_frames=_MAX_EVAL_BATCHES.value,
        calibration_frames=_CALIBRATION_FRAMES.value, max_float32_bytes=_MAX_FLOAT32_BYTES.value,
        per_channel_weights=_PER_CHANNEL.value,
        qat=qat.QatConfig(steps=_QAT_STEPS.value, batch_size=_QAT_BATCH_SIZE.value,
                          learning_rate=_QAT_LEARNING_RATE.value))
  except ValueError as e:  # A flag value the config refuses: usage, not a traceback.
    raise app.UsageError(str(e)) from e
  try:
    report = exporter.export(cfg)
  except export_config.ExportError as e:
    sys.exit(f"export failed: {e}")
  print(exporter.summary(report))
  print(f"\nwrote {_OUT.value}/{export_config.REPORT_FILE}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
