"""Runs a binary's main() on several command lines in one child process, as app.run would.

A `*_main` module defines its flags on absl's global FLAGS when imported, so
two binaries with a flag of the same name cannot be imported into one test
process; and every child process that imports TensorFlow costs seconds. So
`run` starts one child per binary, and per command line parses the flags and
calls main(), reporting how it ended:

  ("ok", "")                     main() returned
  ("flags", message)             the flags were refused when parsed (absl:
                                 "FATAL Flags parsing error: <message>")
  ("usage", message)             main() raised app.UsageError
  ("exit", message)              main() raised SystemExit(message)

with what the command logged (absl logging, stderr). Anything else is a
traceback in the child, and `run` fails the test with it.
"""

import json
import os
import subprocess
import sys
from typing import NamedTuple

_MARK = "<<<case>>>"

_DRIVER = f"""
import json, sys
module_name, cases = sys.argv[1], json.loads(sys.stdin.read())
sys.argv = [module_name]  # Quiet TensorFlow (hand25d.console reads sys.argv).
import importlib
from absl import app, flags, logging
module = importlib.import_module(module_name)
logging.use_absl_handler()
results = []
for argv in cases:
  sys.stderr.write({_MARK!r} + "\\n")
  sys.stderr.flush()
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS([module_name, *argv])
    module.main([])
    results.append(("ok", ""))
  except flags.Error as e:
    results.append(("flags", str(e)))
  except app.UsageError as e:
    results.append(("usage", str(e)))
  except SystemExit as e:
    results.append(("exit", str(e.code)))
  logging.flush()
  sys.stderr.flush()
print(json.dumps(results))
"""


class Outcome(NamedTuple):
  kind: str  # ok, flags, usage or exit.
  message: str
  log: str  # What the command wrote to stderr.


def child_env() -> dict[str, str]:
  """The environment of a child Python that imports what this process imports.

  The child gets this process's module search path, in its order: under
  Bazel that is the test's runfiles tree, where numba can write its cache
  (the source tree outside the sandbox is read-only there).
  """
  return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def run(module: str, cases: list[list[str]], cwd: str) -> list[Outcome]:
  """The outcome of `module`.main() for each command line (flags only) in `cases`."""
  env = child_env()
  proc = subprocess.run([sys.executable, "-c", _DRIVER, module], input=json.dumps(cases),
                        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  logs = proc.stderr.split(_MARK + "\n")[1:]
  results = json.loads(proc.stdout.strip().splitlines()[-1])
  assert len(results) == len(logs) == len(cases), proc.stderr[-3000:]
  return [Outcome(kind, message, log) for (kind, message), log in zip(results, logs)]
