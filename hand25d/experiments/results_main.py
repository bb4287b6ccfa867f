r"""Writes docs/results.md from the run summaries in docs/results/.

  python -m hand25d.experiments.results_main

Works on whatever summaries exist: rows not run yet are marked "not run".
Renders docs/results/fig2.png from the checkpoints of the all-supervision
amplitude and depth rows when they are on this machine.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.experiments import results

_RESULTS_DIR = flags.DEFINE_string("results_dir", "docs/results", "The run summaries.")
_OUT = flags.DEFINE_string("out", "docs/results.md", "The document to write.")
_FIGURE = flags.DEFINE_bool("figure", True, "Render fig2.png from the checkpoints (else keep "
                            "the one there).")


def main(argv):
  del argv
  try:
    results.write_document(_RESULTS_DIR.value, _OUT.value, render_figure=_FIGURE.value)
  except ValueError as e:  # Names the directory or the summary file.
    sys.exit(f"results refused: {e}")
  print(f"wrote {_OUT.value}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
