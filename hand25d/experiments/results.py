"""docs/results.md: our tables beside the paper's, the targets and a reading, as Markdown.

The text is results_template.md (package data) filled in with
string.Template; this module computes what goes into it: tables, bullets and
figures from the summaries (`summaries.load`) and their analysis
(analysis.py). Every number of ours comes from a summary written by
`runner.run` (`<row>_seed<k>.json`), from the timing run (`timing.json`) or
from the figure's record (`fig2.json`); rows without a summary are shown as
"not run" and targets that need them as "not evaluated"; what a summary
older than a field does not hold (the budget's record, the validation
evaluations) is "not recorded". The paper's numbers come from
hand25d/paper.py (through `plan.ROWS`) and are always labelled as the
paper's. Every mean of ours is followed by its spread (min–max over seeds).
"""

import functools
import json
import os
import re
import string
from typing import Optional, Sequence

from hand25d import atomic
from hand25d import paper
from hand25d.data import records
from hand25d.experiments import analysis
from hand25d.experiments import convergence
from hand25d.experiments import figure
from hand25d.experiments import plan
from hand25d.experiments import summaries as summaries_lib
from hand25d.experiments import timing

Results = analysis.Results

FIGURE_PNG = "fig2.png"
FIGURE_JSON = "fig2.json"
# The figure's amplitude and depth rows: all supervision on each input.
FIGURE_ROWS = (plan.OURS, "depth_all")
REPRODUCE_COMMAND = "python -m hand25d.experiments.reproduce_main --data=" + plan.BENCHMARK_DIR
RESULTS_COMMAND = "python -m hand25d.experiments.results_main"
NOT_RUN = "not run"
NOT_RECORDED = "not recorded"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_template.md")
# The auxiliary terms of Eq. 1 whose weights the reading quotes.
_AUX_WEIGHTS = ("kphv", "cho", "dhp", "seg")


@functools.cache
def _blocks() -> dict[str, string.Template]:
  """The named blocks of TEMPLATE (see its first lines)."""
  with open(TEMPLATE, encoding="utf-8") as f:
    parts = re.split(r"^<!-- (\w+) -->\n", f.read(), flags=re.MULTILINE)
  return {name: string.Template(body.rstrip("\n"))
          for name, body in zip(parts[1::2], parts[2::2])}


def _text(block: str, **values) -> str:
  """Block `block` of the template with `values` filled in.

  Raises:
    KeyError: the block uses a name `values` lacks.
  """
  return _blocks()[block].substitute(values)


def _num(value: Optional[float]) -> str:
  """A pixel error or a fraction, 3 decimals; n/a where nothing was measured."""
  return "n/a" if value is None else f"{value:.3f}"


def _span(result: summaries_lib.RowResult) -> str:
  """The row's min–max over seeds, or "one seed"."""
  errors = result.errors
  return f"{min(errors):.3f}–{max(errors):.3f}" if len(errors) > 1 else "one seed"


def _mean(name: str, results: Results) -> str:
  """Row `name`'s mean error with its spread: "30.600 px (30.581–30.619)"."""
  return f"{_num(results[name].mean)} px ({_span(results[name])})"


def _ours_cells(result: Optional[summaries_lib.RowResult]) -> list[str]:
  """[mean, min-max, seeds] cells of a row."""
  if result is None or not result.summaries:
    return [NOT_RUN, "", ""]
  span = _span(result) if result.errors else ""
  return [_num(result.mean), span, ", ".join(str(s) for s in result.seeds)]


def _plural(count: int, word: str) -> str:
  return f"{count} {word}" + ("" if count == 1 else "s")


def _exponent(value: float) -> str:
  """1e-3 as "1e-3" (one significant digit, no padded exponent)."""
  mantissa, exponent = f"{value:.0e}".split("e")
  return f"{mantissa}e{int(exponent)}"


def _percent(fraction: float) -> str:
  return f"{100 * fraction:.0f}%"


