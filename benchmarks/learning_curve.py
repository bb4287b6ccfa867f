r"""A training run's learning curve from its TensorBoard logs: PNG and JSON (not a test).

  .venv/bin/python benchmarks/learning_curve.py --run=runs/pretrained/train \
      --out=docs/quick_curve.png [--json=benchmarks/results/quick_curve.json]

Plots the validation mean 2D error (the paper's metric, px) and the training
loss terms against the step, from WORKDIR/eval and WORKDIR/train (written by
hand25d.training.loop), and prints the validation error at every evaluation.
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.training import summaries

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

_RUN = flags.DEFINE_string("run", None, "Training run directory.", required=True)
_OUT = flags.DEFINE_string("out", None, "PNG to write.", required=True)
_JSON = flags.DEFINE_string("json", None, "Also write the curves as JSON here.")
_TITLE = flags.DEFINE_string("title", None, "Figure title (default: the run directory).")


def main(argv):
  del argv
  evals = summaries.scalars(os.path.join(_RUN.value, summaries.EVAL_DIR))
  train = summaries.scalars(os.path.join(_RUN.value, summaries.TRAIN_DIR))
  if "mean_px_error" not in evals:
    raise app.UsageError(f"--run={_RUN.value}: no validation error in its eval/ TensorBoard "
                         "logs (not a training run's directory, or no evaluation yet)")
  error = evals["mean_px_error"]
  # 960 x 400 at 100 dpi, so that the smallest text (the legend's 8 points) is 11 px.
  fig, (ax_err, ax_loss) = plt.subplots(1, 2, figsize=(9.6, 4.0))
  ax_err.plot(*zip(*error), marker="o")
  ax_err.set_xlabel("step")
  ax_err.set_ylabel("validation mean 2D error (px, 120x160)")
  ax_err.set_ylim(bottom=0)
  ax_err.grid(alpha=0.3)
  for tag in sorted(t for t in train if t.startswith("loss/") and t != "loss/total"):
    ax_loss.plot(*zip(*train[tag]), label=tag[5:], lw=0.8)
  ax_loss.set_yscale("log")
  ax_loss.set_xlabel("step")
  ax_loss.set_ylabel("training loss term (unweighted)")
  ax_loss.legend(fontsize=8, ncol=2)
  ax_loss.grid(alpha=0.3)
  fig.suptitle(_TITLE.value or _RUN.value, fontsize=10)
  fig.tight_layout()
  with atomic.replacing(_OUT.value) as tmp:
    fig.savefig(tmp, format="png", dpi=100)
  for step, value in error:
    print(f"step {step:6d}  validation mean error {value:6.2f} px")
  if _JSON.value:
    atomic.write_json(_JSON.value, {"run": _RUN.value, "eval": evals, "train": train})
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
