r"""The paper's central claim at a recipe's budget: do the auxiliary tasks help? (not a test)

  .venv/bin/python benchmarks/aux_claim.py --recipe=quick --data=runs/pretrained/data \
      --workdir=runs/aux_claim [--seeds=0,1] [--parallel=2] \
      [--out=benchmarks/results/aux_claim_quick.json]

Trains, with the same recipe and data, the full model ("all_heads": every
term of Eq. 1) and the model with only Lkp + Lakp ("keypoints_only": Table
1's first amplitude row, fingertip weighting off too) for every seed, then
evaluates each best checkpoint on the test users. The claim holds if the
full model's mean error over the seeds is at least 5% below the other's (the
paper: 6.054 -> 5.556 px, 8.2%). Prints both, the spread (min-max) over
seeds, and writes JSON.

Every run is `python -m hand25d.train_main --recipe=...` in its own work
directory, so an interrupted set resumes where it stopped: rerun the same
command. `--parallel=2` runs two at a time, one thread each (on 2 cores
that trains about 15% more examples per second than one run on both).
A finished run of the same recipe, seed and data (such as the shipped
model's, runs/pretrained/train) can stand in for its (variant, seed) by a
symbolic link at WORKDIR/all_heads_seed0.
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags

from hand25d import atomic

_RECIPE = flags.DEFINE_string("recipe", "quick", "Recipe name or JSON file.")
_DATA = flags.DEFINE_string("data", None, "The recipe's data set.", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the runs go.", required=True)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Training seeds.")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at a time (1 or 2).")
_OUT = flags.DEFINE_string("out", None, "JSON output (default: WORKDIR/aux_claim.json).")

VARIANTS = {
    "all_heads": [],
    "keypoints_only": ["--w_kphv=0", "--w_cho=0", "--w_dhp=0", "--w_seg=0", "--w_ds=0",
                       "--nofingertip_double"],
}
CLAIM_MARGIN = 0.05


def _commands(variant: str, seed: int) -> tuple[str, list[list[str]]]:
  run = os.path.join(_WORKDIR.value, f"{variant}_seed{seed}")
  train = [sys.executable, "-m", "hand25d.train_main", f"--recipe={_RECIPE.value}",
           f"--data={_DATA.value}", f"--workdir={run}", f"--seed={seed}",
           "--log_every=500"] + VARIANTS[variant]
  test = [sys.executable, "-m", "hand25d.eval_main", f"--data={_DATA.value}",
          f"--checkpoint={run}", f"--out={os.path.join(run, 'test')}", "--split=test"]
  return run, [train, test]


def _run_all(jobs: list[list[list[str]]], parallel: int) -> None:
  """Runs each job's commands in order, `parallel` jobs at a time; raises on failure."""
  env = dict(os.environ)
  if parallel > 1:
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
  pending = list(jobs)
  running: list[tuple[subprocess.Popen, list[list[str]]]] = []
  while pending or running:
    while pending and len(running) < parallel:
      commands = pending.pop(0)
      running.append((subprocess.Popen(commands[0], env=env), commands[1:]))
    proc, rest = running.pop(0)
    if proc.wait() != 0:
      raise SystemExit(f"failed ({proc.returncode}): {' '.join(proc.args)}")
    if rest:
      running.append((subprocess.Popen(rest[0], env=env), rest[1:]))


def main(argv):
  del argv
  seeds = [int(s) for s in _SEEDS.value]
  jobs, runs = [], {}
  for seed in seeds:
    for variant in VARIANTS:
      run, commands = _commands(variant, seed)
      runs[(variant, seed)] = run
      if not os.path.exists(os.path.join(run, "test", "metrics.json")):
        jobs.append(commands)
  _run_all(jobs, max(1, _PARALLEL.value))
  report = {"recipe": _RECIPE.value, "data": os.path.abspath(_DATA.value), "seeds": seeds,
            "runs": {}, "variants": {}}
  for (variant, seed), run in runs.items():
    with open(os.path.join(run, "test", "metrics.json")) as f:
      m = json.load(f)
    report["runs"][f"{variant}_seed{seed}"] = {
        k: m.get(k) for k in ("mean_px_error", "median_px_error", "pck", "checkpoint")}
  for variant in VARIANTS:
    errors = [report["runs"][f"{variant}_seed{s}"]["mean_px_error"] for s in seeds]
    report["variants"][variant] = {"mean_px_error": sum(errors) / len(errors),
                                   "min": min(errors), "max": max(errors)}
  full = report["variants"]["all_heads"]["mean_px_error"]
  base = report["variants"]["keypoints_only"]["mean_px_error"]
  report["relative_change"] = (full - base) / base
  report["claim_holds"] = full <= (1.0 - CLAIM_MARGIN) * base
  for variant, v in report["variants"].items():
    print(f"{variant:15s} {v['mean_px_error']:6.2f} px (min {v['min']:.2f}, max {v['max']:.2f}) "
          f"over seeds {seeds}")
  print(f"all heads vs keypoints only: {100 * report['relative_change']:+.1f}%; the claim "
        f"(at least {100 * CLAIM_MARGIN:.0f}% lower) {'holds' if report['claim_holds'] else 'does not hold'}")
  out = _OUT.value or os.path.join(_WORKDIR.value, "aux_claim.json")
  atomic.write_json(out, report)
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