def table1(results: Results) -> list[str]:
  ours_rank, paper_rank = analysis.table1_ranks(results)
  columns = [c for c, _ in plan.TABLE1_COLUMNS]
  lines = ["| Row | Input | " + " | ".join(columns) + " | Paper (px) | Ours (px) | Ours min–max "
           "| Seeds | Rank paper | Rank ours |",
           "| --- | --- | " + " | ".join(":-:" for _ in columns) + " | ---: | ---: | ---: | --- "
           "| ---: | ---: |"]
  for row in plan.ROWS:
    if row.table != 1:
      continue
    marks = ["✓" if on else "×" for on in row.supervision().values()]
    lines.append(f"| `{row.name}` | {row.input_mode} | " + " | ".join(marks)
                 + f" | {row.paper_px:.3f} | " + " | ".join(_ours_cells(results.get(row.name)))
                 + f" | {paper_rank.get(row.name, '')} | {ours_rank.get(row.name, '')} |")
  return lines


def table2(results: Results) -> list[str]:
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


def _not_evaluated(what: str, names: Sequence[str]) -> str:
  return f"- **{what}: not evaluated** (needs rows {', '.join(f'`{n}`' for n in names)})."


def _met(met: bool) -> str:
  return "met" if met else "not met"


def _verdict(target) -> str:
  """"met** (resolved)" etc. of a target of analysis (its `met` and `resolved`), in bold."""
  many = len(getattr(target, "differences", ())) > 1
  return (f"{_met(target.met)}** ({'' if target.resolved else 'not '}"
          f"{'every difference ' if many else ''}resolved)")


def _resolution(c: analysis.Comparison) -> str:
  """Whether c's difference is resolved, and why (analysis.Comparison.resolved)."""
  if c.resolved:
    return (f"resolved: larger than both spreads ({c.spreads[0]:.3f} and "
            f"{c.spreads[1]:.3f} px)")
  single = [name for name, spread in zip((c.name, c.reference), c.spreads) if spread is None]
  if single:
    return ("not resolved: " + " and ".join(f"`{n}`" for n in single)
            + f" {'has' if len(single) == 1 else 'have'} one seed, so no spread")
  return ("not resolved: within the spread of "
          + " and ".join(f"`{n}` ({spread:.3f} px)" for n, spread in
                         zip((c.name, c.reference), c.spreads) if spread >= abs(c.ours)))


def _difference(c: analysis.Comparison) -> str:
  return f"`{c.name}` − `{c.reference}` {c.ours:+.3f} px, {_resolution(c)}"


