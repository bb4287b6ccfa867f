r"""Exports a trained checkpoint as TFLite (float32 / int8), with C arrays and a report.

  python -m export.tflite_main --checkpoint=runs/train --out=runs/export \
      --quant=float32,int8_ptq,int8_qat

Exits non-zero with a message, before any work, if --out cannot take the
export (not a directory, not writable, or holding files an export does not
write) or the checkpoint is missing or of another architecture; and, before
anything is written, if the float32 model is over budget, TensorFlow Lite
Micro cannot run a model, or a model differs from its Keras reference beyond
the tolerance. See docs/export.md.
"""

import sys

from absl import app
from absl import flags

from export import convert
from export import exporter
from export import qat
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)

_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "Checkpoint prefix, checkpoint directory or run workdir.",
                                  required=True)
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_QUANT = flags.DEFINE_list("quant", ["float32"],
                           f"Quantization modes, any of {convert.QUANT_MODES}.")
_DATA = flags.DEFINE_string("data", None, "Data set directory (default: the run's).")
_SPLIT = flags.DEFINE_string("split", "val", "Split to evaluate the exported models on.")
_MAX_EVAL_FRAMES = flags.DEFINE_integer("max_eval_frames", 0,
                                        "Evaluate on at most this many frames (0: all).")
_CALIBRATION_FRAMES = flags.DEFINE_integer("calibration_frames", 100,
                                           "Training frames that calibrate int8 PTQ.")
_MAX_FLOAT32_BYTES = flags.DEFINE_integer("max_float32_bytes", exporter.FLOAT32_BUDGET_BYTES,
                                          "Size budget of the float32 model in bytes.")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", qat.QatConfig.steps,
                                  "Quantization-aware fine-tuning steps.")
_QAT_BATCH_SIZE = flags.DEFINE_integer("qat_batch_size", qat.QatConfig.batch_size,
                                       "Quantization-aware fine-tuning batch size.")
_QAT_LEARNING_RATE = flags.DEFINE_float("qat_learning_rate", qat.QatConfig.learning_rate,
                                        "Initial QAT learning rate (linear decay to 0).")


def main(argv):
  del argv
  cfg = exporter.ExportConfig(
      checkpoint=_CHECKPOINT.value, out_dir=_OUT.value, quant=tuple(_QUANT.value),
      data_dir=_DATA.value, eval_split=_SPLIT.value, max_eval_frames=_MAX_EVAL_FRAMES.value,
      calibration_frames=_CALIBRATION_FRAMES.value, max_float32_bytes=_MAX_FLOAT32_BYTES.value,
      qat=qat.QatConfig(steps=_QAT_STEPS.value, batch_size=_QAT_BATCH_SIZE.value,
                        learning_rate=_QAT_LEARNING_RATE.value))
  try:
    report = exporter.export(cfg)
  except exporter.ExportError as e:
    sys.exit(f"export failed: {e}")
  print(exporter.summary(report))
  print(f"\nwrote {_OUT.value}/{exporter.REPORT_FILE}")


if __name__ == "__main__":
  app.run(main)
