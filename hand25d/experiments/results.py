"""docs/results.md: our tables beside the paper's, the targets and a reading, as Markdown.

This module assembles the document (`markdown`: the "document" block of
results_template.md filled in), keeps its figure up to date (`update_figure`)
and writes it (`write_document`). The sections come from the summaries
(`summaries.load`) and their analysis (analysis.py): Tables 1 and 2, the runs
and the wall time from results_tables.py, the targets and the reading from
results_targets.py, the data set, the budget and the figure from here;
results_text.py holds the template and writes every number.

Every number of ours comes from a summary written by `runner.run`
(`<row>_seed<k>.json`), from the timing run (`timing.json`) or from the
figure's record (`fig2.json`); rows without a summary are shown as "not run"
and targets that need them as "not evaluated"; what a summary older than a
field does not hold (the budget's record, the validation evaluations) is "not
recorded". The paper's numbers come from hand25d/paper.py (through
`plan.ROWS`) and are always labelled as the paper's. Every mean of ours is
followed by its spread (min–max over seeds).
"""

import json
import os
from typing import Optional

from hand25d import atomic
from hand25d import paper
from hand25d.data import records
from hand25d.experiments import analysis
from hand25d.experiments import convergence
from hand25d.experiments import figure
from hand25d.experiments import plan
from hand25d.experiments import results_tables
from hand25d.experiments import results_targets
from hand25d.experiments import results_text
from hand25d.experiments import summaries as summaries_lib
from hand25d.experiments import timing

Results = analysis.Results

FIGURE_PNG = "fig2.png"
FIGURE_JSON = "fig2.json"
# The figure's amplitude and depth rows: all supervision on each input.
FIGURE_ROWS = (plan.OURS, "depth_all")
REPRODUCE_COMMAND = "python -m hand25d.experiments.reproduce_main --data=" + plan.BENCHMARK_DIR
RESULTS_COMMAND = "python -m hand25d.experiments.results_main"


def _flatness_summary(results: Results) -> str:
  """How many runs were flat at the end, plainly (convergence.py's definition)."""
  runs = analysis.flatness(results)
  window = results_text.percent(convergence.FLAT_WINDOW)
  max_fall = results_text.percent(convergence.FLAT_MAX_FALL)
  if not runs:
    return results_text.text("flatness_none", window=window, max_fall=max_fall)
  known = [r for r in runs if r.flatness is not None]
  flat = [r for r in known if r.flatness.flat]
  unknown = len(runs) - len(known)
  return results_text.text(
      "flatness", flat=len(flat), runs=results_text.plural(len(runs), "run"),
      were="was" if len(flat) == 1 else "were", window=window, max_fall=max_fall,
      start=results_text.percent(1 - convergence.FLAT_WINDOW),
      unknown=(f" For {results_text.plural(unknown, 'run')} it is {results_text.NOT_RECORDED} "
               "(summaries older than the record of the validation evaluations) or there were "
               "fewer than two evaluations." if unknown else ""),
      verdict=results_text.text("flatness_short") if len(flat) < len(known) else "")


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
    return results_text.text("no_runs_data")
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
    lines.append(results_text.text("data_warning"))
  return "\n".join(lines)


def _figure(info: Optional[dict], figure_link: str) -> str:
  if info is None:
    return results_text.text("no_figure", amplitude_row=FIGURE_ROWS[0],
                             depth_row=FIGURE_ROWS[1], results_command=RESULTS_COMMAND)
  frames = ", ".join(
      f"{f['frame_id']} (depth {results_text.num(f['depth_px'])}, "
      f"amplitude {results_text.num(f['amplitude_px'])} px)"
      for f in info["frames"])
  return results_text.text("figure", link=figure_link, depth_row=info["rows"][1],
                           depth_seed=info["seeds"][1], amplitude_row=info["rows"][0],
                           amplitude_seed=info["seeds"][0], frames=frames)


def _warmup(results: Results, budget: plan.Budget) -> str:
  if not analysis.warmup_recorded(results):
    return f"with a warm-up {results_text.NOT_RECORDED}"
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
    text += " " + results_text.text(
        "capped", backbone=paper.BACKBONE_NAMES[plan.ROWS_BY_NAME[name].backbone],
        steps="/".join(f"{n:,}" for n in steps), budget_steps=f"{runs[0].budget_steps:,}",
        seeds=("seed " if len(runs) == 1 else "seeds ") + ", ".join(str(c.seed) for c in runs),
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
    budget_warning = results_text.text("budget_warning") + "\n\n"
  document = results_text.text(
      "document",
      results_command=RESULTS_COMMAND, reproduce_command=REPRODUCE_COMMAND,
      not_run=results_text.NOT_RUN,
      paper_users=paper.NUM_USERS, paper_frames=f"{paper.NUM_FRAMES:,}",
      paper_epochs=paper.EPOCHS,
      paper_split="/".join(str(n) for n in paper.USERS_PER_SPLIT),
      benchmark_frames=f"{plan.BENCHMARK.num_frames:,}", benchmark_seed=plan.BENCHMARK.seed,
      benchmark_splits=", ".join(f"{split} {planned[split]:,} frames of {users[split]} users"
                                 for split in records.SPLITS),
      benchmark_users="/".join(str(n) for n in plan.BENCHMARK.users_per_split),
      generation_command=plan.generation_command(),
      runs_data=_runs_data(results),
      epochs=results_text.plural(budget.epochs, "epoch"), train_frames=f"{planned['train']:,}",
      batch_size=budget.batch_size, steps=f"{steps:,}",
      examples=f"{steps * budget.batch_size:,}", learning_rate=f"{budget.learning_rate:g}",
      warmup=_warmup(results, budget), capped=_capped(results, budget),
      flatness=_flatness_summary(results),
      paper_learning_rate=results_text.exponent(paper.LEARNING_RATE),
      eval_every=("epoch" if budget.eval_every_epochs == 1
                  else results_text.plural(budget.eval_every_epochs, "epoch")),
      default_budget=("" if budget == default else " " + results_text.text(
          "default_budget", epochs=default.epochs, batch_size=default.batch_size)),
      key_seeds=list(budget.key_seeds), seeds=list(budget.seeds),
      key_rows=", ".join(f"`{r.name}`" for r in plan.ROWS if r.key),
      budget_command=reproduce_command(budget),
      budget_warning=budget_warning,
      wall_time=results_tables.wall_time(results, timings, budget),
      table1="\n".join(results_tables.table1(results)),
      table2="\n".join(results_tables.table2(results)),
      targets="\n".join(results_targets.targets(results)),
      reading="\n".join(results_targets.reading(results)),
      explanations=results_targets.explanations(results) + "\n\n" if results else "",
      figure=_figure(figure_info, figure_link),
      runs=("\n".join(results_tables.runs(results)) if results
            else results_text.text("no_runs", reproduce_command=REPRODUCE_COMMAND)))
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
    ValueError: no directory `results_dir`, or a summary that cannot be
      read or does not fit the plan (`summaries.load`), or an unreadable
      timing record (`timing.load`); each names the file.
  """
  results = summaries_lib.load(results_dir)
  timings = timing.load(results_dir)
  info = update_figure(results, results_dir, render=render_figure)
  link = os.path.relpath(os.path.join(results_dir, FIGURE_PNG),
                         os.path.dirname(os.path.abspath(out_path)))
  text = markdown(results, timings, info, link)
  atomic.write_text(out_path, text)
  return text
