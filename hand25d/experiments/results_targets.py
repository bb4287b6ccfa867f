"""The Targets and Reading sections of docs/results.md: the analysis of the runs, in words.

`targets` gives one bullet per reproduction target (met / not met with the
means and their spreads, whether each difference is resolved, or not
evaluated when rows are missing); `reading` and `explanations` say where our
ordering of the rows agrees with the paper's and what may explain where it
does not. The figures come from analysis.py; the prose from the template's
blocks (results_text.py).
"""

from typing import Sequence

from hand25d import paper
from hand25d.experiments import analysis
from hand25d.experiments import plan
from hand25d.experiments import results_text

# The auxiliary terms of Eq. 1 whose weights the reading quotes.
_AUX_WEIGHTS = ("kphv", "cho", "dhp", "seg")


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


def targets(results: analysis.Results) -> list[str]:
  """One bullet per reproduction target: met / not met with the numbers (means with their
  spreads, differences resolved or not), or not evaluated."""
  text, mean, percent = results_text.text, results_text.mean, results_text.percent
  lines = []
  aux = analysis.PAPER_AUX_GAIN
  what = text("target_aux", min_gain=percent(analysis.MIN_AUX_GAIN),
              paper_no_aux=f"{aux.no_aux_px:.3f}", paper_all=f"{aux.all_px:.3f}",
              paper_gain=f"{100 * aux.gain:.1f}%")
  if (ours := analysis.aux_gain(results)) is None:
    lines.append(_not_evaluated(what, analysis.missing(results, analysis.AUX_ROWS)))
  else:
    no_aux, all_sup = analysis.AUX_ROWS[1], analysis.AUX_ROWS[0]
    lines.append(f"- **{what}: {_verdict(ours)}: `{no_aux}` {mean(no_aux, results)} → "
                 f"`{all_sup}` {mean(all_sup, results)}, {100 * ours.gain:.1f}% lower; "
                 f"{_difference(ours.difference)}.")

  what = text("target_input", paper_pairs="; ".join(
      f"{a:.3f} vs {d:.3f}" for _, a, _, d in analysis.PAPER_INPUT_PAIRS.pairs))
  if (pairs := analysis.input_pairs(results)) is None:
    names = [n for pair in analysis.INPUT_PAIRS for n in pair]
    lines.append(_not_evaluated(what, analysis.missing(results, names)))
  else:
    detail = "; ".join(f"`{a}` {mean(a, results)} vs `{d}` {mean(d, results)} "
                       f"({_difference(c)})"
                       for (a, _, d, _), c in zip(pairs.pairs, pairs.differences))
    partial = "" if pairs.complete else " (only the pairs that ran)"
    lines.append(f"- **{what}: {_verdict(pairs)}{partial}: {detail}.")

  table1 = [r for r in plan.ROWS if r.table == 1 and r.name in analysis.ABLATED_ROWS]
  what = text("target_ablations", count=len(table1), ours=plan.OURS,
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
                 f"`{plan.OURS}` {mean(plan.OURS, results)}; "
                 + "; ".join(_difference(c) for c in ablated.differences) + ".")

  reported = analysis.PAPER_BACKBONE_RATIO
  max_error = percent(analysis.MAX_ERROR_RATIO_TO_MOBILENET - 1)
  max_flops = percent(analysis.MAX_FLOPS_RATIO_TO_MOBILENET)
  what = text("target_backbone", max_error=max_error,
              paper_ours=f"{reported.ours_px:.3f}", paper_mobile=f"{reported.mobile_px:.3f}",
              paper_error=f"{100 * (reported.error_ratio - 1):+.1f}%")
  flops_what = text("target_flops", max_flops=max_flops,
                    paper_flops=f"{100 * reported.flops_ratio:.1f}%")
  if (ours := analysis.backbone_ratio(results)) is None:
    needed = analysis.missing(results, analysis.BACKBONE_ROWS)
    lines += [_not_evaluated(what, needed), _not_evaluated(flops_what, needed)]
  else:
    name, mobile = analysis.BACKBONE_ROWS
    lines.append(
        f"- **{what}: {_met(ours.error_ok)}** ({'' if ours.resolved else 'not '}resolved): "
        f"`{name}` {mean(name, results)} vs `{mobile}` "
        f"{mean(mobile, results)}, {100 * (ours.error_ratio - 1):+.1f}%; "
        f"{_difference(ours.difference)}.")
    verdict = (_met(ours.flops_ok) + " against Keras' MobileNetV2 at 120x160, "
               + _met(ours.paper_flops_ok) + " against the paper's")
    lines.append(
        f"- **{flops_what}: {verdict}**: ours {ours.ours_flops / 1e6:.1f} MFLOPs are "
        f"{100 * ours.flops_ratio:.1f}% of Keras' MobileNetV2 with our decoder at 120x160 "
        f"({ours.mobile_flops / 1e6:.1f} MFLOPs) and {100 * ours.paper_flops_ratio:.1f}% of the "
        f"paper's {analysis.PAPER_MOBILENET_FLOPS / 1e9:.3f} GFLOPs. "
        + text("flops_reason", paper_gflops=f"{analysis.PAPER_MOBILENET_FLOPS / 1e9:.3f}",
               ratio=f"{analysis.PAPER_MOBILENET_FLOPS / ours.mobile_flops:.1f}"))
  return lines


def _comparison(c: analysis.Comparison) -> str:
  """How row c.name compares with c.reference, ours beside the paper's, resolved or not."""
  return (f"`{c.name}` − `{c.reference}`: {c.ours:+.3f} px here, {c.paper:+.3f} px in the paper "
          f"({'same' if c.same_sign else 'opposite'} sign); {_resolution(c)}.")


def reading(results: analysis.Results) -> list[str]:
  """Where our ordering agrees with the paper's and where not (facts from the runs)."""
  order = analysis.ordering(results)
  if order is None:
    return [results_text.text("no_ordering")]
  level = results_text.text("level", best=order.best, px=results_text.mean(order.best, results),
                            ratio=f"{order.ratio:.1f}", paper_px=f"{order.best_paper_px:.3f}")
  if order.ratio > 2:
    level += " " + results_text.text("undertrained")
  disagree = order.pairs - order.agree
  lines = [f"- {level}",
           f"- Of the {results_text.plural(order.pairs, 'pair')} of Table-1 rows that ran, "
           f"{order.agree} {'is' if order.agree == 1 else 'are'} in the paper's order and "
           f"{disagree} {'is' if disagree == 1 else 'are'} not."]
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


def explanations(results: analysis.Results) -> str:
  """What may explain orderings that differ from the paper's (with the runs' own figures)."""
  facts = analysis.run_facts(results)
  low, high = facts.keypoints
  return results_text.text(
      "explanations", steps=facts.steps, examples=f"{facts.examples:,}",
      train_frames=f"{facts.train_frames:,}", paper_epochs=paper.EPOCHS,
      paper_frames=f"{paper.NUM_FRAMES:,}",
      aux_weights=", ".join(f"{t} {paper.EQ1_WEIGHTS[t]:g}" for t in _AUX_WEIGHTS),
      keypoints=f"{low:,}" if low == high else f"{low:,}–{high:,}")
