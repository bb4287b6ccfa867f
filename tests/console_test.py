"""Console conventions: scripts in pyproject.toml, quiet TensorFlow, usage on bad flags.

And in a runtime-only install (`pip install hand25d`, no extra) every command
stops with one line naming the extra to install, not a traceback.
"""

import ast
import os
import subprocess
import sys
import tomllib

import pytest

from hand25d import console
from hand25d import extras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The one script whose binary never imports TensorFlow (tests/layers_test.py):
# it needs the `track` extra, every other script the `train` extra.
TF_FREE = {"hand25d.runtime.demo.run_main"}


def _scripts() -> dict[str, str]:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["project"]["scripts"]


@pytest.mark.parametrize("argv, level", [
    (["x"], 0), (["x", "--verbosity=1"], 1), (["x", "-v", "2"], 2), (["x", "--v=-1"], -1),
    (["x", "--verbosity", "3", "--other"], 3), (["x", "--verbosity=loud"], 0),
])
def test_verbosity_is_read_from_the_command_line(argv, level):
  assert console.verbosity(argv) == level
  assert console.quiet(argv) == (level < console.VERBOSE)


def test_every_script_runs_an_absl_main_that_quiets_tensorflow_first():
  scripts = _scripts()
  assert {"hand25d-generate", "hand25d-train", "hand25d-eval", "hand25d-export",
          "hand25d-track"} <= set(scripts)
  for name, target in scripts.items():
    module, function = target.split(":")
    assert name.startswith("hand25d-") and function == "run", (name, target)
    with open(os.path.join(ROOT, *module.split(".")) + ".py") as f:
      tree = ast.parse(f.read())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body), module
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    first = (imports[0].module, [a.name for a in imports[0].names])
    if module in TF_FREE:
      assert first == ("hand25d", ["extras"]), (module, first)
    else:
      assert first == ("hand25d", ["console"]), (module, first)


@pytest.mark.parametrize("script", sorted(_scripts()))
def test_a_runtime_only_install_refuses_each_command_in_one_line(script):
  """A child process where no module of the extras can be found runs the console script."""
  module = _scripts()[script].split(":")[0]
  extra = "track" if module in TF_FREE else "train"
  code = (f"import sys\nfor name in {sorted(extras.PROVIDES['train'])!r}:\n"
          f"  sys.modules[name] = None  # importlib finds none of them\n"
          f"sys.argv = [{script!r}, '--help']\nfrom {module} import run\nrun()\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 1 and not result.stdout, (result.stdout, result.stderr)
  assert result.stderr == (f"{script} needs {', '.join(extras.PROVIDES[extra].values())} "
                           f"(not installed): pip install 'hand25d[{extra}]'\n"), result.stderr


def _run(*args):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300, check=False)


@pytest.mark.slow  # Starts binaries in child processes.
def test_a_failing_command_is_quiet_and_verbosity_brings_tensorflow_back(tmp_path):
  args = ["hand25d.eval_main", f"--data={tmp_path}", f"--checkpoint={tmp_path}/none",
          f"--out={tmp_path}/out"]
  quiet = _run(*args)
  assert quiet.returncode == 1
  assert quiet.stderr.strip() == f"evaluation failed: checkpoint {tmp_path}/none not found " \
                                 f"(no {tmp_path}/none.index)", quiet.stderr
  loud = _run(*args, "--verbosity=1")
  assert loud.returncode == 1
  assert "I0000" in loud.stderr or "InitializeLog" in loud.stderr, loud.stderr


@pytest.mark.slow  # Starts binaries in child processes.
def test_a_bad_flag_value_gives_usage_not_a_traceback(tmp_path):
  result = _run("hand25d.train_main", f"--data={tmp_path}", f"--workdir={tmp_path}/run",
                "--batch_size=0")
  assert result.returncode == 1
  assert "Traceback" not in result.stderr + result.stdout
  assert "batch_size must be >= 1, got 0" in result.stderr + result.stdout
  assert "--workdir" in result.stderr + result.stdout  # The usage message lists the flags.


def test_tensorflows_absl_records_are_dropped_and_ours_name_their_file(tmp_path):
  """absl's logger is set up before the filter is added, so records name their real source."""
  code = ("import sys\nsys.argv = ['x']\n"
          "from hand25d import console\n"
          "from absl import logging\n"
          "import tensorflow as tf\n"
          "logging.use_absl_handler()\nlogging.set_verbosity(logging.INFO)\n"
          "logging.info('ours')\n"
          "tf.train.Checkpoint(v=tf.Variable(1.0)).write(sys.argv[0] + '_ckpt')\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  result = subprocess.run([sys.executable, "-c", code.replace("'x'", repr(str(tmp_path / "c")))],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr
  assert "<string>:8] ours" in result.stderr, result.stderr
  # TensorFlow's checkpoint writer logs "Sharding callback duration" through absl.
  assert "Sharding callback" not in result.stderr, result.stderr


@pytest.mark.parametrize("preset, enabled", [(None, "True"), ("0", "False")])
def test_binaries_run_onednn_kernels_unless_the_environment_says_otherwise(preset, enabled):
  """TensorFlow turns oneDNN on by itself only on some CPUs; console turns it on everywhere."""
  code = ("import sys\nsys.argv = ['x']\nfrom hand25d import console\nimport tensorflow\n"
          "from tensorflow.python.util import _pywrap_util_port\n"
          "print(_pywrap_util_port.IsMklEnabled())\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
  env.pop("TF_ENABLE_ONEDNN_OPTS", None)
  if preset is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = preset
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == enabled, result.stdout