def targets(results: Results) -> list[str]:
  """One bullet per reproduction target: met / not met with the numbers (means with their
  spreads, differences resolved or not), or not evaluated."""
  lines = []
  aux = analysis.PAPER_AUX_GAIN
  what = _text("target_aux", min_gain=_percent(analysis.MIN_AUX_GAIN),
               paper_no_aux=f"{aux.no_aux_px:.3f}", paper_all=f"{aux.all_px:.3f}",
               paper_gain=f"{100 * aux.gain:.1f}%")
  if (ours := analysis.aux_gain(results)) is None:
    lines.append(_not_evaluated(what, analysis.missing(results, analysis.AUX_ROWS)))
  else:
    no_aux, all_sup = analysis.AUX_ROWS[1], analysis.AUX_ROWS[0]
    lines.append(f"- **{what}: {_verdict(ours)}: `{no_aux}` {_mean(no_aux, results)} → "
                 f"`{all_sup}` {_mean(all_sup, results)}, {100 * ours.gain:.1f}% lower; "
                 f"{_difference(ours.difference)}.")

  what = _text("target_input", paper_pairs="; ".join(
      f"{a:.3f} vs {d:.3f}" for _, a, _, d in analysis.PAPER_INPUT_PAIRS.pairs))
  if (pairs := analysis.input_pairs(results)) is None:
    names = [n for pair in analysis.INPUT_PAIRS for n in pair]
    lines.append(_not_evaluated(what, analysis.missing(results, names)))
  else:
    detail = "; ".join(f"`{a}` {_mean(a, results)} vs `{d}` {_mean(d, results)} "
                       f"({_difference(c)})"
                       for (a, _, d, _), c in zip(pairs.pairs, pairs.differences))
    partial = "" if pairs.complete else " (only the pairs that ran)"
    lines.append(f"- **{what}: {_verdict(pairs)}{partial}: {detail}.")

  table1 = [r for r in plan.ROWS if r.table == 1 and r.name in analysis.ABLATED_ROWS]
  what = _text("target_ablations", count=len(table1), ours=plan.OURS,
               paper_low=f"{min(r.paper_px for r in table1):.3f}",
               paper_high=f"{max(r.paper_px for r in table1):.3f}",
               paper_ours=f"{plan.ROWS_BY_NAME[plan.OURS].paper_px:.3f}")
  if (ablated := analysis.ablations(results)) is None:
    lines.append(_not_evaluated(what, analysis.missing(results,
                                                       (plan.OURS,) + analysis.ABLATED_ROWS)))
  else:
    partial = ("" if ablated.complete
               else f" (only the {len(ablated.differences)} rows that ran)")
    not_worse = ", ".join(f"`{n}`" for n in ablated.not_worse) or "none"
    lines.append(f"- **{what}: {_verdict(ablated)}{partial}: not worse: {not_worse}; "
                 f"`{plan.OURS}` {_mean(plan.OURS, results)}; "
                 + "; ".join(_difference(c) for c in ablated.differences) + ".")

  reported = analysis.PAPER_BACKBONE_RATIO
  max_error = _percent(analysis.MAX_ERROR_RATIO_TO_MOBILENET - 1)
  max_flops = _percent(analysis.MAX_FLOPS_RATIO_TO_MOBILENET)
  what = _text("target_backbone", max_error=max_error,
               paper_ours=f"{reported.ours_px:.3f}", paper_mobile=f"{reported.mobile_px:.3f}",
               paper_error=f"{100 * (reported.error_ratio - 1):+.1f}%")
  flops_what = _text("target_flops", max_flops=max_flops,
                     paper_flops=f"{100 * reported.flops_ratio:.1f}%")
  if (ours := analysis.backbone_ratio(results)) is None:
    needed = analysis.missing(results, analysis.BACKBONE_ROWS)
    lines += [_not_evaluated(what, needed), _not_evaluated(flops_what, needed)]
  else:
    name, mobile = analysis.BACKBONE_ROWS
    lines.append(
        f"- **{what}: {_met(ours.error_ok)}** ({'' if ours.resolved else 'not '}resolved): "
        f"`{name}` {_mean(name, results)} vs `{mobile}` "
        f"{_mean(mobile, results)}, {100 * (ours.error_ratio - 1):+.1f}%; "
        f"{_difference(ours.difference)}.")
    verdict = (_met(ours.flops_ok) + " against Keras' MobileNetV2 at 120x160, "
               + _met(ours.paper_flops_ok) + " against the paper's")
    lines.append(
        f"- **{flops_what}: {verdict}**: ours {ours.ours_flops / 1e6:.1f} MFLOPs are "
        f"{100 * ours.flops_ratio:.1f}% of Keras' MobileNetV2 with our decoder at 120x160 "
        f"({ours.mobile_flops / 1e6:.1f} MFLOPs) and {100 * ours.paper_flops_ratio:.1f}% of the "
        f"paper's {analysis.PAPER_MOBILENET_FLOPS / 1e9:.3f} GFLOPs. "
        + _text("flops_reason", paper_gflops=f"{analysis.PAPER_MOBILENET_FLOPS / 1e9:.3f}",
                ratio=f"{analysis.PAPER_MOBILENET_FLOPS / ours.mobile_flops:.1f}"))
  return lines


def _comparison(c: analysis.Comparison) -> str:
  """How row c.name compares with c.reference, ours beside the paper's, resolved or not."""
  return (f"`{c.name}` − `{c.reference}`: {c.ours:+.3f} px here, {c.paper:+.3f} px in the paper "
          f"({'same' if c.same_sign else 'opposite'} sign); {_resolution(c)}.")


