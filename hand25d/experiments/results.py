"""docs/results.md from the runs' summary JSON: our tables beside the paper's, targets, reading.

Every number of ours in the document comes from a summary written by
`runner.run` (`<row>_seed<k>.json`), from the timing run (`timing.json`) or
from the figure's record (`fig2.json`); rows without a summary are shown as
"not run" and targets that need them as "not evaluated". The paper's numbers
come from hand25d/paper.py (through `plan.ROWS`) and are always labelled as the
paper's.
"""

import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

from hand25d import atomic
from hand25d import paper
from hand25d.data import generate
from hand25d.data import records
from hand25d.experiments import figure
from hand25d.experiments import plan
from hand25d.experiments import runner
from hand25d.experiments import timing

FIGURE_PNG = "fig2.png"
FIGURE_JSON = "fig2.json"
# The figure's amplitude and depth rows: all supervision on each input.
FIGURE_ROWS = (plan.OURS, "depth_all")
REPRODUCE_COMMAND = "python -m hand25d.experiments.reproduce_main --data=" + plan.BENCHMARK_DIR
RESULTS_COMMAND = "python -m hand25d.experiments.results_main"
NOT_RUN = "not run"
# Targets of the reproduction (docs/results.md).
MIN_AUX_GAIN = 0.05  # All supervision at least 5% below no auxiliary losses.
MAX_ERROR_RATIO_TO_MOBILENET = 1.10
MAX_FLOPS_RATIO_TO_MOBILENET = 0.03
# The auxiliary terms of Eq. 1 whose weights the reading quotes.
_AUX_WEIGHTS = ("kphv", "cho", "dhp", "seg")


@dataclasses.dataclass(frozen=True)
class RowResult:
  """The finished runs (one per seed) of one row."""
  row: plan.Row
  summaries: tuple[dict, ...]  # Sorted by seed.

  @property
  def seeds(self) -> list[int]:
    return [s["seed"] for s in self.summaries]

  @property
  def errors(self) -> list[float]:
    """Test mean px error of each seed (seeds without visible test keypoints left out)."""
    return [s["test"]["mean_px_error"] for s in self.summaries
            if s["test"]["mean_px_error"] is not None]

  @property
  def mean(self) -> Optional[float]:
    return float(np.mean(self.errors)) if self.errors else None

  @property
  def spread(self) -> Optional[float]:
    """max - min over seeds; None with fewer than two seeds."""
    return max(self.errors) - min(self.errors) if len(self.errors) > 1 else None


def load(results_dir: str) -> dict[str, RowResult]:
  """The summaries in `results_dir`, by row name (rows without any are absent).

  Raises:
    ValueError: a summary names an unknown row, another seed than its file
      name, or was made with another definition of its row than plan.ROWS.
  """
  found: dict[str, list[dict]] = {}
  names = sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []
  for name in names:
    match = runner.SUMMARY_PATTERN.match(name)
    if not match:
      continue
    path = os.path.join(results_dir, name)
    row = plan.ROWS_BY_NAME.get(match["row"])
    if row is None:
      raise ValueError(f"{path}: no row named {match['row']!r} in plan.ROWS")
    with open(path) as f:
      summary = json.load(f)
    if summary["seed"] != int(match["seed"]):
      raise ValueError(f"{path} holds seed {summary['seed']}, its name says {match['seed']}")
    if summary["row"] != json.loads(json.dumps(row.to_dict())):
      raise ValueError(f"{path} was made with another definition of row {row.name!r} "
                       f"({summary['row']}); rerun the row or delete the file")
    found.setdefault(row.name, []).append(summary)
  return {name: RowResult(plan.ROWS_BY_NAME[name], tuple(sorted(s, key=lambda x: x["seed"])))
          for name, s in found.items()}


def _num(value: Optional[float]) -> str:
  """A pixel error or a fraction, 3 decimals; n/a where nothing was measured."""
  return "n/a" if value is None else f"{value:.3f}"


def _ours_cells(result: Optional[RowResult]) -> list[str]:
  """[mean, min-max, seeds] cells of a row."""
  if result is None or not result.summaries:
    return [NOT_RUN, "", ""]
  errors = result.errors
  span = f"{min(errors):.3f}–{max(errors):.3f}" if len(errors) > 1 else ""
  return [_num(result.mean), span, ", ".join(str(s) for s in result.seeds)]


