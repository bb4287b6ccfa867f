"""Training recipes: named, versioned configs of a data set and a training run.

A recipe is a JSON file in hand25d/training/recipes/ (package data):

  {"description": "...",
   "data": {GeneratorConfig fields: num_frames, seed, ...},
   "store_at_input": false,
   "train": {TrainConfig fields but data_dir, nested model/loss as dicts}}

With "store_at_input": true the run trains on a copy of the data set stored
at the network's input size (hand25d.data.resize), which trains faster.

`load(name)` reads one; `train_config(recipe, data_dir, **overrides)` makes
the run's TrainConfig. The recipes and what they reach are described in
docs/training.md ("Recipes").
"""

import dataclasses
import json
import os

from hand25d.training import config as config_lib

RECIPE_DIR = os.path.join(os.path.dirname(__file__), "recipes")


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A named recipe: the synthetic data set it trains on and the run's config."""
  name: str
  description: str
  data: dict  # hand25d.data.generate.GeneratorConfig fields.
  train: dict  # TrainConfig fields except data_dir.
  store_at_input: bool = False  # Train on a copy stored at the input size.


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
  unknown = set(data) - {"description", "data", "train", "store_at_input"}
  if unknown:
    raise ValueError(f"{path}: unknown recipe fields {sorted(unknown)}")
  if "data_dir" in data["train"]:
    raise ValueError(f"{path}: train.data_dir is set where the recipe is used, not in it")
  recipe = Recipe(name=os.path.basename(path)[:-5], description=data["description"],
                  data=data["data"], train=data["train"],
                  store_at_input=bool(data.get("store_at_input", False)))
  try:
    train_config(recipe, "unused")  # Every field known and valid.
  except (TypeError, ValueError) as e:
    raise ValueError(f"{path}: bad train config: {e}") from e
  return recipe


def train_config(recipe: Recipe, data_dir: str, **overrides) -> config_lib.TrainConfig:
  """The TrainConfig of `recipe` on `data_dir`, with top-level fields overridden.

  Its `recipe` field is the recipe's name.
  """
  cfg = config_lib.from_dict({**recipe.train, "data_dir": data_dir, "recipe": recipe.name})
  return dataclasses.replace(cfg, **overrides) if overrides else cfg
