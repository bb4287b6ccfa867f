r"""Runs the rows of the paper's Tables 1 and 2 on the benchmark; resumable row by row.

  python -m hand25d.experiments.reproduce_main --data=runs/benchmark_data
  python -m hand25d.experiments.reproduce_main --data=runs/benchmark_data --dry_run
  python -m hand25d.experiments.reproduce_main --data=runs/benchmark_data --epochs=8 \
      --warmup_steps=100 --max_steps_densenet121=700

Each (row, seed) trains into --workdir/<row>/seed<k>/ and writes
--results_dir/<row>_seed<k>.json; rerunning the same command skips the rows
done and resumes a half-trained one from its checkpoint. Then write the
document with `python -m hand25d.experiments.results_main`. The budget flags
(epochs, batch size, learning rate, warm-up) apply to every row; only
--max_steps_densenet121 shortens one row, where DenseNet-121 cannot reach the
budget on the machine.
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import sys

from absl import app
from absl import flags

from hand25d import config_flags
from hand25d import legacy_keras  # noqa: F401  (entry point: tf.keras is tf_keras)
from hand25d.data import records
from hand25d.experiments import plan
from hand25d.experiments import runner
from hand25d.experiments import timing
from hand25d.training import config as config_lib

_DEFAULT = plan.Budget()

_DATA = flags.DEFINE_string("data", plan.BENCHMARK_DIR, "The benchmark data set.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Run directories go here.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "docs/results", "Summary JSON goes here.")
_ROWS = flags.DEFINE_list("rows", list(plan.DEFAULT_ROWS),
                          f"Rows to run, from: {', '.join(plan.ROWS_BY_NAME)}.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds for every row (default: the budget's, "
                           f"{list(_DEFAULT.key_seeds)} for key rows, {list(_DEFAULT.seeds)} "
                           "for the others).")
_BUDGET = {name: config_flags.define(_DEFAULT, name, help_text)
           for name, help_text in plan.BUDGET_FLAGS.items()}
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the runs and their expected wall time "
                             "(from the timing run's timing.json) without running.")


def main(argv):
  del argv
  seeds = tuple(int(s) for s in _SEEDS.value) if _SEEDS.value else None
  try:
    budget = plan.Budget(**{name: flag.value for name, flag in _BUDGET.items()},
                         seeds=seeds or _DEFAULT.seeds, key_seeds=seeds or _DEFAULT.key_seeds)
    rows = plan.rows_named(_ROWS.value)
    if _DRY_RUN.value:
      print("\n".join(timing.dry_run(timing.load(_RESULTS_DIR.value), budget, _DATA.value,
                                     rows)))
      return
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    done = runner.run(rows, budget, _DATA.value, _WORKDIR.value, _RESULTS_DIR.value)
  except (records.RecordError, config_lib.RunConfigError, plan.BudgetError,
          runner.OtherRunError) as e:  # Each names its file or directory.
    sys.exit(f"reproduction refused: {e}")
  print(f"{len(done)} of {len(plan.schedule(rows, budget))} runs have a summary in "
        f"{_RESULTS_DIR.value}; write the document with "
        "`python -m hand25d.experiments.results_main`.")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
