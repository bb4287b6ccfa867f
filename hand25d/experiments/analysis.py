"""What the reproduction's runs show: ranks, the targets, comparisons with the paper.

Functions of the loaded summaries (`summaries.load`: row name -> RowResult),
the plan (plan.py), the timing record (timing.py) and the paper's numbers
(hand25d/paper.py). They return numbers; results.py writes the document.
Errors are the test split's mean 2D error in pixels of the 120x160 input,
averaged over a row's seeds. A difference between two rows is *resolved*
only when it is larger than the spread (max - min over seeds) of each row;
a row with one seed has no spread, so no difference with it is resolved.
Whether each run's validation error was flat at its end is convergence.py's.
"""

import dataclasses
import json
import math
from typing import Callable, Optional, Sequence

from hand25d import paper
from hand25d.experiments import convergence
from hand25d.experiments import plan
from hand25d.experiments import summaries as summaries_lib
from hand25d.experiments import timing

Results = dict[str, summaries_lib.RowResult]

# Targets of the reproduction (docs/results.md).
MIN_AUX_GAIN = 0.05  # All supervision at least 5% below no auxiliary losses.
MAX_ERROR_RATIO_TO_MOBILENET = 1.10
MAX_FLOPS_RATIO_TO_MOBILENET = 0.03
# The paper's MobileNetV2 FLOPs (its Table 2), against which ours are also put.
PAPER_MOBILENET_FLOPS = paper.TABLE2["mobilenet_v2"]["gflops"] * 1e9
# The rows each target compares: (all supervision, no auxiliary losses) on
# amplitude input; (amplitude, depth) pairs; every other Table-1 row (each
# removes a supervision or takes depth for amplitude input) against all
# supervision; (ours, MobileNetV2).
AUX_ROWS = (plan.OURS, "amplitude_no_aux")
INPUT_PAIRS = ((plan.OURS, "depth_all"), ("amplitude_no_aux", "depth_no_aux"))
ABLATED_ROWS = tuple(r.name for r in plan.ROWS if r.table == 1 and r.name != plan.OURS)
BACKBONE_ROWS = (plan.OURS, "mobilenet_v2")
# The backbone comparisons of the reading: (row, reference).
BACKBONE_PAIRS = ((plan.OURS, "mobilenet_v2"), ("mobilenet_v2", "densenet121"))


def ranks(values: dict[str, float]) -> dict[str, int]:
  """Rank of each name, 1 = the lowest value."""
  order = sorted(values, key=lambda name: values[name])
  return {name: i + 1 for i, name in enumerate(order)}


def missing(results: Results, names: Sequence[str]) -> list[str]:
  """The rows of `names` without a measured error."""
  return [n for n in names if n not in results or results[n].mean is None]


def table1_ranks(results: Results) -> tuple[dict[str, int], dict[str, int]]:
  """(our rank, the paper's rank) of each Table-1 row that ran, among those rows."""
  ran = {r.name: results[r.name].mean for r in plan.ROWS
         if r.table == 1 and r.name in results and results[r.name].mean is not None}
  return ranks(ran), ranks({name: plan.ROWS_BY_NAME[name].paper_px for name in ran})


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Row `name` against row `reference`: error differences here and in the paper (px).

  Attributes:
    ours: name's mean error minus reference's, here.
    paper: the same in the paper.
    spreads: the seed-to-seed range (max - min) of name and of reference;
      None for a row with one seed.
  """
  name: str
  reference: str
  ours: float
  paper: float
  spreads: tuple[Optional[float], Optional[float]]

  @property
  def same_sign(self) -> bool:
    return (self.ours > 0) == (self.paper > 0)

  @property
  def resolved(self) -> bool:
    """The difference is larger than both rows' spreads (False if either has one seed)."""
    return None not in self.spreads and abs(self.ours) > max(self.spreads)


def compare(results: Results, name: str, reference: str) -> Comparison:
  """Row `name` against `reference`; both must have run."""
  a, b = results[name], results[reference]
  return Comparison(name, reference, a.mean - b.mean, a.row.paper_px - b.row.paper_px,
                    (a.spread, b.spread))


def _all_resolved(differences: Sequence[Comparison]) -> bool:
  return bool(differences) and all(c.resolved for c in differences)


@dataclasses.dataclass(frozen=True)
class AuxGain:
  """The error without and with the auxiliary losses (amplitude input).

  Attributes:
    difference: no auxiliary losses minus all supervision (ours; None for the paper's).
  """
  no_aux_px: float
  all_px: float
  difference: Optional[Comparison] = None

  @property
  def gain(self) -> float:
    """The fraction by which the auxiliary losses lower the error."""
    return 1.0 - self.all_px / self.no_aux_px

  @property
  def met(self) -> bool:
    return self.gain >= MIN_AUX_GAIN

  @property
  def resolved(self) -> bool:
    return self.difference is not None and self.difference.resolved


