"""pyproject.toml's dependencies: a runtime install without TensorFlow, ranges, constraints.txt.

`pip install hand25d` (or `hand25d[runtime]`) is the deployable runtime; the
extras add what the commands need (hand25d/extras.py). The third-party
modules the runtime's sources import (tests/source_imports.py) are mapped to
the distributions that install them with
importlib.metadata.packages_distributions(), so a new import the runtime
install lacks fails here, not on a user's device. constraints.txt pins the
exact versions `make` and CI install; each pin must lie in pyproject's range.
"""

import importlib.metadata
import os
import re
import tomllib

from packaging import requirements
from packaging import utils
from packaging import version
import pytest

from hand25d import extras
import source_imports

ROOT = source_imports.ROOT
# Only training needs these: the runtime install must not have them, not even
# as a dependency of a dependency.
TRAINING_SIDE = frozenset({"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "tensorboard",
                           "tensorflow-model-optimization", "matplotlib"})
# The dependencies pinned exactly, each with its reason in pyproject.toml.
EXACT = frozenset({"tflite-micro"})


def _project() -> dict:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["project"]


PROJECT = _project()


def _requirements(extra: str | None = None) -> list[requirements.Requirement]:
  """The base's requirements (extra None) or an extra's, with hand25d[...] expanded."""
  listed = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
  found = []
  for text in listed:
    requirement = requirements.Requirement(text)
    if utils.canonicalize_name(requirement.name) == PROJECT["name"]:
      for name in sorted(requirement.extras):
        found += _requirements(name)
    else:
      found.append(requirement)
  return found


def _names(reqs: list[requirements.Requirement]) -> set[str]:
  return {utils.canonicalize_name(r.name) for r in reqs}


def _every_requirement() -> list[requirements.Requirement]:
  return _requirements() + [r for e in PROJECT["optional-dependencies"] for r in _requirements(e)]


RUNTIME = _requirements() + _requirements("runtime")


def _constraints() -> dict[str, version.Version]:
  """constraints.txt as {distribution: pinned version}."""
  pins = {}
  with open(os.path.join(ROOT, "constraints.txt")) as f:
    for number, line in enumerate(f, start=1):
      line = line.split("#")[0].strip()
      if not line:
        continue
      match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
      assert match, f"constraints.txt:{number}: {line!r} is not name==version"
      name = utils.canonicalize_name(match[1])
      assert name not in pins, f"constraints.txt:{number}: {name} is pinned twice"
      pins[name] = version.Version(match[2])
  return pins


def _installed_closure(reqs: list[requirements.Requirement]) -> dict[str, str]:
  """Every distribution `reqs` install, read from the installed metadata: name -> who asked."""
  found, todo = {}, [(r, "pyproject.toml") for r in reqs]
  while todo:
    requirement, parent = todo.pop()
    name = utils.canonicalize_name(requirement.name)
    if name in found:
      continue
    found[name] = parent
    try:
      children = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
      pytest.fail(f"{name} (asked for by {parent}) is not installed; `make test` installs it")
    for text in children:
      child = requirements.Requirement(text)
      wanted = {""} | set(requirement.extras)
      if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in wanted):
        todo.append((child, name))
  return found


def test_the_runtime_install_has_no_training_side():
  assert not _names(RUNTIME) & TRAINING_SIDE, sorted(_names(RUNTIME) & TRAINING_SIDE)
  pulled_in = _installed_closure(RUNTIME)
  assert "numpy" in pulled_in and "ai-edge-litert" in pulled_in
  bad = {name: parent for name, parent in pulled_in.items() if name in TRAINING_SIDE}
  assert not bad, f"the runtime install pulls in (package: asked for by) {bad}"


def _unprovided(modules: set[str], reqs: list[requirements.Requirement]) -> list[str]:
  """What `modules` import that no distribution of `reqs` installs, one line each."""
  providers = importlib.metadata.packages_distributions()
  allowed = _names(reqs)
  missing = []
  for module in sorted(modules):
    for name in sorted(source_imports.third_party(source_imports.HAND25D[module])):
      dists = {utils.canonicalize_name(d) for d in providers.get(name, [])}
      if not dists & allowed:
        missing.append(f"{module} imports {name}, installed by {sorted(dists) or 'nothing'}")
  return missing


@source_imports.SOURCE_TREE
def test_the_runtime_imports_only_what_the_runtime_install_has():
  modules = source_imports.runtime_modules()
  assert {"hand25d.runtime.tracker", "hand25d.litert", "hand25d.sensor"} <= modules
  assert not _unprovided(modules, RUNTIME), "\n".join(_unprovided(modules, RUNTIME))


@source_imports.SOURCE_TREE
def test_hand25d_track_imports_only_what_the_track_extra_adds():
  modules = source_imports.closure({"hand25d.runtime.demo.run_main"})
  assert "hand25d.runtime.demo.report" in modules
  reqs = RUNTIME + _requirements("track")
  assert not _unprovided(modules, reqs), "\n".join(_unprovided(modules, reqs))
  assert not _names(reqs) & (TRAINING_SIDE - {"matplotlib"})


def test_the_refusals_name_the_extras_of_pyproject():
  providers = importlib.metadata.packages_distributions()
  assert set(extras.PROVIDES) == set(PROJECT["optional-dependencies"]) - {"runtime", "test"}
  for extra, provides in extras.PROVIDES.items():
    assert {utils.canonicalize_name(d) for d in provides.values()} == _names(
        _requirements(extra)), extra
    for module, dist in provides.items():
      installed_by = {utils.canonicalize_name(d) for d in providers.get(module, [])}
      assert utils.canonicalize_name(dist) in installed_by, (module, dist, installed_by)


def test_dependencies_are_ranges_unless_pinned_for_a_reason():
  for requirement in _every_requirement():
    name = utils.canonicalize_name(requirement.name)
    operators = sorted(s.operator for s in requirement.specifier)
    if name in EXACT:
      assert operators == ["=="], requirement
    else:
      assert operators == ["<", ">="], f"{requirement}: want a range, >=tested,<next major"


def test_every_dependency_is_pinned_in_its_range():
  pins = _constraints()
  assert PROJECT["name"] not in pins
  for requirement in _every_requirement():
    name = utils.canonicalize_name(requirement.name)
    assert name in pins, f"{name} has no pin in constraints.txt"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}")
