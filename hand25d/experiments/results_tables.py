"""The tables of docs/results.md, as Markdown lines: Tables 1 and 2, the runs, wall time.

Our numbers come from the run summaries (`summaries.load`) and the timing
run's record (`timing.load`), the paper's from hand25d/paper.py through
`plan.ROWS`; each table puts the paper's beside ours. Rows without a summary
are "not run" (results_text.py writes every number).
"""

from typing import Optional

from hand25d import paper
from hand25d.experiments import analysis
from hand25d.experiments import convergence
from hand25d.experiments import plan
from hand25d.experiments import results_text
from hand25d.experiments import timing


def table1(results: analysis.Results) -> list[str]:
  """Table 1 (the supervision ablated): each row's losses, the paper's error and ours, ranks."""
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
    ours = results_text.ours_cells(results.get(row.name))
    lines.append(f"| `{row.name}` | {row.input_mode} | " + " | ".join(marks)
                 + f" | {row.paper_px:.3f} | " + " | ".join(ours)
                 + f" | {paper_rank.get(row.name, '')} | {ours_rank.get(row.name, '')} |")
  return lines


def table2(results: analysis.Results) -> list[str]:
  """Table 2 (the backbones): size and FLOPs, ours and the paper's, and the errors."""
  lines = ["| Backbone | Params | GFLOPs | Params (paper) | GFLOPs (paper) | Paper (px) "
           "| Ours (px) | Ours min–max | Seeds |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
  for name in (plan.OURS, "mobilenet_v2", "densenet121"):
    row = plan.ROWS_BY_NAME[name]
    reported = paper.TABLE2[row.backbone]
    result = results.get(name)
    if result is None:
      size = [results_text.NOT_RUN] * 2
    else:
      model = result.summaries[0]["model"]
      size = [f"{model['params'] / 1e6:.3f}M", f"{model['flops'] / 1e9:.4f}"]
    lines.append(f"| {paper.BACKBONE_NAMES[row.backbone]} (`{name}`) | " + " | ".join(size)
                 + f" | {reported['params'] / 1e6:.3f}M | {reported['gflops']:.3f} "
                 + f"| {row.paper_px:.3f} | " + " | ".join(results_text.ours_cells(result)) + " |")
  return lines


def _flatness_cells(run: analysis.RunFlatness) -> list[str]:
  """[fall over the last FLAT_WINDOW with the evaluations compared, flat] cells of a run."""
  if not run.recorded:
    return [results_text.NOT_RECORDED] * 2
  if run.flatness is None:
    return ["fewer than two evaluations", "n/a"]
  f = run.flatness
  return [f"{100 * f.fall:+.1f}% ({f.start_px:.3f} at step {f.start_step:,} → {f.end_px:.3f} "
          f"at {f.end_step:,})", "yes" if f.flat else "no"]


def runs(results: analysis.Results) -> list[str]:
  """One line per run (row and seed): training, flatness, test metrics, wall time, machine."""
  lines = ["| Row | Seed | Steps | Best val (px) "
           f"| Val fall, last {results_text.percent(convergence.FLAT_WINDOW)} | Flat | Test (px) "
           "| PCK@4px | Pose acc | Orient. acc | Seg mIoU | Train + test (min) | Resumed "
           "| Load avg at end |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
           "| --- | ---: |"]
  capped = {(c.row, c.seed) for c in analysis.capped_runs(results)}
  num = results_text.num
  for row in plan.ROWS:
    for s in results[row.name].summaries if row.name in results else ():
      test, wall = s["test"], s["wall_seconds"]
      steps = f"{s['training']['step']}" + (" (capped)" if (row.name, s["seed"]) in capped
                                             else "")
      lines.append(
          f"| `{row.name}` | {s['seed']} | {steps} "
          f"| {num(s['training']['best_mean_px_error'])} | "
          + " | ".join(_flatness_cells(analysis.run_flatness(s)))
          + f" | {num(test['mean_px_error'])} "
          f"| {num(test['pck'].get('4px'))} | {num(test.get('pose_accuracy'))} "
          f"| {num(test.get('orientation_accuracy'))} "
          f"| {num(test.get('segmentation_miou'))} "
          f"| {wall['train'] / 60:.1f} + {wall['test'] / 60:.1f} "
          f"| {'yes' if s['resumed'] else 'no'} | {s['machine']['load_average'][0]:.1f} |")
  return lines


def wall_time(results: analysis.Results, timings: Optional[dict], budget: plan.Budget) -> str:
  """Expected (timing run) and actual wall time of each run of the default set, and in all."""
  times = analysis.wall_times(results, timings, budget)
  usable = analysis.has_estimates(times)
  if usable:
    lines = [results_text.text("wall_time_expected", measured=timings["measured"],
                               timing_json=timing.TIMING_JSON, steps=timings["steps"],
                               load_average=f"{timings['machine']['load_average'][0]:.1f}",
                               cpu_count=timings["machine"]["cpu_count"]),
             "", "| Row | Seed | Expected (min) | Timing of | As run (min) |",
             "| --- | ---: | ---: | --- | ---: |"]
  else:
    lines = [results_text.text("wall_time_as_run", timing_json=timing.TIMING_JSON,
                               batch_size=budget.batch_size),
             "", "| Row | Seed | As run (min) |", "| --- | ---: | ---: |"]
  for t in times:
    run_cell = (results_text.NOT_RUN if t.actual_seconds is None
                else f"{t.actual_seconds / 60:.1f}")
    expected = f" {t.expected_seconds / 60:.1f} | `{t.source}` |" if usable else ""
    lines.append(f"| `{t.row.name}` | {t.seed} |{expected} {run_cell} |")
  total_expected = sum(t.expected_seconds for t in times)
  total_run = sum(t.actual_seconds or 0.0 for t in times)
  expected = f" **{total_expected / 60:.0f}** | |" if usable else ""
  lines.append(f"| **default set, total** | |{expected} **{total_run / 60:.0f}** |")
  return "\n".join(lines)