def reading(results: Results) -> list[str]:
  """Where our ordering agrees with the paper's and where not (facts from the runs)."""
  order = analysis.ordering(results)
  if order is None:
    return [_text("no_ordering")]
  level = _text("level", best=order.best, px=_mean(order.best, results),
                ratio=f"{order.ratio:.1f}", paper_px=f"{order.best_paper_px:.3f}")
  if order.ratio > 2:
    level += " " + _text("undertrained")
  disagree = order.pairs - order.agree
  lines = [f"- {level}",
           f"- Of the {_plural(order.pairs, 'pair')} of Table-1 rows that ran, {order.agree} "
           f"{'is' if order.agree == 1 else 'are'} in the paper's order and {disagree} "
           f"{'is' if disagree == 1 else 'are'} not."]
  compared = analysis.reading_comparisons(results)
  for kind, comparison in compared:
    lines.append(f"- {kind.capitalize()}: {_comparison(comparison)}")
  if compared:
    resolved = [f"`{c.name}` − `{c.reference}`" for _, c in compared if c.resolved]
    unresolved = [f"`{c.name}` − `{c.reference}`" for _, c in compared if not c.resolved]
    lines.append(f"- Resolved (larger than both rows' spreads): {len(resolved)} of the "
                 f"{len(compared)} differences above ({', '.join(resolved) or 'none'}); not "
                 f"resolved: {', '.join(unresolved) or 'none'}.")
  return lines


def explanations(results: Results) -> str:
  """What may explain orderings that differ from the paper's (with the runs' own figures)."""
  facts = analysis.run_facts(results)
  low, high = facts.keypoints
  return _text("explanations", steps=facts.steps, examples=f"{facts.examples:,}",
               train_frames=f"{facts.train_frames:,}", paper_epochs=paper.EPOCHS,
               paper_frames=f"{paper.NUM_FRAMES:,}",
               aux_weights=", ".join(f"{t} {paper.EQ1_WEIGHTS[t]:g}" for t in _AUX_WEIGHTS),
               keypoints=f"{low:,}" if low == high else f"{low:,}–{high:,}")


def _flatness_cells(run: analysis.RunFlatness) -> list[str]:
  """[fall over the last FLAT_WINDOW with the evaluations compared, flat] cells of a run."""
  if not run.recorded:
    return [NOT_RECORDED, NOT_RECORDED]
  if run.flatness is None:
    return ["fewer than two evaluations", "n/a"]
  f = run.flatness
  return [f"{100 * f.fall:+.1f}% ({f.start_px:.3f} at step {f.start_step:,} → {f.end_px:.3f} "
          f"at {f.end_step:,})", "yes" if f.flat else "no"]


def _flatness_summary(results: Results) -> str:
  """How many runs were flat at the end, plainly (convergence.py's definition)."""
  runs = analysis.flatness(results)
  window, max_fall = _percent(convergence.FLAT_WINDOW), _percent(convergence.FLAT_MAX_FALL)
  if not runs:
    return _text("flatness_none", window=window, max_fall=max_fall)
  known = [r for r in runs if r.flatness is not None]
  flat = [r for r in known if r.flatness.flat]
  unknown = len(runs) - len(known)
  return _text("flatness", flat=len(flat), runs=_plural(len(runs), "run"),
               were="was" if len(flat) == 1 else "were", window=window, max_fall=max_fall,
               start=_percent(1 - convergence.FLAT_WINDOW),
               unknown=(f" For {_plural(unknown, 'run')} it is {NOT_RECORDED} (summaries older "
                        "than the record of the validation evaluations) or there were fewer "
                        "than two evaluations." if unknown else ""),
               verdict=_text("flatness_short") if len(flat) < len(known) else "")


def _runs_table(results: Results) -> list[str]:
  lines = ["| Row | Seed | Steps | Best val (px) "
           f"| Val fall, last {_percent(convergence.FLAT_WINDOW)} | Flat | Test (px) "
           "| PCK@4px | Pose acc | Orient. acc | Seg mIoU | Train + test (min) | Resumed "
           "| Load avg at end |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
           "| --- | ---: |"]
  capped = {(c.row, c.seed) for c in analysis.capped_runs(results)}
  for row in plan.ROWS:
    for s in results[row.name].summaries if row.name in results else ():
      test, wall = s["test"], s["wall_seconds"]
      steps = f"{s['training']['step']}" + (" (capped)" if (row.name, s["seed"]) in capped
                                             else "")
      lines.append(
          f"| `{row.name}` | {s['seed']} | {steps} "
          f"| {_num(s['training']['best_mean_px_error'])} | "
          + " | ".join(_flatness_cells(analysis.run_flatness(s)))
          + f" | {_num(test['mean_px_error'])} "
          f"| {_num(test['pck'].get('4px'))} | {_num(test.get('pose_accuracy'))} "
          f"| {_num(test.get('orientation_accuracy'))} "
          f"| {_num(test.get('segmentation_miou'))} "
          f"| {wall['train'] / 60:.1f} + {wall['test'] / 60:.1f} "
          f"| {'yes' if s['resumed'] else 'no'} | {s['machine']['load_average'][0]:.1f} |")
  return lines


