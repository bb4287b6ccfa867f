"""The reproduction of Tables 1 and 2: rows, runner (resumable), results document, figure."""

import dataclasses
import json
import math
import os
import re
import shutil

from hand25d.experiments import analysis
from hand25d.experiments import convergence
from hand25d.experiments import plan
from hand25d.experiments import results
from hand25d.experiments import runner
from hand25d.experiments import summaries as summaries_lib
from hand25d.experiments import timing
from hand25d.training import evaluation
from hand25d.training import loop

import pytest
import tensorflow as tf

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
# 8 training frames at batch 4: 2 steps per row.
TINY = plan.Budget(epochs=1, batch_size=4, seeds=(0,), key_seeds=(0,), checkpoint_every_steps=1,
                   test_batch_size=4)
RAN = ("all_supervision", "depth_all")  # The figure's rows.


@pytest.fixture(scope="module")
def done(tmp_path_factory):
  """Two rows run with the tiny budget: (workdir, results_dir, summaries)."""
  base = tmp_path_factory.mktemp("reproduce")
  workdir, results_dir = str(base / "runs"), str(base / "results")
  summaries = runner.run(plan.rows_named(RAN), TINY, DATA, workdir, results_dir, progress=False)
  return workdir, results_dir, summaries


def _section(text: str, title: str) -> str:
  """The text of the section whose heading starts with `## title`."""
  return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def _line(section: str, row: str) -> str:
  """The table line of `row` in a section."""
  return next(line for line in section.splitlines() if f"`{row}`" in line)