@dataclasses.dataclass(frozen=True)
class InputPairs:
  """Amplitude against depth input: (amplitude row, its px, depth row, its px) per pair.

  Attributes:
    complete: every pair of INPUT_PAIRS ran.
    differences: depth minus amplitude per pair (ours; () for the paper's).
  """
  pairs: tuple[tuple[str, float, str, float], ...]
  complete: bool
  differences: tuple[Comparison, ...] = ()

  @property
  def met(self) -> bool:
    return all(amplitude <= depth for _, amplitude, _, depth in self.pairs)

  @property
  def resolved(self) -> bool:
    return _all_resolved(self.differences)


@dataclasses.dataclass(frozen=True)
class Ablations:
  """Every ablated Table-1 row (ABLATED_ROWS) against all supervision.

  Attributes:
    differences: each ablated row that ran minus plan.OURS.
    complete: every row of ABLATED_ROWS ran.
  """
  differences: tuple[Comparison, ...]
  complete: bool

  @property
  def met(self) -> bool:
    """Every ablated row that ran has a higher error than all supervision."""
    return all(c.ours > 0 for c in self.differences)

  @property
  def not_worse(self) -> list[str]:
    return [c.name for c in self.differences if c.ours <= 0]

  @property
  def resolved(self) -> bool:
    return _all_resolved(self.differences)


@dataclasses.dataclass(frozen=True)
class BackboneRatio:
  """Ours against MobileNetV2: errors (px) and FLOPs of the inference networks.

  Attributes:
    mobile_flops: MobileNetV2's, here Keras' at 120x160 with our decoder (the
      summaries'), for the paper its Table 2's.
    difference: ours minus MobileNetV2 (ours; None for the paper's).
  """
  ours_px: float
  mobile_px: float
  ours_flops: float
  mobile_flops: float
  difference: Optional[Comparison] = None

  @property
  def error_ratio(self) -> float:
    return self.ours_px / self.mobile_px

  @property
  def flops_ratio(self) -> float:
    return self.ours_flops / self.mobile_flops

  @property
  def error_ok(self) -> bool:
    return self.error_ratio <= MAX_ERROR_RATIO_TO_MOBILENET

  @property
  def flops_ok(self) -> bool:
    return self.flops_ratio <= MAX_FLOPS_RATIO_TO_MOBILENET

  @property
  def paper_flops_ratio(self) -> float:
    """Our FLOPs against the paper's MobileNetV2 FLOPs (PAPER_MOBILENET_FLOPS)."""
    return self.ours_flops / PAPER_MOBILENET_FLOPS

  @property
  def paper_flops_ok(self) -> bool:
    return self.paper_flops_ratio <= MAX_FLOPS_RATIO_TO_MOBILENET

  @property
  def resolved(self) -> bool:
    return self.difference is not None and self.difference.resolved


# The paper's side of each target.
PAPER_AUX_GAIN = AuxGain(no_aux_px=paper.TABLE1_PX[AUX_ROWS[1]],
                         all_px=paper.TABLE1_PX[AUX_ROWS[0]])
PAPER_INPUT_PAIRS = InputPairs(tuple((a, paper.TABLE1_PX[a], d, paper.TABLE1_PX[d])
                                     for a, d in INPUT_PAIRS), True)
PAPER_BACKBONE_RATIO = BackboneRatio(paper.TABLE2_PX["ours"], paper.TABLE2_PX["mobilenet_v2"],
                                     paper.TABLE2["ours"]["gflops"] * 1e9,
                                     PAPER_MOBILENET_FLOPS)


def aux_gain(results: Results) -> Optional[AuxGain]:
  """Our AuxGain; None unless both AUX_ROWS ran."""
  if missing(results, AUX_ROWS):
    return None
  return AuxGain(no_aux_px=results[AUX_ROWS[1]].mean, all_px=results[AUX_ROWS[0]].mean,
                 difference=compare(results, AUX_ROWS[1], AUX_ROWS[0]))


def input_pairs(results: Results) -> Optional[InputPairs]:
  """Our InputPairs of the pairs that ran; None if none did."""
  done = [(a, d) for a, d in INPUT_PAIRS if not missing(results, (a, d))]
  if not done:
    return None
  return InputPairs(tuple((a, results[a].mean, d, results[d].mean) for a, d in done),
                    len(done) == len(INPUT_PAIRS), tuple(compare(results, d, a) for a, d in done))