def reproduce_command(budget: plan.Budget) -> str:
  """REPRODUCE_COMMAND with the flags that give `budget` where it is not the default."""
  default = plan.Budget()
  flags = [f"--{name}={value:g}" if isinstance(value, float) else f"--{name}={value}"
           for name in plan.BUDGET_FLAGS
           if (value := getattr(budget, name)) != getattr(default, name)]
  return " ".join([REPRODUCE_COMMAND] + flags)


def _runs_data(results: Results) -> str:
  """The data set the runs used, per split, and its generator config."""
  if not results:
    return _text("no_runs_data")
  data = next(iter(results.values())).summaries[0]["data"]
  lines = []
  for split in records.SPLITS:
    info = data["splits"][split]
    users = info["users"]
    lines.append(f"- {split}: {info['num_frames']:,} frames of {len(users)} users "
                 f"(ids {min(users)}–{max(users)})")
  lines.append(f"- generator config {json.dumps(data['config'], sort_keys=True)}, "
               f"fingerprint `{data['fingerprint']}`")
  if analysis.data_differs(results):
    lines.append(_text("data_warning"))
  return "\n".join(lines)


def _wall_time(results: Results, timings: Optional[dict], budget: plan.Budget) -> str:
  """Expected (timing run) and actual wall time of each run of the default set, and in all."""
  times = analysis.wall_times(results, timings, budget)
  usable = analysis.has_estimates(times)
  if usable:
    lines = [_text("wall_time_expected", measured=timings["measured"],
                   timing_json=timing.TIMING_JSON, steps=timings["steps"],
                   load_average=f"{timings['machine']['load_average'][0]:.1f}",
                   cpu_count=timings["machine"]["cpu_count"]),
             "", "| Row | Seed | Expected (min) | Timing of | As run (min) |",
             "| --- | ---: | ---: | --- | ---: |"]
  else:
    lines = [_text("wall_time_as_run", timing_json=timing.TIMING_JSON,
                   batch_size=budget.batch_size),
             "", "| Row | Seed | As run (min) |", "| --- | ---: | ---: |"]
  for t in times:
    run_cell = NOT_RUN if t.actual_seconds is None else f"{t.actual_seconds / 60:.1f}"
    expected = f" {t.expected_seconds / 60:.1f} | `{t.source}` |" if usable else ""
    lines.append(f"| `{t.row.name}` | {t.seed} |{expected} {run_cell} |")
  total_expected = sum(t.expected_seconds for t in times)
  total_run = sum(t.actual_seconds or 0.0 for t in times)
  expected = f" **{total_expected / 60:.0f}** | |" if usable else ""
  lines.append(f"| **default set, total** | |{expected} **{total_run / 60:.0f}** |")
  return "\n".join(lines)


def _figure(info: Optional[dict], figure_link: str) -> str:
  if info is None:
    return _text("no_figure", amplitude_row=FIGURE_ROWS[0], depth_row=FIGURE_ROWS[1],
                 results_command=RESULTS_COMMAND)
  frames = ", ".join(
      f"{f['frame_id']} (depth {_num(f['depth_px'])}, amplitude {_num(f['amplitude_px'])} px)"
      for f in info["frames"])
  return _text("figure", link=figure_link, depth_row=info["rows"][1], depth_seed=info["seeds"][1],
               amplitude_row=info["rows"][0], amplitude_seed=info["seeds"][0], frames=frames)


def _warmup(results: Results, budget: plan.Budget) -> str:
  if not analysis.warmup_recorded(results):
    return f"with a warm-up {NOT_RECORDED}"
  if not budget.warmup_steps:
    return "with no warm-up"
  return f"with a linear warm-up over the first {budget.warmup_steps:,} steps"