def _forbid_training(monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("must not train again")

  monkeypatch.setattr(loop, "train_and_evaluate", fail)


def test_rows_are_the_papers_tables():
  # Table 1 as printed: input, then Lseg Lds Lcho Wk Lkphv Ldhp, then the error.
  printed = [("depth", "××××××", 6.226), ("amplitude", "××××××", 6.054),
             ("amplitude", "✓✓×✓✓✓", 5.941), ("amplitude", "✓✓✓×✓✓", 5.730),
             ("amplitude", "✓×✓✓✓✓", 5.994), ("amplitude", "×✓✓✓✓✓", 5.690),
             ("amplitude", "✓✓✓✓✓×", 5.655), ("depth", "✓✓✓✓✓✓", 5.898),
             ("amplitude", "✓✓✓✓✓✓", 5.556)]
  table1 = [r for r in plan.ROWS if r.table == 1]
  got = [(r.input_mode, "".join("✓" if on else "×" for on in r.supervision().values()),
          r.paper_px) for r in table1]
  assert got == printed
  assert all(r.loss.akp == 1.0 and r.loss.kp == 1.0 for r in plan.ROWS)
  assert [(r.backbone, r.paper_px) for r in plan.ROWS if r.table == 2] == [
      ("mobilenet_v2", 5.306), ("densenet121", 4.457)]


def test_train_config_has_the_rows_heads_and_budget():
  row = plan.ROWS_BY_NAME["no_pose"]
  cfg = plan.train_config(row, TINY, DATA, seed=3)
  assert not cfg.model.pose and cfg.model.segmentation and cfg.loss == row.loss
  assert (cfg.seed, cfg.epochs, cfg.batch_size, cfg.eval_every_steps) == (3, 1, 4, 2)
  depth = plan.train_config(plan.ROWS_BY_NAME["depth_no_aux"], TINY, DATA, seed=0)
  assert depth.model.input_mode == "depth" and not depth.model.deep_supervision


def test_schedule_runs_first_seeds_key_rows_first():
  budget = plan.Budget(seeds=(0,), key_seeds=(0, 1))
  jobs = plan.schedule(plan.rows_named(["no_pose", "all_supervision", "depth_all"]), budget)
  assert [(r.name, s) for r, s in jobs] == [("all_supervision", 0), ("depth_all", 0),
                                            ("no_pose", 0), ("all_supervision", 1),
                                            ("depth_all", 1)]
  with pytest.raises(ValueError, match="unknown rows.*all_supervision"):
    plan.rows_named(["no_such_row"])


@pytest.mark.slow
def test_runner_writes_a_summary_per_row_with_the_test_metrics(done):
  _, results_dir, summaries = done
  assert [s["row"]["name"] for s in summaries] == list(RAN)
  for summary in summaries:
    path = runner.summary_path(results_dir, summary["row"]["name"], 0)
    with open(path) as f:
      assert json.load(f) == summary
    with open(os.path.join(summary["run_dir"], "test", "metrics.json")) as f:
      metrics = json.load(f)
    assert summary["test"] == metrics and metrics["split"] == "test"
    assert summary["training"]["status"] == "finished" and summary["training"]["step"] == 2
    assert summary["train_config"]["epochs"] == 1 and summary["train_config"]["batch_size"] == 4
    assert summary["data"]["splits"]["test"]["users"] == list(range(32, 40))
    assert summary["model"]["flops"] > 0 and summary["model"]["params"] > 0
    assert summary["budget"] == TINY.record(8) and summary["step_cap"] is None
    # One evaluation (at the last step), read back from the run's eval events: no flatness.
    assert summary["validation_history"] == [
        [2, pytest.approx(summary["training"]["best_mean_px_error"])]]
    assert summary["flatness"] is None
  assert summaries[1]["train_config"]["model"]["input_mode"] == "depth"


@pytest.mark.slow
def test_second_call_skips_finished_rows(done, monkeypatch):
  workdir, results_dir, summaries = done
  _forbid_training(monkeypatch)
  monkeypatch.setattr(evaluation, "evaluate_checkpoint", lambda *a, **k: pytest.fail("tested"))
  assert runner.run(plan.rows_named(RAN), TINY, DATA, workdir, results_dir,
                    progress=False) == summaries


@pytest.mark.slow
def test_trained_row_without_summary_is_tested_not_retrained(done, tmp_path, monkeypatch):
  workdir, results_dir, summaries = done
  fresh = str(tmp_path / "results")
  os.makedirs(fresh)
  _forbid_training(monkeypatch)
  again = runner.run(plan.rows_named(RAN[:1]), TINY, DATA, workdir, fresh, progress=False)
  assert again[0]["test"]["mean_px_error"] == summaries[0]["test"]["mean_px_error"]
  assert again[0]["resumed"]


@pytest.mark.slow
def test_summary_of_another_budget_is_refused(done):
  workdir, results_dir, _ = done
  with pytest.raises(runner.OtherRunError, match=r"another run.*epochs: saved 1, now 2"):
    runner.run(plan.rows_named(RAN), dataclasses.replace(TINY, epochs=2), DATA, workdir,
               results_dir, progress=False)


@pytest.mark.slow
def test_document_shows_the_runs_numbers_and_marks_the_rest_not_run(done, tmp_path):
  _, results_dir, summaries = done
  copy = str(tmp_path / "results")
  shutil.copytree(results_dir, copy)
  text = results.write_document(copy, str(tmp_path / "results.md"))
  table1 = _section(text, "Table 1")
  for summary in summaries:
    cells = _line(table1, summary["row"]["name"]).split(" | ")
    assert f"{summary['test']['mean_px_error']:.3f}" in cells
  assert "not run" in _line(table1, "no_pose") and "not run" in _line(table1, "amplitude_no_aux")
  assert "| 5.556 |" in _line(table1, "all_supervision")  # The paper's number beside ours.
  table2 = _section(text, "Table 2")
  ours = summaries[0]
  assert f"{ours['model']['flops'] / 1e9:.4f}" in _line(table2, "all_supervision")
  assert "not run" in _line(table2, "mobilenet_v2")
  assert re.search(r"5% below no auxiliary losses.*: not evaluated\*\* \(needs rows "
                   r"`amplitude_no_aux`\)", text)
  assert re.search(r"Amplitude input no worse than depth input.*: (met|not met)\*\* "
                   r"\(.*resolved\) \(only the pairs that ran\)", text)
  assert re.search(r"MobileNetV2.*: not evaluated", text)
  # The figure: rendered from the two runs' checkpoints, linked from the document.
  with open(os.path.join(copy, results.FIGURE_PNG), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with open(os.path.join(copy, results.FIGURE_JSON)) as f:
    info = json.load(f)
  assert info["rows"] == list(RAN) and info["frames"]
  assert "![Fig. 2](results/fig2.png)" in text


def test_document_without_runs_invents_nothing():
  text = results.markdown({})
  for row in plan.ROWS:
    assert "not run" in _line(_section(text, f"Table {row.table}"), row.name)
  assert _section(text, "Targets").count("not evaluated") == 5
  assert "Not generated yet" in _section(text, "Fig. 2")
  assert "None yet" in _section(text, "Runs") and "| `" not in _section(text, "Runs")


@pytest.mark.slow
def test_summary_of_another_row_definition_is_refused(done, tmp_path):
  _, results_dir, summaries = done
  summary = dict(summaries[0], row=dict(summaries[0]["row"], paper_px=1.0))
  with open(tmp_path / "all_supervision_seed0.json", "w") as f:
    json.dump(summary, f)
  with pytest.raises(ValueError, match="another definition of row 'all_supervision'"):
    summaries_lib.load(str(tmp_path))


def _made_up(name: str, *errors: float) -> summaries_lib.RowResult:
  return summaries_lib.RowResult(plan.ROWS_BY_NAME[name], tuple(
      {"seed": seed, "test": {"mean_px_error": error}} for seed, error in enumerate(errors)))


def test_analysis_of_made_up_errors():
  made_up = {"all_supervision": _made_up("all_supervision", 5.0, 5.2),
             "amplitude_no_aux": _made_up("amplitude_no_aux", 6.0),
             "depth_all": _made_up("depth_all", 5.05)}
  aux = analysis.aux_gain(made_up)
  assert (aux.no_aux_px, aux.all_px) == (6.0, pytest.approx(5.1)) and aux.met
  assert aux.gain == pytest.approx(0.15)
  assert analysis.PAPER_AUX_GAIN.gain == pytest.approx(1 - 5.556 / 6.054)  # 8.2%.
  pairs = analysis.input_pairs(made_up)  # Only all_supervision vs depth_all ran.
  assert [(a, d) for a, _, d, _ in pairs.pairs] == [("all_supervision", "depth_all")]
  assert not pairs.complete and not pairs.met
  assert analysis.backbone_ratio(made_up) is None
  assert analysis.missing(made_up, analysis.BACKBONE_ROWS) == ["mobilenet_v2"]
  # -0.05 px here against the paper's +0.342: opposite signs, and depth_all has
  # one seed (no spread), so not resolved.
  c = analysis.compare(made_up, "depth_all", "all_supervision")
  assert (c.ours, c.paper, c.spreads) == (pytest.approx(-0.05), pytest.approx(0.342),
                                          (None, pytest.approx(0.2)))
  assert not c.same_sign and not c.resolved
  order = analysis.ordering(made_up)
  assert (order.pairs, order.agree, order.best) == (3, 2, "depth_all")
  assert order.ratio == pytest.approx(5.05 / 5.898)
  kinds = [(kind, c.name) for kind, c in analysis.reading_comparisons(made_up)]
  assert kinds == [("supervision", "amplitude_no_aux"), ("input", "depth_all")]


def test_estimate_adds_training_evaluations_and_setup():
  budget = plan.Budget(epochs=2, batch_size=10, eval_every_epochs=1, seeds=(0,), key_seeds=(0,))
  splits = {"train": {"num_frames": 105}, "val": {"num_frames": 20},
            "test": {"num_frames": 40}}
  measured = {"batch_size": 10, "build_seconds": 1.0, "train_trace_seconds": 3.0,
              "eval_trace_seconds": 0.5, "train_examples_per_s": 20.0,
              "eval_examples_per_s": 40.0}
  # Setup 2 * (1 + 0.5) + 3 = 6 s; 20 steps of 10 at 20/s = 10 s; 2 x 20 val + 40 test at 40/s.
  assert timing.estimate_seconds(measured, budget, splits) == pytest.approx(6 + 10 + 2)
  jobs = plan.schedule(plan.rows_named(["no_pose", "mobilenet_v2"]), budget)
  record = {"batch_size": 10, "rows": {"all_supervision": measured}}
  estimates = timing.estimate_set(record, budget, splits, jobs)
  # No MobileNetV2 timing: unknown; no_pose uses the all-supervision timing (an upper bound).
  assert [(r.name, source) for r, _, _, source in estimates] == [
      ("mobilenet_v2", ""), ("no_pose", "all_supervision")]
  assert math.isnan(estimates[0][2]) and estimates[1][2] == pytest.approx(18)
  assert all(math.isnan(e[2]) for e in timing.estimate_set(None, budget, splits, jobs))


# --- The analysis on made-up summaries (no training) ----------------------------

# Inference FLOPs of each backbone in the made-up summaries (ours and Keras'
# MobileNetV2 at 120x160 as in docs/model_card.md).
_FLOPS = {"ours": 34_637_056, "mobilenet_v2": 224_900_000, "densenet121": 2_068_300_000}
_TRAIN_FRAMES = 2800
# A validation curve that falls 1.6% over its last 25% (flat), and one that falls 10% (not).
FLAT = ((175, 40.0), (350, 32.0), (525, 30.5), (700, 30.0))
FALLING = ((175, 40.0), (350, 36.0), (525, 33.0), (700, 29.7))


def _summary(name: str, seed: int, error: float, history=FLAT, steps: int = 700,
             budget: plan.Budget = plan.Budget(), legacy: bool = False) -> dict:
  """A run summary as runner.run_one writes it, with made-up numbers; `legacy`: as
  written before the budget's record, the step cap and the validation evaluations."""
  row = plan.ROWS_BY_NAME[name]
  users = {"train": range(28), "val": range(28, 32), "test": range(32, 40)}
  frames = {"train": _TRAIN_FRAMES, "val": 400, "test": 800}
  summary = {
      "row": json.loads(json.dumps(row.to_dict())), "seed": seed,
      "budget": budget.record(_TRAIN_FRAMES), "step_cap": budget.max_steps_of(row) or None,
      "train_config": {"epochs": steps // (_TRAIN_FRAMES // budget.batch_size),
                       "batch_size": budget.batch_size, "learning_rate": budget.learning_rate,
                       "warmup_steps": budget.warmup_steps,
                       "max_eval_batches": budget.max_eval_batches},
      "data": {"fingerprint": "made-up", "config": {"seed": 0},
               "splits": {k: {"num_frames": frames[k], "users": list(v)}
                          for k, v in users.items()}},
      "training": {"status": "finished", "step": steps, "total_steps": steps,
                   "best_mean_px_error": min(e for _, e in history)},
      "validation_history": [list(p) for p in history],
      "flatness": convergence.flatness(history).to_dict(),
      "test": {"mean_px_error": error, "num_keypoints": 4406, "pck": {"4px": 0.1}},
      "model": {"flops": _FLOPS[row.backbone], "params": 43362},
      "wall_seconds": {"train": 240.0, "test": 6.0}, "resumed": False,
      "machine": {"load_average": [2.0, 2.0, 2.0]}}
  if legacy:
    for key in ("budget", "step_cap", "validation_history", "flatness"):
      del summary[key]
    del summary["train_config"]["warmup_steps"]
  return summary


def _write(directory, *made_up: dict) -> str:
  for summary in made_up:
    path = runner.summary_path(str(directory), summary["row"]["name"], summary["seed"])
    with open(path, "w") as f:
      json.dump(summary, f)
  return str(directory)


def test_flatness_compares_the_evaluation_nearest_80_percent_with_the_last():
  flat = convergence.flatness(FLAT)  # 80% of 700 = 560: the evaluation at 525.
  assert (flat.start_step, flat.start_px, flat.end_step, flat.end_px) == (525, 30.5, 700, 30.0)
  assert flat.fall == pytest.approx(0.5 / 30.5) and flat.flat
  falling = convergence.flatness(reversed(FALLING))  # Any order.
  assert falling.fall == pytest.approx(0.1) and not falling.flat
  # Exactly 2% is not "less than 2%"; a rise is a negative fall, flat.
  assert not convergence.flatness([(0, 60.0), (80, 50.0), (100, 49.0)]).flat
  risen = convergence.flatness([(80, 50.0), (100, 51.0)])
  assert risen.fall == pytest.approx(-0.02) and risen.flat
  # A tie between two evaluations takes the earlier; the last is never its own start.
  assert convergence.flatness([(70, 10.0), (90, 9.0), (100, 8.0)]).start_step == 70
  assert convergence.flatness([(10, 10.0), (100, 8.0)]).start_step == 10
  # Evaluations without an error are left out; one evaluation has no flatness.
  assert convergence.flatness([(50, None), (100, 8.0)]) is None
  assert convergence.flatness([]) is None
  with pytest.raises(ValueError, match="two evaluations at one step"):
    convergence.flatness([(100, 8.0), (100, 7.0)])
  record = flat.to_dict()
  assert (record["window"], record["max_fall"], record["start"]["step"], record["flat"]) == (
      convergence.FLAT_WINDOW, convergence.FLAT_MAX_FALL, 525, True)


def test_validation_history_is_read_from_the_eval_events(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path / "eval"))
  with writer.as_default():
    for step, error in ((175, 40.0), (350, 33.0), (350, 32.0), (700, 30.0)):  # 350 re-evaluated.
      tf.summary.scalar(runner.VALIDATION_ERROR_TAG, error, step=step)
      tf.summary.scalar("pck/4px", 0.1, step=step)
  writer.close()
  assert runner.validation_history(str(tmp_path)) == [(175, 40.0), (350, 32.0), (700, 30.0)]
  assert runner.validation_history(str(tmp_path / "none")) == []


def test_resolved_needs_a_difference_larger_than_both_spreads():
  made_up = {"all_supervision": _made_up("all_supervision", 5.0, 5.2),  # Spread 0.2.
             "no_pose": _made_up("no_pose", 5.5, 5.6),  # Spread 0.1: +0.45 px resolved.
             "no_segmentation": _made_up("no_segmentation", 5.0, 5.5),  # +0.15, spread 0.5.
             "depth_all": _made_up("depth_all", 9.0)}  # One seed: never resolved.
  resolved = analysis.compare(made_up, "no_pose", "all_supervision")
  assert resolved.spreads == (pytest.approx(0.1), pytest.approx(0.2)) and resolved.resolved
  assert not analysis.compare(made_up, "no_segmentation", "all_supervision").resolved
  assert not analysis.compare(made_up, "all_supervision", "no_segmentation").resolved
  assert not analysis.compare(made_up, "depth_all", "all_supervision").resolved
  # 0.25 px apart against spreads of 0.25 (exact in binary): not larger, so not resolved.
  tie = {"no_pose": _made_up("no_pose", 5.25, 5.5),
         "no_orientation": _made_up("no_orientation", 5.0, 5.25)}
  assert not analysis.compare(tie, "no_pose", "no_orientation").resolved


def test_rank_agreement_counts_pairs_in_the_papers_order():
  table1 = [r for r in plan.ROWS if r.table == 1]
  # Our errors in the paper's order, then in the reverse order: all 36 pairs agree, then none.
  same = {r.name: _made_up(r.name, 10 * r.paper_px) for r in table1}
  order = analysis.ordering(same)
  assert (order.pairs, order.agree, order.best) == (36, 36, "all_supervision")
  assert analysis.table1_ranks(same)[0] == analysis.table1_ranks(same)[1]
  reverse = {r.name: _made_up(r.name, 20 - r.paper_px) for r in table1}
  assert analysis.ordering(reverse).agree == 0
  # One swap (no_pose and no_segmentation, adjacent in the paper's order): 35 agree.
  swapped = dict(same, no_pose=_made_up("no_pose", 10 * 5.70))
  assert analysis.ordering(swapped).agree == 35


def _made_up_set() -> dict[str, summaries_lib.RowResult]:
  """Every row, with known outcomes: auxiliary losses 10% better (resolved), amplitude
  better than depth without auxiliary losses only, no_pose better than all supervision,
  ours 5% worse than MobileNetV2 (not resolved)."""
  errors = {"all_supervision": (18.0, 18.2, 18.4), "amplitude_no_aux": (20.2, 20.3, 20.4),
            "depth_all": (17.0, 17.1, 17.2), "mobilenet_v2": (17.3, 17.5, 18.7),
            "depth_no_aux": (21.0, 21.2), "no_orientation": (19.0, 19.2),
            "no_fingertip_weighting": (18.5, 19.5), "no_deep_supervision": (19.0, 19.1),
            "no_segmentation": (19.5, 19.7), "no_pose": (17.9, 18.1),
            "densenet121": (16.0, 16.2)}
  return {name: summaries_lib.RowResult(plan.ROWS_BY_NAME[name], tuple(
      _summary(name, seed, e) for seed, e in enumerate(values)))
          for name, values in errors.items()}


def test_targets_of_made_up_summaries():
  made_up = _made_up_set()
  aux = analysis.aux_gain(made_up)  # 20.3 -> 18.2 px.
  assert aux.gain == pytest.approx(1 - 18.2 / 20.3) and aux.met and aux.resolved
  pairs = analysis.input_pairs(made_up)
  assert pairs.complete and not pairs.met  # depth_all 17.1 < all_supervision 18.2.
  assert [c.resolved for c in pairs.differences] == [True, True]
  ablated = analysis.ablations(made_up)
  assert ablated.complete and not ablated.met
  assert ablated.not_worse == ["no_pose", "depth_all"]  # The plan's order.
  assert [c.name for c in ablated.differences] == list(analysis.ABLATED_ROWS)
  assert not ablated.resolved  # no_pose: -0.2 px within all_supervision's 0.4.
  ratio = analysis.backbone_ratio(made_up)  # 18.2 vs 17.833 px.
  assert ratio.error_ratio == pytest.approx(18.2 / (53.5 / 3)) and ratio.error_ok
  assert not ratio.resolved
  assert ratio.flops_ratio == pytest.approx(34_637_056 / 224_900_000) and not ratio.flops_ok
  assert ratio.paper_flops_ratio == pytest.approx(34_637_056 / 1.209e9) and ratio.paper_flops_ok
  assert analysis.PAPER_BACKBONE_RATIO.flops_ratio == pytest.approx(0.035 / 1.209)
  assert all(c.ours > 0 for c in analysis.ablations({
      name: _made_up(name, plan.ROWS_BY_NAME[name].paper_px)
      for name in (plan.OURS,) + analysis.ABLATED_ROWS}).differences)  # The paper's: met.


def test_budget_defaults_caps_and_record():
  budget = plan.Budget()
  assert (budget.seeds, budget.key_seeds, budget.warmup_steps) == ((0, 1), (0, 1, 2), 0)
  assert [r.name for r in plan.ROWS if r.key] == ["amplitude_no_aux", "depth_all",
                                                 "all_supervision", "mobilenet_v2"]
  assert plan.DEFAULT_ROWS == tuple(r.name for r in plan.ROWS)
  assert len(plan.schedule(plan.rows_named(plan.DEFAULT_ROWS), budget)) == 4 * 3 + 7 * 2
  densenet, ours = plan.ROWS_BY_NAME["densenet121"], plan.ROWS_BY_NAME[plan.OURS]
  capped = plan.Budget(max_steps_densenet121=400)  # 175 steps an epoch: 2 whole epochs.
  assert (capped.epochs_of(densenet, 2800), capped.epochs_of(ours, 2800)) == (2, 4)
  assert plan.Budget(max_steps_densenet121=5000).epochs_of(densenet, 2800) == 4
  with pytest.raises(plan.BudgetError, match="less than one epoch"):
    plan.Budget(max_steps_densenet121=100).epochs_of(densenet, 2800)
  with pytest.raises(plan.BudgetError, match="warm-up of 350 steps is not shorter than its 350"):
    plan.Budget(warmup_steps=350, max_steps_densenet121=400).epochs_of(densenet, 2800)
  with pytest.raises(plan.BudgetError, match="learning_rate must be > 0"):
    plan.Budget(learning_rate=0.0)
  assert budget.record(2800) == {"epochs": 4, "batch_size": 16, "learning_rate": 0.01,
                                 "warmup_steps": 0, "eval_every_epochs": 1,
                                 "max_eval_batches": 0, "steps": 700}
  cfg = plan.train_config(densenet, dataclasses.replace(TINY, max_steps_densenet121=2,
                                                        warmup_steps=1), DATA, seed=0)
  assert (cfg.epochs, cfg.warmup_steps) == (1, 1)


def test_dry_run_lists_the_runs_with_their_steps_before_the_data_exist(tmp_path):
  budget = plan.Budget(max_steps_densenet121=400, key_seeds=(0,), seeds=(0,))
  record = {"batch_size": 16, "rows": {"densenet121": {
      "batch_size": 16, "build_seconds": 0.0, "train_trace_seconds": 0.0,
      "eval_trace_seconds": 0.0, "train_examples_per_s": 16.0, "eval_examples_per_s": 1e9}}}
  lines = timing.dry_run(record, budget, str(tmp_path / "no_data"),
                         plan.rows_named(["no_pose", "densenet121"]))
  assert "700 steps" in lines[0] and "planned splits" in lines[0]
  assert lines[1] == " 1. no_pose seed 0: 700 steps, no timing of its backbone at this batch size"
  # 350 steps at 1 step/s (evaluations take no time): 5.8 min.
  assert lines[2] == (" 2. densenet121 seed 0: 350 steps (capped, not the budget's 700), "
                      "~5.8 min (timing of densenet121)")
  assert "total unknown" in lines[3]


def test_document_of_made_up_summaries(tmp_path):
  capped = plan.Budget(max_steps_densenet121=400)
  made_up = [s for r in _made_up_set().values() for s in r.summaries
             if s["row"]["name"] != "densenet121"]
  made_up += [_summary("densenet121", 0, 16.0, FALLING, steps=350, budget=capped),
              _summary("no_pose", 1, 18.1, FALLING)]  # Replaces no_pose seed 1.
  for s in made_up:  # Every summary records the same budget: the cap is not another budget.
    s["budget"] = capped.record(_TRAIN_FRAMES)
  text = results.markdown(summaries_lib.load(_write(tmp_path, *made_up)))
  budget = _section(text, "Budget")
  assert "DenseNet-121: 350 steps, not the budget's 700 (seed 0, capped by" in budget
  assert "--max_steps_densenet121=400" in budget and "Warning" not in text
  assert "Flat at the end: 23 of 25 runs were flat" in budget
  runs = _section(text, "Runs")
  assert "| `densenet121` | 0 | 350 (capped) |" in runs
  assert "| +10.0% (33.000 at step 525 → 29.700 at 700) | no |" in _line(runs, "densenet121")
  assert "| +1.6% (30.500 at step 525 → 30.000 at 700) | yes |" in _line(runs,
                                                                         "no_deep_supervision")
  targets = _section(text, "Targets")
  assert re.search(r"5% below no auxiliary losses.*: met\*\* \(resolved\): `amplitude_no_aux` "
                   r"20.300 px \(20.200–20.400\) → `all_supervision` 18.200 px \(18.000–18.400\), "
                   r"10.3% lower; .* resolved: larger than both spreads", targets)
  assert re.search(r"Amplitude input no worse .*: not met\*\* \(every difference resolved\): "
                   r"`all_supervision`", targets)
  assert re.search(r"Every ablated Table-1 row worse .*: not met\*\* \(not every difference "
                   r"resolved\): not worse: `no_pose`, `depth_all`;", targets)
  assert ("`no_pose` − `all_supervision` -0.200 px, not resolved: within the spread of "
          "`no_pose` (0.200 px) and `all_supervision` (0.400 px)") in targets
  assert re.search(r"within 10% of MobileNetV2's error .*: met\*\* \(not resolved\): "
                   r"`all_supervision` 18.200 px \(18.000–18.400\) vs `mobilenet_v2` 17.833 px "
                   r"\(17.300–18.700\), \+2.1%", targets)
  assert re.search(r"3% of MobileNetV2's FLOPs .*: not met against Keras' MobileNetV2 at "
                   r"120x160, met against the paper's\*\*: .* 15.4% of .* 2.9% of the paper's "
                   r"1.209 GFLOPs. The paper's 1.209 GFLOPs are 5.4x", targets)
  reading = _section(text, "Reading")
  assert "has 18.200 px (18.000–18.400)" not in reading  # The best row is depth_all.
  assert "`depth_all`, has 17.100 px (17.000–17.200)" in reading
  assert re.search(r"Resolved \(larger than both rows' spreads\): \d+ of the \d+ differences",
                   reading)
  assert "| 18.000–18.400 | 0, 1, 2 |" in _line(_section(text, "Table 1"), "all_supervision")


def test_document_of_summaries_older_than_the_new_fields(tmp_path):
  old = [_summary(name, 0, 20.0, legacy=True) for name in ("all_supervision", "no_pose")]
  text = results.markdown(summaries_lib.load(_write(tmp_path, *old)))
  assert "with a warm-up not recorded" in _section(text, "Budget")
  assert "Flat at the end: 0 of 2 runs were flat" in text
  assert "For 2 runs it is not recorded" in text
  assert "| not recorded | not recorded |" in _line(_section(text, "Runs"), "no_pose")
  assert "one seed" in _line(_section(text, "Table 1"), "no_pose")
  # Old and new summaries together: not the same budget record, so the document warns.
  _write(tmp_path, _summary("no_orientation", 0, 20.0))
  assert "Warning: the runs used different budgets" in results.markdown(
      summaries_lib.load(str(tmp_path)))
