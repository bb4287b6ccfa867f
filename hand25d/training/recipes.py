"""Training recipes: named, versioned configs of a data set and a training run.

A recipe is a JSON file in hand25d/training/recipes/ (package data):

  {"description": "...",
   "data": {GeneratorConfig fields: num_frames, seed, ...},
   "store_at_input": false,
   "train": {TrainConfig fields but data_dir, nested model/loss as dicts},
   "stages": [{"name": "...", "description": "...",
               "train": {TrainConfig fields set over the run's}}, ...]}

With "store_at_input": true the run trains on a copy of the data set stored
at the network's input size (hand25d.data.resize), which trains faster.
"stages" (optional) are runs that follow the recipe's run, each starting
from the weights of the one before (TrainConfig.init_weights), e.g. a head
trained alone on the frozen network; export/pretrained.py runs them.

`load(name)` reads one; `train_config(recipe, data_dir, **overrides)` makes
the run's TrainConfig and `stage_config(recipe, stage, data_dir, init_from)`
a stage's. The recipes and what they reach are described in
docs/training.md ("Recipes").
"""

import dataclasses
import json
import os

from hand25d.training import config as config_lib

RECIPE_DIR = os.path.join(os.path.dirname(__file__), "recipes")


@dataclasses.dataclass(frozen=True)
class Stage:
  """A run after the recipe's, from the weights of the run before it."""
  name: str  # Names its run directory (export/pretrained.py: train_<name>).
  description: str
  train: dict  # TrainConfig fields set over the recipe's (model and loss merged).


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A named recipe: the synthetic data set it trains on and the run's config."""
  name: str
  description: str
  data: dict  # hand25d.data.generate.GeneratorConfig fields.
  train: dict  # TrainConfig fields except data_dir.
  store_at_input: bool = False  # Train on a copy stored at the input size.
  stages: tuple[Stage, ...] = ()


def names() -> tuple[str, ...]:
  """The recipes shipped with hand25d."""
  return tuple(sorted(f[:-5] for f in os.listdir(RECIPE_DIR) if f.endswith(".json")))


def load(name: str) -> Recipe:
  """The recipe `name` (one of names()), or a path to a recipe JSON file.

  Raises:
    ValueError: an unknown name, or a file that is not a recipe (names the file
      and the field).
  """
  path = name if name.endswith(".json") else os.path.join(RECIPE_DIR, f"{name}.json")
  if not os.path.exists(path):
    raise ValueError(f"unknown recipe {name!r}; the shipped recipes are {names()}")
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON: {e}") from e
  missing = {"description", "data", "train"} - set(data)
  if missing:
    raise ValueError(f"{path}: recipe lacks {sorted(missing)}")
  unknown = set(data) - {"description", "data", "train", "store_at_input", "stages"}
  if unknown:
    raise ValueError(f"{path}: unknown recipe fields {sorted(unknown)}")
  if "data_dir" in data["train"]:
    raise ValueError(f"{path}: train.data_dir is set where the recipe is used, not in it")
  stages = []
  for i, stage in enumerate(data.get("stages", [])):
    if not isinstance(stage, dict) or set(stage) != {"name", "description", "train"}:
      raise ValueError(f"{path}: stages[{i}] must have exactly name, description and train")
    if {"data_dir", "init_weights"} & set(stage["train"]):
      raise ValueError(f"{path}: stages[{i}] ({stage['name']}) sets data_dir or "
                       "init_weights, which come from the build")
    stages.append(Stage(**stage))
  if len({s.name for s in stages}) != len(stages):
    raise ValueError(f"{path}: stage names repeat: {[s.name for s in stages]}")
  recipe = Recipe(name=os.path.basename(path)[:-5], description=data["description"],
                  data=data["data"], train=data["train"],
                  store_at_input=bool(data.get("store_at_input", False)), stages=tuple(stages))
  try:
    train_config(recipe, "unused")  # Every field known and valid.
    for stage in recipe.stages:
      stage_config(recipe, stage, "unused", "unused")
  except (TypeError, ValueError) as e:
    raise ValueError(f"{path}: bad train config: {e}") from e
  return recipe


def train_config(recipe: Recipe, data_dir: str, **overrides) -> config_lib.TrainConfig:
  """The TrainConfig of `recipe` on `data_dir`, with top-level fields overridden.

  Its `recipe` field is the recipe's name.
  """
  cfg = config_lib.from_dict({**recipe.train, "data_dir": data_dir, "recipe": recipe.name})
  return dataclasses.replace(cfg, **overrides) if overrides else cfg


def stage_config(recipe: Recipe, stage: Stage, data_dir: str, init_from: str,
                 **overrides) -> config_lib.TrainConfig:
  """The TrainConfig of `stage`: the recipe's with the stage's fields set over it.

  The stage's "model" and "loss" dicts are merged into the recipe's; it
  starts from the weights of `init_from` (the run before it).
  """
  train = {**recipe.train, **stage.train}
  for section in ("model", "loss"):
    train[section] = {**recipe.train.get(section, {}), **stage.train.get(section, {})}
  cfg = config_lib.from_dict({**train, "data_dir": data_dir, "recipe": recipe.name,
                              "init_weights": init_from})
  return dataclasses.replace(cfg, **overrides) if overrides else cfg