def ablations(results: Results) -> Optional[Ablations]:
  """Our Ablations of the ablated rows that ran; None unless plan.OURS and one of them ran."""
  done = [name for name in ABLATED_ROWS if not missing(results, (name,))]
  if missing(results, (plan.OURS,)) or not done:
    return None
  return Ablations(tuple(compare(results, name, plan.OURS) for name in done),
                   len(done) == len(ABLATED_ROWS))


def backbone_ratio(results: Results) -> Optional[BackboneRatio]:
  """Our BackboneRatio (FLOPs of the inference network, from the summaries); None unless
  both BACKBONE_ROWS ran."""
  if missing(results, BACKBONE_ROWS):
    return None
  ours, mobile = (results[name] for name in BACKBONE_ROWS)
  return BackboneRatio(ours.mean, mobile.mean, ours.summaries[0]["model"]["flops"],
                       mobile.summaries[0]["model"]["flops"], compare(results, *BACKBONE_ROWS))


@dataclasses.dataclass(frozen=True)
class Ordering:
  """How the Table-1 rows that ran order against the paper's order.

  Attributes:
    pairs: pairs of those rows.
    agree: pairs in the paper's order.
    best: the row with the lowest error here.
    best_px, best_paper_px: its error here and in the paper.
  """
  pairs: int
  agree: int
  best: str
  best_px: float
  best_paper_px: float

  @property
  def ratio(self) -> float:
    return self.best_px / self.best_paper_px


def table1_ran(results: Results) -> list[str]:
  """The Table-1 rows with a measured error, in the plan's order."""
  return [r.name for r in plan.ROWS if r.table == 1 and r.name in results
          and results[r.name].mean is not None]


def ordering(results: Results) -> Optional[Ordering]:
  """The Ordering of the Table-1 rows; None with fewer than two of them."""
  ran = table1_ran(results)
  if len(ran) < 2:
    return None
  pairs = [(a, b) for i, a in enumerate(ran) for b in ran[i + 1:]]
  agree = sum((results[a].mean - results[b].mean) * (plan.ROWS_BY_NAME[a].paper_px
                                                     - plan.ROWS_BY_NAME[b].paper_px) > 0
              for a, b in pairs)
  best = min(ran, key=lambda name: results[name].mean)
  return Ordering(len(pairs), agree, best, results[best].mean,
                  plan.ROWS_BY_NAME[best].paper_px)


def reading_comparisons(results: Results) -> list[tuple[str, Comparison]]:
  """(kind, Comparison) of the reading: each supervision removed on amplitude input
  ("supervision"), depth against amplitude input ("input"), the backbones ("backbone")."""
  ran = table1_ran(results)
  found = []
  if len(ran) < 2:
    return found
  if plan.OURS in ran:
    found += [("supervision", compare(results, name, plan.OURS)) for name in ran
              if name != plan.OURS and plan.ROWS_BY_NAME[name].input_mode == "amplitude"]
  found += [("input", compare(results, depth, amplitude)) for amplitude, depth in INPUT_PAIRS
            if amplitude in ran and depth in ran]
  found += [("backbone", compare(results, name, reference))
            for name, reference in BACKBONE_PAIRS if not missing(results, (name, reference))]
  return found


def budget_of(summary: dict) -> dict:
  """The budget a run was made with: its record (plan.Budget.record) or, in a summary older
  than that record, the epochs, batch size and learning rate of its training config."""
  if "budget" in summary:
    return summary["budget"]
  cfg = summary["train_config"]
  return {name: cfg[name] for name in ("epochs", "batch_size", "learning_rate")}


@dataclasses.dataclass(frozen=True)
class RunFacts:
  """What every run shares: the budget's steps and examples, training frames; test keypoints
  (min, max)."""
  steps: int
  examples: int
  train_frames: int
  keypoints: tuple[int, int]


def run_facts(results: Results) -> RunFacts:
  """The RunFacts of the first run (and the keypoint counts of all); needs a run.

  The steps are the budget's (a run under a step cap trained fewer, `capped_runs`);
  in a summary older than the budget's record, the first run's.
  """
  first = next(iter(results.values())).summaries[0]
  steps = first.get("budget", {}).get("steps", first["training"]["total_steps"])
  keypoints = sorted({s["test"]["num_keypoints"] for r in results.values() for s in r.summaries})
  return RunFacts(steps, steps * first["train_config"]["batch_size"],
                  first["data"]["splits"]["train"]["num_frames"],
                  (keypoints[0], keypoints[-1]))


def differ(results: Results, key: Callable[[dict], object]) -> bool:
  """Whether the runs' summaries differ in `key(summary)`."""
  return len({json.dumps(key(s), sort_keys=True)
              for r in results.values() for s in r.summaries}) > 1


