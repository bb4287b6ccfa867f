"""What hand25d's and export's sources import, read with `ast`; which modules are the runtime.

Shared by tests/layers_test.py (which layer may import which) and
tests/packaging_test.py (which distributions the runtime and the commands
need). Imports are read from the sources, those inside functions too, so a
lazy import counts as much as one at the top.
"""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Inside `bazel test` the sandbox holds only a test's declared inputs, not the
# whole source tree: the tests that read it run under pytest (make test).
SOURCE_TREE = pytest.mark.skipif(
    "TEST_SRCDIR" in os.environ, reason="reads the whole source tree; runs under pytest")
OURS = ("hand25d", "export")


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _resolve(module: str, name: str) -> str:
  """`from module import name`: the module name of `name` if it is a module, else `module`."""
  candidate = f"{module}.{name}".replace(".", os.sep)
  if os.path.exists(os.path.join(ROOT, candidate + ".py")) or os.path.exists(
      os.path.join(ROOT, candidate, "__init__.py")):
    return f"{module}.{name}"
  return module


def imports(path: str) -> set[str]:
  """Every module the file imports, at any depth of its code."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      found.update(_resolve(node.module, alias.name) for alias in node.names)
  return found


def _sources(package: str) -> dict[str, set[str]]:
  """Module name -> its imports, for every .py file under ROOT/package."""
  modules = {}
  for directory, subdirs, files in os.walk(os.path.join(ROOT, package)):
    subdirs[:] = [d for d in subdirs if not d.startswith((".", "__"))]
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        modules[_module_name(path)] = imports(path)
  return modules


# Module name -> the modules it imports.
HAND25D = _sources("hand25d")
EXPORT = _sources("export")


def ours(imports: set[str]) -> set[str]:
  """The hand25d and export modules among `imports`."""
  return {m for m in imports if m.split(".")[0] in OURS}


def third_party(imports: set[str]) -> set[str]:
  """The top-level names of `imports` that are neither ours nor the standard library's."""
  return {m.split(".")[0] for m in imports} - set(OURS) - set(sys.stdlib_module_names)


def is_runtime_core(module: str) -> bool:
  """True for hand25d.runtime and its modules, the demo left out."""
  return (module == "hand25d.runtime" or module.startswith("hand25d.runtime.")) and not (
      module == "hand25d.runtime.demo" or module.startswith("hand25d.runtime.demo."))


def closure(modules: set[str]) -> set[str]:
  """`modules` and every hand25d module they import, transitively, with their packages."""
  seen, todo = set(), list(modules)
  while todo:
    module = todo.pop()
    if module in seen or module not in HAND25D:
      continue
    seen.add(module)
    parts = module.split(".")
    todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    todo.extend(m for m in HAND25D[module] if m.split(".")[0] == "hand25d")
  return seen


def runtime_modules() -> set[str]:
  """The deployable runtime: hand25d.runtime without the demo, and what it imports."""
  return closure({m for m in HAND25D if is_runtime_core(m)})
