"""Flags built from config dataclasses, and one flag name for one thing in every binary."""

import ast
import dataclasses
import glob
import os
from typing import Optional

from absl import flags
import pytest

from hand25d import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Old spellings -> the one name every binary, the Makefile, CI and the docs use.
RENAMED = {"data_dir": "data", "out_dir": "out", "max_eval_frames": "max_eval_batches",
           "init_weights": "init_from"}
# Inside `bazel test` the sandbox holds only this test's declared inputs, not
# the binaries and docs: those checks run under pytest (make test).
_SOURCE_TREE = pytest.mark.skipif(
    "TEST_SRCDIR" in os.environ, reason="reads the whole source tree; runs under pytest")


@dataclasses.dataclass(frozen=True)
class _Config:
  path: str
  mode: str = "fast"
  steps: int = 3
  rate: float = 0.5
  on: bool = False
  note: Optional[str] = None
  limit: Optional[int] = None
  names: tuple[str, ...] = ("a", "b")
  table: dict = dataclasses.field(default_factory=dict)


def test_type_and_default_come_from_the_dataclass():
  fv = flags.FlagValues()
  holders = {f: config_flags.define(_Config, f, f"help {f}", flag_values=fv)
             for f in ("path", "steps", "rate", "on", "note", "limit", "names")}
  mode = config_flags.define(_Config(path="x", mode="slow"), "mode", "help", name="speed",
                             choices=("fast", "slow"), flag_values=fv)
  fv(["prog", "--path=p"])
  assert {f: h.value for f, h in holders.items()} == {
      "path": "p", "steps": 3, "rate": 0.5, "on": False, "note": None, "limit": None,
      "names": ["a", "b"]}
  assert mode.value == "slow"  # The instance's value, not the field's default.
  fv.unparse_flags()
  fv(["prog", "--path=p", "--steps=7", "--rate=2", "--on", "--note=n", "--limit=4",
      "--names=c,d", "--speed=fast"])
  assert ([holders[f].value for f in ("steps", "rate", "on", "note", "limit", "names")]
          + [mode.value]) == [7, 2.0, True, "n", 4, ["c", "d"], "fast"]


def test_bad_values_and_a_missing_required_field_are_refused():
  fv = flags.FlagValues()
  config_flags.define(_Config, "path", "help", flag_values=fv)  # No default: required.
  config_flags.define(_Config, "mode", "help", choices=("fast", "slow"), flag_values=fv)
  config_flags.define(_Config, "steps", "help", flag_values=fv)
  with pytest.raises(flags.IllegalFlagValueError, match="path"):
    fv(["prog"])
  for bad in ("--mode=medium", "--steps=three"):
    with pytest.raises(flags.IllegalFlagValueError):
      fv(["prog", "--path=p", bad])


def test_what_has_no_flag_is_refused():
  fv = flags.FlagValues()
  with pytest.raises(TypeError, match="no field 'nope'"):
    config_flags.define(_Config, "nope", "help", flag_values=fv)
  with pytest.raises(TypeError, match="table"):
    config_flags.define(_Config, "table", "help", flag_values=fv)
  with pytest.raises(TypeError, match="with choices"):
    config_flags.define(_Config, "steps", "help", choices=("1", "2"), flag_values=fv)
  with pytest.raises(TypeError, match="not a dataclass"):
    config_flags.define(dict, "items", "help", flag_values=fv)


def test_flags_belong_to_the_module_that_defines_them():
  """--helpshort lists a binary's key flags: those of the module that called define."""
  fv = flags.FlagValues()
  holder = config_flags.define(_Config, "steps", "help", flag_values=fv)
  assert holder.name in [f.name for f in fv.get_key_flags_for_module(__name__)]


def _binaries() -> list[str]:
  return sorted(glob.glob(os.path.join(ROOT, "hand25d", "**", "*_main.py"), recursive=True)
                + glob.glob(os.path.join(ROOT, "export", "**", "*_main.py"), recursive=True)
                + glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))


def _flag_names(path: str) -> tuple[set[str], dict[str, str]]:
  """(flags defined, {alias: the flag it names}) by a binary, read from its source."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  defined, aliases = set(), {}
  for node in ast.walk(tree):
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
      continue
    name = node.func.attr
    first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
    if name == "DEFINE_alias":
      aliases[first] = node.args[1].value
    elif name.startswith("DEFINE_") and isinstance(first, str):
      defined.add(first)
    elif name == "define" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
      given = [k.value.value for k in node.keywords if k.arg == "name"]
      defined.add(given[0] if given else node.args[1].value)
  return defined, aliases


@_SOURCE_TREE
def test_binaries_use_one_name_for_one_thing():
  binaries = _binaries()
  assert any(p.endswith("train_main.py") for p in binaries)
  for path in binaries:
    defined, aliases = _flag_names(path)
    assert not defined & set(RENAMED), (path, sorted(defined & set(RENAMED)))
    for old, new in aliases.items():
      # An alias only keeps an old spelling alive, pointing at its new name.
      assert RENAMED.get(old) == new, (path, old, new)


@_SOURCE_TREE
def test_commands_in_docs_use_one_name_for_one_thing():
  files = ["README.md", "Makefile", ".ci/run"] + sorted(
      os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
  for name in files:
    with open(os.path.join(ROOT, name)) as f:
      text = f.read()
    for old, new in RENAMED.items():
      assert f"--{old}" not in text, f"{name}: --{old} is spelled --{new}"
