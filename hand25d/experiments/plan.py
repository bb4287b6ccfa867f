"""What the reproduction runs: the paper's table rows as data, the benchmark and the budget.

Table 1 of the paper removes one supervision at a time (and compares amplitude
with depth input); Table 2 swaps the encoder for MobileNetV2 and DenseNet-121
with the same decoder, heads and training. Each `Row` is one line of those
tables: the paper's error and the loss weights and model choices that make it.

The paper's Table 1 has no column for the auxiliary 17-keypoint loss (Lakp):
it is not ablated, so it stays on in every row, also in the two rows with all
the listed supervision removed ("no auxiliary supervision").

The benchmark is one synthetic data set split by user like the paper's 40
users (28 train / 4 val / 8 test); `BENCHMARK` fixes its size and seed. The
`Budget` is the training schedule every row shares (see docs/results.md for
its measured cost and whether the runs' validation error was flat at the
end, convergence.py).
"""

import dataclasses
import os

from hand25d import losses
from hand25d import paper
from hand25d.data import generate
from hand25d.data import records
from hand25d.model import config as model_config
from hand25d.training import config as config_lib
from hand25d.training import distribute

ALL_SUPERVISION = losses.LossWeights()
# Every supervision Table 1 lists switched off: Lseg, Lds, Lcho, Wk, Lkphv, Ldhp.
NO_AUXILIARY = losses.LossWeights(seg=0.0, ds=0.0, cho=0.0, kphv=0.0, dhp=0.0,
                                  fingertip_double=False)

# Table 1's supervision columns, in the paper's order: (column, LossWeights field).
# "Wk" (key-point loss weighting) is the doubling of the fingertip terms.
TABLE1_COLUMNS = (("Lseg", "seg"), ("Lds", "ds"), ("Lcho", "cho"), ("Wk", "fingertip_double"),
                  ("Lkphv", "kphv"), ("Ldhp", "dhp"))


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the paper's Table 1 or 2 and how to train it.

  Attributes:
    name: identifier; names the run directory and the summary JSON.
    table: 1 (ablation) or 2 (backbones). The all-supervision amplitude row
      is also Table 2's "Ours".
    label: what the row is, in words.
    paper_px: the paper's mean 2D keypoint error (px) for the row
      (hand25d/paper.py).
    loss: the loss weights (a weight of 0 also removes the head).
    input_mode: "amplitude" or "depth".
    backbone: one of hand25d.model.config.BACKBONES.
    key: trained with `Budget.key_seeds` (the rows the targets compare), the
      others with `Budget.seeds`.
  """
  name: str
  table: int
  label: str
  paper_px: float
  loss: losses.LossWeights = ALL_SUPERVISION
  input_mode: str = "amplitude"
  backbone: str = "ours"
  key: bool = False

  def supervision(self) -> dict[str, bool]:
    """Table 1's check marks: {column: on}."""
    return {column: bool(getattr(self.loss, field)) for column, field in TABLE1_COLUMNS}

  def to_dict(self) -> dict:
    """The row as stored in its summaries (JSON types)."""
    return dataclasses.asdict(self)


# The rows in the paper's order. Table 1 prints them from worst to best.
ROWS = (
    Row("depth_no_aux", 1, "depth input, no auxiliary supervision",
        paper.TABLE1_PX["depth_no_aux"], loss=NO_AUXILIARY, input_mode="depth"),
    Row("amplitude_no_aux", 1, "amplitude input, no auxiliary supervision",
        paper.TABLE1_PX["amplitude_no_aux"], loss=NO_AUXILIARY, key=True),
    Row("no_orientation", 1, "without the orientation loss Lcho",
        paper.TABLE1_PX["no_orientation"], loss=dataclasses.replace(ALL_SUPERVISION, cho=0.0)),
    Row("no_fingertip_weighting", 1, "without fingertip doubling (Wk)",
        paper.TABLE1_PX["no_fingertip_weighting"],
        loss=dataclasses.replace(ALL_SUPERVISION, fingertip_double=False)),
    Row("no_deep_supervision", 1, "without deep supervision Lds",
        paper.TABLE1_PX["no_deep_supervision"], loss=dataclasses.replace(ALL_SUPERVISION, ds=0.0)),
    Row("no_segmentation", 1, "without segmentation Lseg",
        paper.TABLE1_PX["no_segmentation"], loss=dataclasses.replace(ALL_SUPERVISION, seg=0.0)),
    Row("no_pose", 1, "without discrete pose Ldhp",
        paper.TABLE1_PX["no_pose"], loss=dataclasses.replace(ALL_SUPERVISION, dhp=0.0)),
    Row("depth_all", 1, "depth input, all supervision", paper.TABLE1_PX["depth_all"],
        input_mode="depth", key=True),
    Row("all_supervision", 1, "amplitude input, all supervision (ours)",
        paper.TABLE1_PX["all_supervision"], key=True),
    Row("mobilenet_v2", 2, "MobileNetV2 encoder, all supervision",
        paper.TABLE2_PX["mobilenet_v2"], backbone="mobilenet_v2", key=True),
    Row("densenet121", 2, "DenseNet-121 encoder, all supervision",
        paper.TABLE2_PX["densenet121"], backbone="densenet121"),
)
ROWS_BY_NAME = {row.name: row for row in ROWS}
OURS = "all_supervision"  # Table 2's "Ours" is Table 1's best row.
# Every row. DenseNet-121 trains ~5x slower than ours on the 2-core CPU; where it
# cannot reach the budget, Budget.max_steps_densenet121 caps it.
DEFAULT_ROWS = tuple(row.name for row in ROWS)
# The backbone whose steps Budget.max_steps_densenet121 caps.
CAPPED_BACKBONE = "densenet121"

