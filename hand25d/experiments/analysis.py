"""What the reproduction's runs show: ranks, the targets, comparisons with the paper.

Functions of the loaded summaries (`summaries.load`: row name -> RowResult),
the plan (plan.py), the timing record (timing.py) and the paper's numbers
(hand25d/paper.py). They return numbers; results.py writes the document.
Errors are the test split's mean 2D error in pixels of the 120x160 input,
averaged over a row's seeds.
"""

import dataclasses
import json
import math
from typing import Callable, Optional, Sequence

from hand25d import paper
from hand25d.experiments import plan
from hand25d.experiments import summaries as summaries_lib
from hand25d.experiments import timing

Results = dict[str, summaries_lib.RowResult]

# Targets of the reproduction (docs/results.md).
MIN_AUX_GAIN = 0.05  # All supervision at least 5% below no auxiliary losses.
MAX_ERROR_RATIO_TO_MOBILENET = 1.10
MAX_FLOPS_RATIO_TO_MOBILENET = 0.03
# The rows each target compares: (all supervision, no auxiliary losses) on
# amplitude input; (amplitude, depth) pairs; (ours, MobileNetV2).
AUX_ROWS = (plan.OURS, "amplitude_no_aux")
INPUT_PAIRS = ((plan.OURS, "depth_all"), ("amplitude_no_aux", "depth_no_aux"))
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
class AuxGain:
  """The error without and with the auxiliary losses (amplitude input)."""
  no_aux_px: float
  all_px: float

  @property
  def gain(self) -> float:
    """The fraction by which the auxiliary losses lower the error."""
    return 1.0 - self.all_px / self.no_aux_px

  @property
  def met(self) -> bool:
    return self.gain >= MIN_AUX_GAIN


@dataclasses.dataclass(frozen=True)
class InputPairs:
  """Amplitude against depth input: (amplitude row, its px, depth row, its px) per pair."""
  pairs: tuple[tuple[str, float, str, float], ...]
  complete: bool  # Every pair of INPUT_PAIRS ran.

  @property
  def met(self) -> bool:
    return all(amplitude <= depth for _, amplitude, _, depth in self.pairs)


@dataclasses.dataclass(frozen=True)
class BackboneRatio:
  """Ours against MobileNetV2: errors (px) and FLOPs (any one unit)."""
  ours_px: float
  mobile_px: float
  ours_flops: float
  mobile_flops: float

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
  def met(self) -> bool:
    return self.error_ok and self.flops_ok


# The paper's side of each target.
PAPER_AUX_GAIN = AuxGain(no_aux_px=paper.TABLE1_PX[AUX_ROWS[1]],
                         all_px=paper.TABLE1_PX[AUX_ROWS[0]])
PAPER_INPUT_PAIRS = InputPairs(tuple((a, paper.TABLE1_PX[a], d, paper.TABLE1_PX[d])
                                     for a, d in INPUT_PAIRS), True)
PAPER_BACKBONE_RATIO = BackboneRatio(paper.TABLE2_PX["ours"], paper.TABLE2_PX["mobilenet_v2"],
                                     paper.TABLE2["ours"]["gflops"],
                                     paper.TABLE2["mobilenet_v2"]["gflops"])


def aux_gain(results: Results) -> Optional[AuxGain]:
  """Our AuxGain; None unless both AUX_ROWS ran."""
  if missing(results, AUX_ROWS):
    return None
  return AuxGain(no_aux_px=results[AUX_ROWS[1]].mean, all_px=results[AUX_ROWS[0]].mean)


def input_pairs(results: Results) -> Optional[InputPairs]:
  """Our InputPairs of the pairs that ran; None if none did."""
  done = [(a, d) for a, d in INPUT_PAIRS if not missing(results, (a, d))]
  if not done:
    return None
  return InputPairs(tuple((a, results[a].mean, d, results[d].mean) for a, d in done),
                    len(done) == len(INPUT_PAIRS))


def backbone_ratio(results: Results) -> Optional[BackboneRatio]:
  """Our BackboneRatio (FLOPs of the inference network, from the summaries); None unless
  both BACKBONE_ROWS ran."""
  if missing(results, BACKBONE_ROWS):
    return None
  ours, mobile = (results[name] for name in BACKBONE_ROWS)
  return BackboneRatio(ours.mean, mobile.mean, ours.summaries[0]["model"]["flops"],
                       mobile.summaries[0]["model"]["flops"])


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Row `name` against row `reference`: error differences here and in the paper (px).

  Attributes:
    spread: the larger seed-to-seed range (max - min) of the two rows; None
      when both have one seed.
  """
  name: str
  reference: str
  ours: float
  paper: float
  spread: Optional[float]

  @property
  def same_sign(self) -> bool:
    return (self.ours > 0) == (self.paper > 0)

  @property
  def resolved(self) -> bool:
    """The difference is larger than the seed-to-seed range (False without one)."""
    return self.spread is not None and abs(self.ours) > self.spread


def compare(results: Results, name: str, reference: str) -> Comparison:
  """Row `name` against `reference`; both must have run."""
  a, b = results[name], results[reference]
  spreads = [s for s in (a.spread, b.spread) if s is not None]
  return Comparison(name, reference, a.mean - b.mean, a.row.paper_px - b.row.paper_px,
                    max(spreads) if spreads else None)


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


@dataclasses.dataclass(frozen=True)
class RunFacts:
  """What every run shares: steps, examples, training frames; test keypoints (min, max)."""
  steps: int
  examples: int
  train_frames: int
  keypoints: tuple[int, int]


def run_facts(results: Results) -> RunFacts:
  """The RunFacts of the first run (and the keypoint counts of all); needs a run."""
  first = next(iter(results.values())).summaries[0]
  steps = first["training"]["total_steps"]
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
  """The runs used different budgets (epochs, batch size or learning rate)."""
  return differ(results, lambda s: [s["train_config"]["epochs"], s["train_config"]["batch_size"],
                                    s["train_config"]["learning_rate"]])


def runs_budget(results: Results) -> plan.Budget:
  """The budget the runs used (their epochs, batch, rate, validation limit), else the default."""
  if not results:
    return plan.Budget()
  cfg = next(iter(results.values())).summaries[0]["train_config"]
  return dataclasses.replace(plan.Budget(), epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                             learning_rate=cfg["learning_rate"],
                             max_eval_batches=cfg["max_eval_batches"])


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
