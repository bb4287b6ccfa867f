r"""Measures the cost of table rows on this machine and writes timing.json.

  python -m hand25d.experiments.timing_main --data=runs/benchmark_data

A few dozen real training steps and a few validation batches per row; the
record gives the expected wall time of each run in docs/results.md and in
`reproduce_main --dry_run`. Measure when the machine is as busy as it will be
during the full run.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import datetime
import os
import sys

from absl import app
from absl import flags

from hand25d import atomic
from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.experiments import plan
from hand25d.experiments import runner
from hand25d.experiments import timing

_DATA = flags.DEFINE_string("data", plan.BENCHMARK_DIR, "The benchmark data set.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "docs/results", "timing.json goes here.")
_ROWS = flags.DEFINE_list("rows", [plan.OURS, "amplitude_no_aux", "mobilenet_v2", "densenet121"],
                          "Rows to time; the others use the timing of a row with their backbone.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed training steps per row.")
_BATCH_SIZE = config_flags.define(plan.Budget(), "batch_size", "Batch size.")


def main(argv):
  del argv
  budget = plan.Budget(batch_size=_BATCH_SIZE.value)
  try:
    data = runner.describe_data(_DATA.value)
    timed = plan.rows_named(_ROWS.value)
  except ValueError as e:  # The data set (records.RecordError) or an unknown row.
    sys.exit(f"timing refused: {e}")
  rows = {}
  for row in timed:
    rows[row.name] = m = timing.measure(row, budget, _DATA.value, steps=_STEPS.value)
    print(f"{row.name}: {m['train_examples_per_s']:.1f} train examples/s, "
          f"{m['eval_examples_per_s']:.1f} eval examples/s, build {m['build_seconds']:.1f} s, "
          f"trace {m['train_trace_seconds']:.1f} s, load {m['load_average'][0]:.1f}", flush=True)
  record = {"measured": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": runner.machine(), "batch_size": budget.batch_size, "steps": _STEPS.value,
            "data": data, "rows": rows}
  path = os.path.join(_RESULTS_DIR.value, timing.TIMING_JSON)
  atomic.write_json(path, record)
  print(f"wrote {path}")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