# The benchmark data set: 4000 frames of 40 users split 28/4/8 (2800/400/800 frames).
BENCHMARK = generate.GeneratorConfig(num_frames=4000, seed=0)
BENCHMARK_DIR = os.path.join("runs", "benchmark_data")


def benchmark_frames() -> dict[str, int]:
  """Frames of each split of the benchmark data set (BENCHMARK), as it will be generated."""
  planned = {split: 0 for split in records.SPLITS}
  for shard in generate.plan(BENCHMARK):
    planned[shard.split] += shard.stop - shard.start
  return planned


def generation_command(out_dir: str = BENCHMARK_DIR, workers: int = 2) -> str:
  """The shell command that generates the BENCHMARK data set into `out_dir`."""
  return (f"python -m hand25d.data.generate_main --out={out_dir} "
          f"--num_frames={BENCHMARK.num_frames} --seed={BENCHMARK.seed} --workers={workers}")


class BudgetError(ValueError):
  """A Budget's value is out of range, or the budget does not fit the data set or a row."""


@dataclasses.dataclass(frozen=True)
class Budget:
  """The training schedule every row shares (the paper: 20 epochs, Adam, 1e-3 decaying).

  Epochs, batch size, learning rate, warm-up and the validation schedule are
  the same for every row, so that the rows compare; only
  `max_steps_densenet121` may shorten one row, DenseNet-121's, where the
  budget does not fit the machine (its summary and docs/results.md then say
  so). The defaults are the first reproduction's schedule: with the
  BENCHMARK's 2800 training frames, 4 epochs at batch 16 are 700 steps
  (11,200 examples) per row, chosen for time, not for convergence; whether a
  budget suffices is what each run's flatness (convergence.py) says, and
  docs/results.md counts the flat runs. Batch 16 rather than the library's
  32: "ours" trains about as many examples/s on the CPU, and a short
  schedule gains from twice the updates (the paper gives no batch size).
  Learning rate 1e-2 rather than the paper's 1e-3, which is tuned for 140K
  steps: over a few hundred steps 1e-2 reached a much lower error
  (docs/training.md, "Short runs").

  Attributes:
    epochs: passes over the training split (learning rate decays to 0 over them).
    batch_size: examples per step.
    learning_rate: Adam's peak rate (the paper's is 1e-3).
    warmup_steps: linear warm-up from 0 to `learning_rate` over the first steps.
    max_steps_densenet121: the most steps DenseNet-121 may train (0: the
      budget's); it then trains the most whole epochs within them.
    seeds: seeds of the rows that are not `Row.key`.
    key_seeds: seeds of the key rows (the spread of the compared numbers).
    eval_every_epochs: validation (and best-checkpoint choice) interval.
    max_eval_batches: limit on validation batches (0: the whole split).
    checkpoint_every_steps: resume granularity after a kill.
    test_batch_size: batch size of the final test-split evaluation.
  """
  epochs: int = 4
  batch_size: int = 16
  learning_rate: float = 1e-2
  warmup_steps: int = 0
  max_steps_densenet121: int = 0
  seeds: tuple[int, ...] = (0, 1)
  key_seeds: tuple[int, ...] = (0, 1, 2)
  eval_every_epochs: int = 1
  max_eval_batches: int = 0
  checkpoint_every_steps: int = 100
  test_batch_size: int = 32

  # The fields that set what every row learns and how its checkpoint is
  # chosen: stored in each summary ("budget"), where runs of other values
  # do not compare.
  SHARED = ("epochs", "batch_size", "learning_rate", "warmup_steps", "eval_every_epochs",
            "max_eval_batches")

  def __post_init__(self):
    for name in ("epochs", "batch_size", "eval_every_epochs", "checkpoint_every_steps",
                 "test_batch_size"):
      if getattr(self, name) < 1:
        raise BudgetError(f"Budget.{name} must be >= 1, got {getattr(self, name)}")
    for name in ("warmup_steps", "max_steps_densenet121", "max_eval_batches"):
      if getattr(self, name) < 0:
        raise BudgetError(f"Budget.{name} must be >= 0, got {getattr(self, name)}")
    if not self.learning_rate > 0:
      raise BudgetError(f"Budget.learning_rate must be > 0, got {self.learning_rate}")
    for name in ("seeds", "key_seeds"):
      seeds = getattr(self, name)
      if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise BudgetError(f"Budget.{name} must be distinct non-negative seeds, got {seeds}")

  def seeds_of(self, row: Row) -> tuple[int, ...]:
    return self.key_seeds if row.key else self.seeds

  def steps_per_epoch(self, train_frames: int) -> int:
    """Steps per epoch over `train_frames` (the loop drops the last partial batch).

    Raises:
      BudgetError: fewer frames than one batch.
    """
    if train_frames < self.batch_size:
      raise BudgetError(f"{train_frames} training frames are fewer than one batch of "
                       f"{self.batch_size}")
    return train_frames // self.batch_size

  def steps(self, train_frames: int) -> int:
    """The budget's steps per run over `train_frames`."""
    return self.steps_per_epoch(train_frames) * self.epochs

  def max_steps_of(self, row: Row) -> int:
    """The row's step cap (0: none): only DenseNet-121's can be set."""
    return self.max_steps_densenet121 if row.backbone == CAPPED_BACKBONE else 0

  def epochs_of(self, row: Row, train_frames: int) -> int:
    """The epochs `row` trains: the budget's, or the most whole ones within its step cap.

    Raises:
      BudgetError: the cap is less than one epoch, or the warm-up is not
        shorter than the row's steps.
    """
    per_epoch = self.steps_per_epoch(train_frames)
    epochs = self.epochs
    cap = self.max_steps_of(row)
    if cap:
      epochs = min(epochs, cap // per_epoch)
      if epochs < 1:
        raise BudgetError(f"{row.name}: a cap of {cap} steps is less than one epoch "
                         f"({per_epoch} steps of {self.batch_size}); raise it")
    if self.warmup_steps >= epochs * per_epoch:
      raise BudgetError(f"{row.name}: warm-up of {self.warmup_steps} steps is not shorter than "
                       f"its {epochs * per_epoch} steps")
    return epochs

  def record(self, train_frames: int) -> dict:
    """The SHARED fields and the budget's steps over `train_frames`, as stored in summaries."""
    return {**{name: getattr(self, name) for name in self.SHARED},
            "steps": self.steps(train_frames)}


# The Budget fields reproduce_main sets from flags of the same name, with their help
# (the seeds have their own flag).
BUDGET_FLAGS = {
    "epochs": "Epochs per row.",
    "batch_size": "Batch size.",
    "learning_rate": "Adam's peak learning rate.",
    "warmup_steps": "Linear warm-up steps.",
    "max_steps_densenet121": "Most steps DenseNet-121 trains (whole epochs; 0: the budget's), "
                             "where it cannot reach the budget on this machine.",
    "max_eval_batches": "Validation batches per evaluation (0: all).",
}


def rows_named(names) -> tuple[Row, ...]:
  """The rows with these names, in the given order.

  Raises:
    ValueError: an unknown name (the message lists the known ones).
  """
  unknown = [n for n in names if n not in ROWS_BY_NAME]
  if unknown:
    raise ValueError(f"unknown rows {unknown}; known rows: {', '.join(ROWS_BY_NAME)}")
  return tuple(ROWS_BY_NAME[n] for n in names)


def schedule(rows, budget: Budget) -> list[tuple[Row, int]]:
  """The (row, seed) runs in the order they run.

  The first seed of every row comes first, key rows before the others (so a
  set stopped early can still check the targets), then the further seeds.
  """
  ordered = sorted(rows, key=lambda row: not row.key)  # Stable: keeps the given order.
  first = [(row, budget.seeds_of(row)[0]) for row in ordered]
  rest = [(row, seed) for row in ordered for seed in budget.seeds_of(row)[1:]]
  return first + rest


def train_config(row: Row, budget: Budget, data_dir: str, seed: int,
                 progress: bool = True) -> config_lib.TrainConfig:
  """The training config of one (row, seed) on the data set in `data_dir`.

  The model has exactly the heads of the row's active loss terms, as the
  training loop would set them (so the config compares equal to the one the
  loop saves in the run directory). DenseNet-121 trains fewer epochs under
  the budget's cap (Budget.epochs_of).

  Raises:
    BudgetError: the budget does not fit the data set (named) or the row
      (Budget.epochs_of).
  """
  train_frames = distribute.split_frames(data_dir, "train")
  try:
    steps_per_epoch = budget.steps_per_epoch(train_frames)
  except BudgetError as e:
    raise BudgetError(f"{data_dir}: {e}") from e
  return config_lib.with_heads_for_losses(config_lib.TrainConfig(
      data_dir=os.path.abspath(data_dir),
      model=model_config.ModelConfig(backbone=row.backbone, input_mode=row.input_mode),
      loss=row.loss, batch_size=budget.batch_size, epochs=budget.epochs_of(row, train_frames),
      learning_rate=budget.learning_rate, warmup_steps=budget.warmup_steps, seed=seed,
      eval_every_steps=max(1, steps_per_epoch * budget.eval_every_epochs),
      checkpoint_every_steps=budget.checkpoint_every_steps,
      max_eval_batches=budget.max_eval_batches, progress=progress))