def _exponent(value: float) -> str:
  """1e-3 as "1e-3" (one significant digit, no padded exponent)."""
  mantissa, exponent = f"{value:.0e}".split("e")
  return f"{mantissa}e{int(exponent)}"


def _plural(count: int, word: str) -> str:
  return f"{count} {word}" + ("" if count == 1 else "s")


def _ranks(values: dict[str, float]) -> dict[str, int]:
  order = sorted(values, key=lambda name: values[name])
  return {name: i + 1 for i, name in enumerate(order)}


def table1(results: dict[str, RowResult]) -> list[str]:
  rows = [r for r in plan.ROWS if r.table == 1]
  ran = {r.name: results[r.name].mean for r in rows
         if r.name in results and results[r.name].mean is not None}
  ours_rank = _ranks(ran)
  paper_rank = _ranks({name: plan.ROWS_BY_NAME[name].paper_px for name in ran})
  columns = [c for c, _ in plan.TABLE1_COLUMNS]
  lines = ["| Row | Input | " + " | ".join(columns) + " | Paper (px) | Ours (px) | Ours min–max "
           "| Seeds | Rank paper | Rank ours |",
           "| --- | --- | " + " | ".join(":-:" for _ in columns) + " | ---: | ---: | ---: | --- "
           "| ---: | ---: |"]
  for row in rows:
    marks = ["✓" if on else "×" for on in row.supervision().values()]
    lines.append(f"| `{row.name}` | {row.input_mode} | " + " | ".join(marks)
                 + f" | {row.paper_px:.3f} | " + " | ".join(_ours_cells(results.get(row.name)))
                 + f" | {paper_rank.get(row.name, '')} | {ours_rank.get(row.name, '')} |")
  return lines