def data_differs(results: Results) -> bool:
  """The runs used different data sets."""
  return differ(results, lambda s: s["data"]["fingerprint"])


def budget_differs(results: Results) -> bool:
  """The runs used different budgets (`budget_of`; a step cap is not a different budget)."""
  return differ(results, budget_of)


def runs_budget(results: Results) -> plan.Budget:
  """The budget of the first run (with DenseNet-121's step cap, if a run had one), else
  the default. A summary older than the budget's record gives its training config's
  epochs, batch size, learning rate, warm-up (0 if not recorded: `warmup_recorded`) and
  validation limit."""
  if not results:
    return plan.Budget()
  first = next(iter(results.values())).summaries[0]
  cfg = first["train_config"]
  shared = {"epochs": cfg["epochs"], "batch_size": cfg["batch_size"],
            "learning_rate": cfg["learning_rate"], "warmup_steps": cfg.get("warmup_steps", 0),
            "max_eval_batches": cfg["max_eval_batches"]}
  shared.update({k: v for k, v in first.get("budget", {}).items() if k in plan.Budget.SHARED})
  caps = [s["step_cap"] for r in results.values() for s in r.summaries if s.get("step_cap")]
  return dataclasses.replace(plan.Budget(), max_steps_densenet121=caps[0] if caps else 0,
                             **shared)


def warmup_recorded(results: Results) -> bool:
  """The first run's summary records its warm-up (older summaries do not)."""
  if not results:
    return True
  first = next(iter(results.values())).summaries[0]
  return "warmup_steps" in first.get("budget", first["train_config"])


@dataclasses.dataclass(frozen=True)
class Capped:
  """A run that trained fewer steps than its budget's (a step cap, plan.Budget)."""
  row: str
  seed: int
  steps: int
  budget_steps: int


def capped_runs(results: Results) -> list[Capped]:
  """The runs under a step cap, in the plan's row order (older summaries have none)."""
  found = []
  for row in plan.ROWS:
    for s in results[row.name].summaries if row.name in results else ():
      steps, budget_steps = s["training"]["total_steps"], s.get("budget", {}).get("steps")
      if budget_steps is not None and steps < budget_steps:
        found.append(Capped(row.name, s["seed"], steps, budget_steps))
  return found


@dataclasses.dataclass(frozen=True)
class RunFlatness:
  """Whether one run's validation error was flat at its end (convergence.py).

  Attributes:
    recorded: the summary holds the run's validation evaluations (older ones do not).
    flatness: None if not recorded or with fewer than two evaluations.
  """
  row: str
  seed: int
  recorded: bool
  flatness: Optional[convergence.Flatness]


def run_flatness(summary: dict) -> RunFlatness:
  """The RunFlatness of a summary, from its recorded validation evaluations (under the
  current definition, convergence.flatness)."""
  history = summary.get("validation_history")
  return RunFlatness(summary["row"]["name"], summary["seed"], history is not None,
                     None if history is None else convergence.flatness(history))


def flatness(results: Results) -> list[RunFlatness]:
  """The RunFlatness of every run, in the plan's row order."""
  return [run_flatness(s) for row in plan.ROWS if row.name in results
          for s in results[row.name].summaries]


@dataclasses.dataclass(frozen=True)
class WallTime:
  """One run's wall time: expected from the timing run, and as run.

  Attributes:
    expected_seconds: NaN without a timing of the row's backbone at its batch.
    source: the timed row the estimate comes from ("" without one).
    actual_seconds: training and testing as run; None if not run.
  """
  row: plan.Row
  seed: int
  expected_seconds: float
  source: str
  actual_seconds: Optional[float]


def wall_times(results: Results, timings: Optional[dict],
               budget: plan.Budget) -> list[WallTime]:
  """The runs of the default set (plan.DEFAULT_ROWS) in the order they run."""
  jobs = plan.schedule(plan.rows_named(plan.DEFAULT_ROWS), budget)
  splits = timings["data"]["splits"] if timings else {
      split: {"num_frames": n} for split, n in plan.benchmark_frames().items()}
  found = []
  for row, seed, seconds, source in timing.estimate_set(timings, budget, splits, jobs):
    empty = summaries_lib.RowResult(row, ())
    done = [s for s in results.get(row.name, empty).summaries if s["seed"] == seed]
    actual = sum(done[0]["wall_seconds"].values()) if done else None
    found.append(WallTime(row, seed, seconds, source, actual))
  return found


def has_estimates(times: Sequence[WallTime]) -> bool:
  """Whether any run has an expected wall time."""
  return any(not math.isnan(t.expected_seconds) for t in times)
