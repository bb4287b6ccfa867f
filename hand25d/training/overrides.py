"""A run's TrainConfig: a recipe's (or the defaults) with values set over it, as train_main does.

The starting point is a recipe (recipes.py: a shipped name or a JSON file)
or TrainConfig's defaults. Each value set names its section of the config
("train": TrainConfig's own fields, "model", "loss") and whether it was
given explicitly (a flag on the command line) or is only a default:

  * without a recipe every value applies, defaults included;
  * with a recipe only the values given apply, so the recipe keeps the rest;
  * when the config starts from weights (init_weights), their network comes
    with them (the model section of the config they were trained with,
    warm_start.source_config); model values given still apply over it.
"""

import dataclasses
from typing import Any, Mapping, Optional

from hand25d.training import config as config_lib
from hand25d.training import recipes
from hand25d.training import warm_start

SECTIONS = ("train", "model", "loss")


def train_config(data_dir: str, recipe: Optional[str],
                 values: Mapping[tuple[str, str], tuple[Any, bool]]) -> config_lib.TrainConfig:
  """The config of a run on `data_dir`: `recipe`'s (or the defaults) with `values` set over it.

  Args:
    data_dir: the data set.
    recipe: a recipe name or JSON file (recipes.load), or None for the defaults.
    values: (section, field) -> (value, given explicitly); section is one of
      SECTIONS, a list value is stored as a tuple (the config is frozen).

  Raises:
    ValueError: an unknown recipe, a value the config refuses, or weights to
      start from whose config cannot be found.
  """
  if recipe:
    base = recipes.train_config(recipes.load(recipe), data_dir)
  else:
    base = config_lib.TrainConfig(data_dir=data_dir)
  applied = {section: {} for section in SECTIONS}
  for (section, field), (value, given) in values.items():
    if not recipe or given:
      applied[section][field] = tuple(value) if isinstance(value, list) else value
  cfg = config_lib.replace(base, **applied["train"], loss=applied["loss"])
  if cfg.init_weights:
    # Weights to start from bring their architecture; model values given
    # explicitly still apply over it.
    cfg = dataclasses.replace(cfg, model=warm_start.source_config(cfg.init_weights).model)
    applied["model"] = {field: value for field, value in applied["model"].items()
                        if values[("model", field)][1]}
  return config_lib.replace(cfg, model=applied["model"])