def table2(results: dict[str, RowResult]) -> list[str]:
  lines = ["| Backbone | Params | GFLOPs | Params (paper) | GFLOPs (paper) | Paper (px) "
           "| Ours (px) | Ours min–max | Seeds |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
  for name in (plan.OURS, "mobilenet_v2", "densenet121"):
    row = plan.ROWS_BY_NAME[name]
    reported = paper.TABLE2[row.backbone]
    result = results.get(name)
    if result is None:
      size = [NOT_RUN, NOT_RUN]
    else:
      model = result.summaries[0]["model"]
      size = [f"{model['params'] / 1e6:.3f}M", f"{model['flops'] / 1e9:.4f}"]
    lines.append(f"| {paper.BACKBONE_NAMES[row.backbone]} (`{name}`) | " + " | ".join(size)
                 + f" | {reported['params'] / 1e6:.3f}M | {reported['gflops']:.3f} "
                 + f"| {row.paper_px:.3f} | " + " | ".join(_ours_cells(result)) + " |")
  return lines


def _missing(results: dict[str, RowResult], names: Sequence[str]) -> list[str]:
  return [n for n in names if n not in results or results[n].mean is None]


def targets(results: dict[str, RowResult]) -> list[str]:
  """One bullet per reproduction target: met / not met with the numbers, or not evaluated."""
  lines = []

  def not_evaluated(what: str, names: Sequence[str]) -> str:
    return f"- **{what}: not evaluated** (needs rows {', '.join(f'`{n}`' for n in names)})."

  base_px, ours_px = paper.TABLE1_PX["amplitude_no_aux"], paper.TABLE1_PX[plan.OURS]
  what = ("All supervision at least 5% below no auxiliary losses (paper: "
          f"{base_px:.3f} → {ours_px:.3f}, {100 * (1 - ours_px / base_px):.1f}%)")
  if missing := _missing(results, (plan.OURS, "amplitude_no_aux")):
    lines.append(not_evaluated(what, missing))
  else:
    ours, base = results[plan.OURS].mean, results["amplitude_no_aux"].mean
    gain = 1.0 - ours / base
    lines.append(f"- **{what}: {'met' if gain >= MIN_AUX_GAIN else 'not met'}**: "
                 f"{base:.3f} → {ours:.3f} px, {100 * gain:.1f}% lower.")

  pairs = ((plan.OURS, "depth_all"), ("amplitude_no_aux", "depth_no_aux"))
  what = ("Amplitude input no worse than depth input (paper: "
          + "; ".join(f"{paper.TABLE1_PX[a]:.3f} vs {paper.TABLE1_PX[d]:.3f}" for a, d in pairs)
          + ")")
  done = [(a, d) for a, d in pairs if not _missing(results, (a, d))]
  if not done:
    lines.append(not_evaluated(what, _missing(results, [n for p in pairs for n in p])))
  else:
    met = all(results[a].mean <= results[d].mean for a, d in done)
    detail = "; ".join(f"`{a}` {results[a].mean:.3f} vs `{d}` {results[d].mean:.3f} px"
                       for a, d in done)
    partial = "" if len(done) == len(pairs) else " (only the pairs that ran)"
    lines.append(f"- **{what}: {'met' if met else 'not met'}**{partial}: {detail}.")

  ours_px, mobile_px = paper.TABLE2_PX["ours"], paper.TABLE2_PX["mobilenet_v2"]
  flops_share = paper.TABLE2["ours"]["gflops"] / paper.TABLE2["mobilenet_v2"]["gflops"]
  what = ("Ours within 10% of MobileNetV2's error at no more than 3% of its FLOPs "
          f"(paper: {ours_px:.3f} vs {mobile_px:.3f} px, {100 * (ours_px / mobile_px - 1):+.1f}%, "
          f"at {100 * flops_share:.1f}% of the FLOPs)")
  if missing := _missing(results, (plan.OURS, "mobilenet_v2")):
    lines.append(not_evaluated(what, missing))
  else:
    ours, mobile = results[plan.OURS], results["mobilenet_v2"]
    ratio = ours.mean / mobile.mean
    flops_ratio = ours.summaries[0]["model"]["flops"] / mobile.summaries[0]["model"]["flops"]
    error_ok = ratio <= MAX_ERROR_RATIO_TO_MOBILENET
    flops_ok = flops_ratio <= MAX_FLOPS_RATIO_TO_MOBILENET
    lines.append(
        f"- **{what}: {'met' if error_ok and flops_ok else 'not met'}**: error "
        f"{ours.mean:.3f} vs {mobile.mean:.3f} px ({100 * (ratio - 1):+.1f}%, "
        f"{'within' if error_ok else 'outside'} 10%); FLOPs "
        f"{ours.summaries[0]['model']['flops'] / 1e6:.1f}M vs "
        f"{mobile.summaries[0]['model']['flops'] / 1e6:.1f}M ({100 * flops_ratio:.1f}%, "
        f"{'within' if flops_ok else 'above'} 3%).")
  return lines


def _compare(results: dict[str, RowResult], name: str, reference: str) -> str:
  """How row `name` compares with `reference`, ours beside the paper's, with the seed spread."""
  a, b = results[name], results[reference]
  ours = a.mean - b.mean
  paper = a.row.paper_px - b.row.paper_px
  spreads = [s for s in (a.spread, b.spread) if s is not None]
  same = (ours > 0) == (paper > 0)
  text = (f"`{name}` − `{reference}`: {ours:+.3f} px here, {paper:+.3f} px in the paper "
          f"({'same' if same else 'opposite'} sign)")
  if spreads and abs(ours) <= max(spreads):
    text += f"; within the seed-to-seed range ({max(spreads):.3f} px), so not resolved here"
  elif not spreads:
    text += "; one seed only, so the seed-to-seed spread is unknown"
  return text + "."


def reading(results: dict[str, RowResult]) -> list[str]:
  """Where our ordering agrees with the paper's and where not (facts from the runs)."""
  ran = [r.name for r in plan.ROWS if r.table == 1 and r.name in results
         and results[r.name].mean is not None]
  if len(ran) < 2:
    return ["Fewer than two Table-1 rows have run: no ordering to compare yet."]
  pairs = [(a, b) for i, a in enumerate(ran) for b in ran[i + 1:]]
  agree = sum((results[a].mean - results[b].mean) * (plan.ROWS_BY_NAME[a].paper_px
                                                     - plan.ROWS_BY_NAME[b].paper_px) > 0
              for a, b in pairs)
  best = min(ran, key=lambda name: results[name].mean)
  ratio = results[best].mean / plan.ROWS_BY_NAME[best].paper_px
  lines = [f"- Level: the best Table-1 row here, `{best}`, has {results[best].mean:.3f} px, "
           f"{ratio:.1f}x the paper's {plan.ROWS_BY_NAME[best].paper_px:.3f} px."
           + (" At this level the networks are far less trained than the paper's, and "
              "differences between rows mostly reflect how fast each learns early on."
              if ratio > 2 else ""),
           f"- Of the {_plural(len(pairs), 'pair')} of Table-1 rows that ran, {agree} "
           f"{'is' if agree == 1 else 'are'} in the paper's order and {len(pairs) - agree} "
           f"{'is' if len(pairs) - agree == 1 else 'are'} not."]
  if plan.OURS in ran:  # Each supervision removed, on amplitude input.
    for name in ran:
      if name != plan.OURS and plan.ROWS_BY_NAME[name].input_mode == "amplitude":
        lines.append("- Supervision: " + _compare(results, name, plan.OURS))
  for amplitude, depth in ((plan.OURS, "depth_all"), ("amplitude_no_aux", "depth_no_aux")):
    if amplitude in ran and depth in ran:
      lines.append("- Input: " + _compare(results, depth, amplitude))
  for name, reference in ((plan.OURS, "mobilenet_v2"), ("mobilenet_v2", "densenet121")):
    if not _missing(results, (name, reference)):
      lines.append("- Backbone: " + _compare(results, name, reference))
  return lines


def explanations(results: dict[str, RowResult]) -> list[str]:
  """What may explain orderings that differ from the paper's (with the runs' own figures)."""
  first = next(iter(results.values())).summaries[0]
  steps = first["training"]["total_steps"]
  examples = steps * first["train_config"]["batch_size"]
  train_frames = first["data"]["splits"]["train"]["num_frames"]
  keypoints = sorted({s["test"]["num_keypoints"] for r in results.values() for s in r.summaries})
  counts = (f"{keypoints[0]:,}" if len(keypoints) == 1
            else f"{keypoints[0]:,}–{keypoints[-1]:,}")
  return [
      f"- **Budget.** Each row trains {steps} steps ({examples:,} examples over "
      f"{train_frames:,} training frames), against the paper's {paper.EPOCHS} epochs over "
      f"{paper.NUM_FRAMES:,} frames. Auxiliary tasks that regularise a long training may "
      "cost capacity or slow the primary task down in a short one: with the weights of "
      "Eq. 1 (" + ", ".join(f"{t} {paper.EQ1_WEIGHTS[t]:g}" for t in _AUX_WEIGHTS)
      + ") the auxiliary terms are most of the total loss in the "
      "first few hundred steps (the training logs, `loss/*` in TensorBoard), so the "
      "shared encoder serves them first.",
      "- **Data.** The benchmark is synthetic: labels are exact, poses are jittered templates "
      "of the 9 classes, and hand roll is uniform over 360° (docs/data.md), so the skew "
      "against palm-facing data that the paper's orientation loss corrects is absent. "
      "Distractors are simple primitives. An auxiliary task may help less (or more) here.",
      "- **Depth vs amplitude.** Our depth is the simulated sensor's filtered depth (invalid "
      "and flying pixels set to 0) and our amplitude the simulated return; how much "
      "either helps depends on the simulator's noise model, not the paper's camera.",
      f"- **Noise.** The test split has {counts} visible primary keypoints per run; "
      "differences smaller than the seed-to-seed range above are not "
      "resolved, and rows with one seed have no measured spread.",
  ]


def _runs_table(results: dict[str, RowResult]) -> list[str]:
  lines = ["| Row | Seed | Steps | Best val (px) | Test (px) | PCK@4px | Pose acc | Orient. acc "
           "| Seg mIoU | Train + test (min) | Resumed | Load avg at end |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
  for row in plan.ROWS:
    for s in results[row.name].summaries if row.name in results else ():
      test, wall = s["test"], s["wall_seconds"]
      lines.append(
          f"| `{row.name}` | {s['seed']} | {s['training']['step']} "
          f"| {_num(s['training']['best_mean_px_error'])} | {_num(test['mean_px_error'])} "
          f"| {_num(test['pck'].get('4px'))} | {_num(test.get('pose_accuracy'))} "
          f"| {_num(test.get('orientation_accuracy'))} "
          f"| {_num(test.get('segmentation_miou'))} "
          f"| {wall['train'] / 60:.1f} + {wall['test'] / 60:.1f} "
          f"| {'yes' if s['resumed'] else 'no'} | {s['machine']['load_average'][0]:.1f} |")
  return lines


def _distinct(results: dict[str, RowResult], key) -> set:
  return {json.dumps(key(s), sort_keys=True) for r in results.values() for s in r.summaries}


def runs_budget(results: dict[str, RowResult]) -> plan.Budget:
  """The budget the runs used (their epochs, batch, rate, validation limit), else the default."""
  if not results:
    return plan.Budget()
  cfg = next(iter(results.values())).summaries[0]["train_config"]
  return dataclasses.replace(plan.Budget(), epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                             learning_rate=cfg["learning_rate"],
                             max_eval_batches=cfg["max_eval_batches"])


def reproduce_command(budget: plan.Budget) -> str:
  """REPRODUCE_COMMAND with the flags that give `budget` where it is not the default."""
  default = plan.Budget()
  flags = [f"--{name}={getattr(budget, name)}" for name in ("epochs", "batch_size",
                                                            "max_eval_batches")
           if getattr(budget, name) != getattr(default, name)]
  return " ".join([REPRODUCE_COMMAND] + flags)


def benchmark_and_budget(results: dict[str, RowResult], timings: Optional[dict]) -> list[str]:
  budget = runs_budget(results)
  jobs = plan.schedule(plan.rows_named(plan.DEFAULT_ROWS), budget)
  planned = {split: 0 for split in records.SPLITS}
  for shard in generate.plan(plan.BENCHMARK):
    planned[shard.split] += shard.stop - shard.start
  users = dict(zip(records.SPLITS, plan.BENCHMARK.users_per_split))
  lines = ["## Benchmark", "",
           f"One synthetic data set split by user, like the paper's {paper.NUM_USERS} users "
           f"split {'/'.join(str(n) for n in paper.USERS_PER_SPLIT)}: "
           "train, validation and test users are disjoint, so the test split measures unseen "
           f"hands. {plan.BENCHMARK.num_frames:,} frames (seed {plan.BENCHMARK.seed}): "
           + ", ".join(f"{split} {planned[split]:,} frames of {users[split]} users"
                       for split in records.SPLITS) + ". Generated by:", "",
           "```sh", plan.generation_command(), "```", "", "The data set of the runs:", ""]
  if results:
    data = next(iter(results.values())).summaries[0]["data"]
    for split in records.SPLITS:
      info = data["splits"][split]
      users = info["users"]
      lines.append(f"- {split}: {info['num_frames']:,} frames of {len(users)} users "
                   f"(ids {min(users)}–{max(users)})")
    lines.append(f"- generator config {json.dumps(data['config'], sort_keys=True)}, "
                 f"fingerprint `{data['fingerprint']}`")
    if len(_distinct(results, lambda s: s["data"]["fingerprint"])) > 1:
      lines.append("- **Warning: the runs used different data sets; their rows are not "
                   "comparable.** See the fingerprints in the summaries.")
  else:
    lines.append("No run yet.")
  steps = planned["train"] // budget.batch_size * budget.epochs
  default = plan.Budget()
  lines += ["", "## Budget", "",
            f"Every row: {_plural(budget.epochs, 'epoch')} over the {planned['train']:,} "
            "training frames at "
            f"batch {budget.batch_size} ({steps:,} steps, {steps * budget.batch_size:,} "
            f"examples; the paper: {paper.EPOCHS} epochs over the training users of its "
            f"{paper.NUM_FRAMES:,} frames), "
            f"Adam at {budget.learning_rate:g} with linear decay to 0 (the paper: "
            f"{_exponent(paper.LEARNING_RATE)}, "
            "tuned for its ~140K steps; a few hundred steps learn much faster at 1e-2, "
            "docs/training.md), validation every "
            + ("epoch" if budget.eval_every_epochs == 1
               else _plural(budget.eval_every_epochs, "epoch"))
            + " for the best checkpoint, which is then evaluated on the test split"
            + ("" if budget == default else
               f" (the library's default budget: {default.epochs} epochs at batch "
               f"{default.batch_size})")
            + f". By default seeds {list(budget.key_seeds)} for the rows the "
            f"targets compare ({', '.join(f'`{r.name}`' for r in plan.ROWS if r.key)}), "
            f"{list(budget.seeds)} for the others (each run's seed is in the tables). "
            "DenseNet-121 is not in the default set "
            "(it trains much slower than ours, see below); run it with "
            "`--rows=densenet121` where the time allows. The full set:", "",
            "```sh", reproduce_command(budget), RESULTS_COMMAND, "```", ""]
  if results and len(_distinct(results, lambda s: [s["train_config"]["epochs"],
                                                   s["train_config"]["batch_size"],
                                                   s["train_config"]["learning_rate"]])) > 1:
    lines += ["**Warning: the runs used different budgets; their rows are not comparable.**",
              ""]
  optional = plan.schedule([r for r in plan.ROWS if r.name not in plan.DEFAULT_ROWS], budget)
  lines += _wall_time(results, timings, budget, jobs, optional)
  return lines


def _wall_time(results: dict[str, RowResult], timings: Optional[dict], budget: plan.Budget,
               jobs: list[tuple[plan.Row, int]],
               optional: list[tuple[plan.Row, int]]) -> list[str]:
  """Expected (timing run) and actual wall time of the default set, then the optional rows."""
  estimates = timing.estimate_set(timings, budget, timings["data"]["splits"] if timings else {},
                                  jobs + optional)
  usable = any(not math.isnan(seconds) for _, _, seconds, _ in estimates)
  if usable:
    load_avg = timings["machine"]["load_average"]
    lines = [f"Wall time per run: expected from the timing run of {timings['measured']} "
             f"(`{timing.TIMING_JSON}`: {timings['steps']} timed steps per row, load average "
             f"{load_avg[0]:.1f} on {timings['machine']['cpu_count']} cores), and as run.",
             "", "| Row | Seed | Expected (min) | Timing of | As run (min) |",
             "| --- | ---: | ---: | --- | ---: |"]
  else:
    lines = [f"Wall time per run as run (no `{timing.TIMING_JSON}` at batch "
             f"{budget.batch_size} for an estimate).", "",
             "| Row | Seed | As run (min) |", "| --- | ---: | ---: |"]
  total_expected = total_run = 0.0
  rows = []
  for k, (row, seed, seconds, source) in enumerate(estimates):
    done = [s for s in results.get(row.name, RowResult(row, ())).summaries if s["seed"] == seed]
    actual = sum(done[0]["wall_seconds"].values()) if done else None
    name = f"`{row.name}`" + (" (optional)" if k >= len(jobs) else "")
    if k < len(jobs):
      total_expected += seconds
      total_run += actual or 0.0
    run_cell = NOT_RUN if actual is None else f"{actual / 60:.1f}"
    expected = f" {seconds / 60:.1f} | `{source}` |" if usable else ""
    rows.append(f"| {name} | {seed} |{expected} {run_cell} |")
    if k == len(jobs) - 1:
      expected = f" **{total_expected / 60:.0f}** | |" if usable else ""
      rows.append(f"| **default set, total** | |{expected} **{total_run / 60:.0f}** |")
  return lines + rows + [""]


def figure_section(info: Optional[dict], figure_link: str) -> list[str]:
  lines = ["## Fig. 2 on our test frames", ""]
  if info is None:
    return lines + [f"Not generated yet: it needs the summaries and checkpoints of rows "
                    f"`{FIGURE_ROWS[0]}` and `{FIGURE_ROWS[1]}` (run `{RESULTS_COMMAND}` "
                    "where the runs' checkpoints are).", ""]
  frames = ", ".join(
      f"{f['frame_id']} (depth {_num(f['depth_px'])}, amplitude {_num(f['amplitude_px'])} px)"
      for f in info["frames"])
  return lines + [
      f"![Fig. 2]({figure_link})", "",
      f"Top: keypoints predicted on the depth image by `{info['rows'][1]}` seed "
      f"{info['seeds'][1]}; middle: on the amplitude image by `{info['rows'][0]}` seed "
      f"{info['seeds'][0]}; bottom: the amplitude model's segmentation output. Cyan left, "
      "red right; white rings are the labelled visible keypoints; predictions are shown "
      "where the model's own presence and visibility outputs say so. Test frames and "
      f"their mean error over visible primary keypoints: {frames}.", ""]


def markdown(results: dict[str, RowResult], timings: Optional[dict] = None,
             figure_info: Optional[dict] = None, figure_link: str = "") -> str:
  """The whole of docs/results.md."""
  lines = [
      "# Reproducing the paper's Tables 1 and 2 on the synthetic benchmark", "",
      f"Generated by `{RESULTS_COMMAND}` from the run summaries in `docs/results/` (one JSON "
      f"per row and seed, written by `{REPRODUCE_COMMAND}`). Rows without a summary are "
      f"marked \"{NOT_RUN}\"; no number of ours here comes from anywhere else. The paper's "
      f"numbers are from its Tables 1 and 2 (an in-house TOF data set of {paper.NUM_USERS} "
      f"users, {paper.NUM_FRAMES:,} frames, {paper.EPOCHS} epochs); ours come from a reduced "
      "budget on synthetic data, so compare "
      "orderings and ratios, not absolute pixels. Error: mean 2D Euclidean error over the "
      "visible primary keypoints, in pixels of the 120x160 input, on the test split; "
      "\"Ours\" is the mean over the seeds listed.", ""]
  lines += benchmark_and_budget(results, timings)
  lines += ["## Table 1: ablation of the supervision", "",
            "✓ on, × removed (the 17-keypoint auxiliary loss Lakp is on in every row: the "
            "paper does not ablate it). Ranks: 1 = lowest error among the rows that ran.", ""]
  lines += table1(results) + [""]
  lines += ["## Table 2: backbones", "",
            "Same decoder, heads and training for all encoders. Params and GFLOPs: the "
            "inference network at 120x160 (FLOPs = 2 x MACs of convolutions and dense "
            "layers), from the runs' summaries.", ""]
  lines += table2(results) + [""]
  lines += ["## Targets", ""] + targets(results) + [""]
  lines += ["## Reading", ""] + reading(results) + [""]
  if results:
    lines += ["What may explain orderings that differ from the paper's:", ""]
    lines += explanations(results) + [""]
  lines += figure_section(figure_info, figure_link)
  lines += ["## Runs", ""]
  lines += (_runs_table(results) if results else [f"None yet: `{REPRODUCE_COMMAND}`."]) + [""]
  return "\n".join(lines)


def update_figure(results: dict[str, RowResult], results_dir: str,
                  render: bool = True) -> Optional[dict]:
  """The figure of the FIGURE_ROWS' first seeds: rendered anew, or the one already there.

  With `render` and the two checkpoints on disk, writes fig2.png and its
  record fig2.json; otherwise keeps an existing figure if its record names
  the same checkpoints.

  Returns:
    The figure's record, or None if there is no figure for the current
    summaries.
  """
  if any(name not in results for name in FIGURE_ROWS):
    return None
  chosen = [results[name].summaries[0] for name in FIGURE_ROWS]
  checkpoints = [s["test"]["checkpoint"] for s in chosen]
  record_path = os.path.join(results_dir, FIGURE_JSON)
  if render and all(os.path.exists(c + ".index") for c in checkpoints):
    png, info = figure.render(checkpoints[0], checkpoints[1], chosen[0]["test"]["data_dir"])
    info.update(rows=list(FIGURE_ROWS), seeds=[s["seed"] for s in chosen])
    atomic.write_bytes(os.path.join(results_dir, FIGURE_PNG), png)
    atomic.write_json(record_path, info)
    return info
  if os.path.exists(record_path):
    with open(record_path) as f:
      info = json.load(f)
    if [info["amplitude_checkpoint"], info["depth_checkpoint"]] == checkpoints:
      return info
  return None


def write_document(results_dir: str, out_path: str, render_figure: bool = True) -> str:
  """Writes `out_path` (docs/results.md) from the summaries in `results_dir`.

  Args:
    results_dir: the summaries (and timing.json, fig2.png/json).
    out_path: the markdown file.
    render_figure: render fig2.png from the checkpoints (else keep the one there).

  Returns:
    The markdown written.
  """
  results = load(results_dir)
  timings = timing.load(results_dir)
  info = update_figure(results, results_dir, render=render_figure)
  link = os.path.relpath(os.path.join(results_dir, FIGURE_PNG),
                         os.path.dirname(os.path.abspath(out_path)))
  text = markdown(results, timings, info, link)
  atomic.write_text(out_path, text)
  return text