def _capped(results: Results, budget: plan.Budget) -> str:
  """" DenseNet-121: N steps, not the budget's M (...)." per capped row, or ""."""
  found = analysis.capped_runs(results)
  text = ""
  for name in dict.fromkeys(c.row for c in found):
    runs = [c for c in found if c.row == name]
    steps = sorted({c.steps for c in runs})
    text += " " + _text("capped", backbone=paper.BACKBONE_NAMES[plan.ROWS_BY_NAME[name].backbone],
                        steps="/".join(f"{n:,}" for n in steps),
                        budget_steps=f"{runs[0].budget_steps:,}",
                        seeds=("seed " if len(runs) == 1 else "seeds ")
                        + ", ".join(str(c.seed) for c in runs),
                        cap=budget.max_steps_densenet121)
  return text


def markdown(results: Results, timings: Optional[dict] = None,
             figure_info: Optional[dict] = None, figure_link: str = "") -> str:
  """The whole of docs/results.md.

  Args:
    results: row name -> RowResult, from `summaries.load`.
    timings: the timing run's record (`timing.load`), or None.
    figure_info: the figure's record (`update_figure`), or None.
    figure_link: the figure's path relative to the document.
  """
  budget = analysis.runs_budget(results)
  planned = plan.benchmark_frames()
  users = dict(zip(records.SPLITS, plan.BENCHMARK.users_per_split))
  steps = planned["train"] // budget.batch_size * budget.epochs
  default = plan.Budget()
  budget_warning = ""
  if results and analysis.budget_differs(results):
    budget_warning = _text("budget_warning") + "\n\n"
  document = _text(
      "document",
      results_command=RESULTS_COMMAND, reproduce_command=REPRODUCE_COMMAND, not_run=NOT_RUN,
      paper_users=paper.NUM_USERS, paper_frames=f"{paper.NUM_FRAMES:,}",
      paper_epochs=paper.EPOCHS,
      paper_split="/".join(str(n) for n in paper.USERS_PER_SPLIT),
      benchmark_frames=f"{plan.BENCHMARK.num_frames:,}", benchmark_seed=plan.BENCHMARK.seed,
      benchmark_splits=", ".join(f"{split} {planned[split]:,} frames of {users[split]} users"
                                 for split in records.SPLITS),
      benchmark_users="/".join(str(n) for n in plan.BENCHMARK.users_per_split),
      generation_command=plan.generation_command(),
      runs_data=_runs_data(results),
      epochs=_plural(budget.epochs, "epoch"), train_frames=f"{planned['train']:,}",
      batch_size=budget.batch_size, steps=f"{steps:,}",
      examples=f"{steps * budget.batch_size:,}", learning_rate=f"{budget.learning_rate:g}",
      warmup=_warmup(results, budget), capped=_capped(results, budget),
      flatness=_flatness_summary(results),
      paper_learning_rate=_exponent(paper.LEARNING_RATE),
      eval_every=("epoch" if budget.eval_every_epochs == 1
                  else _plural(budget.eval_every_epochs, "epoch")),
      default_budget=("" if budget == default else " " + _text(
          "default_budget", epochs=default.epochs, batch_size=default.batch_size)),
      key_seeds=list(budget.key_seeds), seeds=list(budget.seeds),
      key_rows=", ".join(f"`{r.name}`" for r in plan.ROWS if r.key),
      budget_command=reproduce_command(budget),
      budget_warning=budget_warning, wall_time=_wall_time(results, timings, budget),
      table1="\n".join(table1(results)), table2="\n".join(table2(results)),
      targets="\n".join(targets(results)), reading="\n".join(reading(results)),
      explanations=explanations(results) + "\n\n" if results else "",
      figure=_figure(figure_info, figure_link),
      runs=("\n".join(_runs_table(results)) if results
            else _text("no_runs", reproduce_command=REPRODUCE_COMMAND)))
  return document + "\n"


def update_figure(results: Results, results_dir: str, render: bool = True) -> Optional[dict]:
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

  Raises:
    ValueError: a summary that does not fit the plan (`summaries.load`).
  """
  results = summaries_lib.load(results_dir)
  timings = timing.load(results_dir)
  info = update_figure(results, results_dir, render=render_figure)
  link = os.path.relpath(os.path.join(results_dir, FIGURE_PNG),
                         os.path.dirname(os.path.abspath(out_path)))
  text = markdown(results, timings, info, link)
  atomic.write_text(out_path, text)
  return text
