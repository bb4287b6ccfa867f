"""The Bazel targets declare every hand25d/export module their sources import.

Bazel runs each test in a sandbox holding only the declared dependencies, so
a missing `deps` entry passes under pytest and fails only under
`bazel test //...`. This test reads the BUILD files and the sources' imports
and names each missing dependency, so `make test` catches it in a second.
"""

import os

import pytest

import source_imports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Inside `bazel test` the sandbox holds only this test's declared inputs, not
# the workspace's BUILD files and sources: the check runs under pytest.
pytestmark = pytest.mark.skipif(
    "TEST_SRCDIR" in os.environ,
    reason="checks the workspace's BUILD files; runs under pytest (make test)")
OUR_PACKAGES = ("hand25d", "export")
RULES = ("py_library", "py_binary", "py_test")


def _read_build(package: str) -> list[dict]:
  """The Python targets of //package as dicts (name, srcs, deps), labels absolute."""
  targets = []

  def rule(**kwargs):
    targets.append(kwargs)

  def pytest_test(name, deps=(), **kwargs):  # tests/defs.bzl's macro.
    del kwargs
    targets.append({"name": name, "srcs": [name + ".py", "pytest_runner.py"], "deps": deps})

  namespace = {r: rule for r in RULES}
  namespace.update(pytest_test=pytest_test, glob=lambda *a, **k: [],
                   load=lambda *a: None, package=lambda **k: None,
                   exports_files=lambda *a, **k: None, filegroup=lambda **k: None,
                   sh_binary=lambda **k: None, cc_library=lambda **k: None,
                   cc_test=lambda **k: None)
  with open(os.path.join(ROOT, package, "BUILD")) as f:
    exec(compile(f.read(), f"{package}/BUILD", "exec"), namespace)  # pylint: disable=exec-used
  for target in targets:
    target["label"] = f"//{package}:{target['name']}"
    target["srcs"] = [os.path.join(package, s) for s in target.get("srcs", [])]
    target["deps"] = [_absolute(d, package) for d in target.get("deps", [])]
  return targets


def _absolute(label: str, package: str) -> str:
  if label.startswith(":"):
    return f"//{package}{label}"
  if ":" not in label:
    return f"{label}:{label.rsplit('/', 1)[-1]}"
  return label


def _packages() -> list[str]:
  ignored = set()
  with open(os.path.join(ROOT, ".bazelignore")) as f:
    ignored = {line.strip().rstrip("/") for line in f if line.strip()}
  found = []
  for directory, subdirs, files in os.walk(ROOT):
    rel = os.path.relpath(directory, ROOT)
    subdirs[:] = [d for d in subdirs if not d.startswith(".") and
                  os.path.normpath(os.path.join(rel, d)) not in ignored]
    if "BUILD" in files and rel != ".":
      found.append(rel)
  return sorted(found)


def _module_file(module: str) -> str | None:
  path = module.replace(".", "/")
  for candidate in (path + ".py", os.path.join(path, "__init__.py")):
    if os.path.exists(os.path.join(ROOT, candidate)):
      return candidate
  return None


def _imported_files(source: str) -> set[str]:
  """Files of our packages that `source` imports, with their packages' __init__.py."""
  modules = source_imports.imports(os.path.join(ROOT, source))
  files = set()
  for module in modules:
    if module.split(".")[0] not in OUR_PACKAGES:
      continue
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
      found = _module_file(".".join(parts[:i]))
      if found:
        files.add(found)
  return files


def _targets() -> dict[str, dict]:
  return {t["label"]: t for p in _packages() for t in _read_build(p)}


def test_every_imported_module_is_a_declared_dependency():
  targets = _targets()
  provider = {src: label for label, t in targets.items() for src in t["srcs"]}

  def closure(label: str) -> set[str]:
    seen, todo = set(), [label]
    while todo:
      current = todo.pop()
      if current in seen:
        continue
      seen.add(current)
      if current not in targets:
        raise AssertionError(f"{label} depends on {current}, which no BUILD file defines")
      todo.extend(targets[current]["deps"])
    return seen

  missing = []
  for label, target in sorted(targets.items()):
    available = {src for dep in closure(label) for src in targets[dep]["srcs"]}
    for source in target["srcs"]:
      if not source.endswith(".py") or not os.path.exists(os.path.join(ROOT, source)):
        continue
      for needed in sorted(_imported_files(source) - available):
        missing.append(f"{label}: {source} imports {needed}, provided by "
                       f"{provider.get(needed, 'NO TARGET')}, not in its deps")
  assert not missing, "\n".join(missing)


def test_every_module_and_test_file_has_a_target():
  owned = {src for t in _targets().values() for src in t["srcs"]}
  orphans = []
  for package in OUR_PACKAGES + ("tests",):
    for directory, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        rel = os.path.relpath(os.path.join(directory, name), ROOT)
        if name.endswith(".py") and rel not in owned and name != "conftest.py":
          orphans.append(rel)
  assert not orphans, f"Python files no Bazel target builds: {sorted(orphans)}"


if __name__ == "__main__":
  raise SystemExit(pytest.main([__file__]))
