"""Every `module.name` the code reads from one of hand25d's own modules exists.

A function moved to another module leaves callers that only fail when they
run, and some run rarely (a benchmark's --model_dir path, an error branch).
This reads the source, not the modules: for every file of hand25d/, export/,
benchmarks/ and tests/, each `alias.name` read where `alias` is a module of
this repository (`from hand25d import spec`, `import export.config as c`)
must name something that module's source defines at its top level (a def, a
class, an assignment, an import) or a submodule of a package.
"""

import ast
import glob
import os

import pytest

# Reads the repository's source tree, which Bazel's sandbox holds only in part.
pytestmark = pytest.mark.skipif("TEST_SRCDIR" in os.environ,
                                reason="reads the whole source tree; runs under pytest")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("hand25d", "export", "benchmarks")


def _module_file(dotted: str):
  """The source file of a repository module, or None (not ours, or not a module)."""
  base = os.path.join(ROOT, *dotted.split("."))
  for path in (base + ".py", os.path.join(base, "__init__.py")):
    if os.path.isfile(path):
      return path
  return None


def _top_level_names(path: str):
  """Names a module's source binds at its top level; None if it binds them dynamically."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  names = set()

  def targets(node):
    if isinstance(node, ast.Name):
      names.add(node.id)
    elif isinstance(node, (ast.Tuple, ast.List)):
      for element in node.elts:
        targets(element)
    elif isinstance(node, ast.Starred):
      targets(node.value)

  def visit(body):
    for node in body:
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(node.name)
      elif isinstance(node, ast.Assign):
        for target in node.targets:
          targets(target)
      elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets(node.target)
      elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
          names.add((alias.asname or alias.name).split(".")[0])
      elif isinstance(node, (ast.For, ast.AsyncFor)):
        targets(node.target)
        visit(node.body + node.orelse)
      elif isinstance(node, (ast.If, ast.While)):
        visit(node.body + node.orelse)
      elif isinstance(node, (ast.With, ast.AsyncWith)):
        visit(node.body)
      elif isinstance(node, ast.Try):
        visit(node.body + node.orelse + node.finalbody
              + [n for h in node.handlers for n in h.body])

  visit(tree.body)
  if "__getattr__" in names:
    return None
  for node in ast.walk(tree):
    if isinstance(node, ast.Global):
      names.update(node.names)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id == "globals"):
      return None
  if path.endswith("__init__.py"):  # A package's submodules are its attributes too.
    directory = os.path.dirname(path)
    names.update(os.path.splitext(n)[0] for n in os.listdir(directory)
                 if n.endswith(".py") or os.path.isfile(os.path.join(directory, n, "__init__.py")))
  return names


def _module_aliases(tree: ast.Module) -> dict:
  """{local name: dotted module} of the file's imports of repository modules."""
  aliases = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        dotted = f"{node.module}.{alias.name}"
        if dotted.split(".")[0] in PACKAGES and _module_file(dotted):
          aliases[alias.asname or alias.name] = dotted
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.asname and alias.name.split(".")[0] in PACKAGES and _module_file(alias.name):
          aliases[alias.asname] = alias.name
  # A name also bound otherwise (an argument, an assignment) may not be the module there.
  for node in ast.walk(tree):
    if isinstance(node, ast.arg):
      aliases.pop(node.arg, None)
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
      aliases.pop(node.id, None)
  return aliases


def _sources():
  paths = []
  for top in PACKAGES + ("tests",):
    paths += glob.glob(os.path.join(ROOT, top, "**", "*.py"), recursive=True)
  return sorted(paths)


def missing_attributes(path: str) -> list:
  """(line, 'alias.name', module) of every read of a name the module does not define."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  aliases = _module_aliases(tree)
  defined = {}
  missing = []
  for node in ast.walk(tree):
    if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
            and isinstance(node.value, ast.Name) and node.value.id in aliases):
      continue
    module = aliases[node.value.id]
    if module not in defined:
      defined[module] = _top_level_names(_module_file(module))
    names = defined[module]
    if names is not None and node.attr not in names:
      missing.append((node.lineno, f"{node.value.id}.{node.attr}", module))
  return missing


def test_every_module_attribute_read_exists():
  sources = _sources()
  assert len(sources) > 100
  problems = {os.path.relpath(p, ROOT): m for p in sources if (m := missing_attributes(p))}
  assert not problems, problems


def test_a_moved_function_is_found(tmp_path):
  """The check itself: a read of a name its module lacks is reported with its line."""
  stale = tmp_path / "stale.py"
  stale.write_text("from export import exporter\nfrom hand25d import spec\n\n"
                   "print(spec.INPUT_HEIGHT)\nprint(exporter.no_such_function('float32'))\n")
  assert missing_attributes(str(stale)) == [(5, "exporter.no_such_function", "export.exporter")]


def test_top_level_names_are_read_from_the_source():
  assert {"model_name", "ExportConfig"} <= _top_level_names(_module_file("export.config"))
  # A package's submodules are its attributes.
  assert {"generate", "records", "pipeline"} <= _top_level_names(_module_file("hand25d.data"))
  # A module with a module-level __getattr__ can have any attribute: not checked.
  assert _top_level_names(_module_file("hand25d")) is None


def test_a_local_of_a_module_name_is_not_the_module(tmp_path):
  shadowed = tmp_path / "shadowed.py"
  shadowed.write_text("from export import exporter\n\n\ndef f(exporter):\n"
                      "  return exporter.anything\n")
  assert missing_attributes(str(shadowed)) == []
