"""Every binary ends a missing or unreadable input in one line that names it, not a traceback.

Each `*_main` module of the repository is either in CASES, with command
lines whose input path does not exist or holds the wrong content, or in
NO_INPUT, with why it reads no path; test_every_binary_is_covered keeps the
two complete, so a new binary must say how it refuses bad input.
"""

import glob
import os
import shutil

import pytest

import cli_cases

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = "no_such_input"  # Relative to the child's working directory, a tmp_path.
FIXTURE = os.path.join(_ROOT, "testdata", "tof_tiny")  # A valid data set.

# module -> command lines (flags only); "{bad_blob}", "{bad_results}",
# "{other_run}", "{bad_config_run}" and "{small_data}" are made by the test: a
# truncated SHAVE blob, a results directory holding a summary that is not
# JSON, a working directory holding a run of another config, one whose
# config.json is not JSON, and a valid data set with fewer training frames (8)
# than the batch asked for.
CASES = {
    "export.shave.shave_main": [
        [f"--blob={MISSING}.blob"],
        ["--blob={bad_blob}"],
        [f"--keras_model={MISSING}.keras"],
    ],
    "export.tflite_main": [[f"--checkpoint={MISSING}", "--out=export"]],
    "hand25d.data.import_coco_main": [[f"--json={MISSING}.json", "--out=imported"]],
    "hand25d.data.preview_main": [[f"--data={MISSING}", "--out=preview.png"]],
    "hand25d.data.resize_main": [[f"--data={MISSING}", "--out=resized"]],
    "hand25d.eval_main": [[f"--data={MISSING}", f"--checkpoint={MISSING}", "--out=eval"]],
    "hand25d.experiments.reproduce_main": [
        [f"--data={MISSING}", "--workdir=runs", "--results_dir=results"],
        [f"--data={FIXTURE}", "--workdir=runs", "--results_dir={bad_results}",
         "--rows=all_supervision", "--seeds=0", "--batch_size=2", "--epochs=1"],
        ["--data={small_data}", "--workdir=runs", "--results_dir=results",
         "--rows=all_supervision", "--seeds=0", "--batch_size=16", "--epochs=1"],
    ],
    "hand25d.experiments.results_main": [
        [f"--results_dir={MISSING}", "--out=results.md", "--nofigure"],
        ["--results_dir={bad_results}", "--out=results.md", "--nofigure"],
    ],
    "hand25d.experiments.timing_main": [[f"--data={MISSING}", "--results_dir=results"]],
    "hand25d.runtime.demo.run_main": [
        [f"--input={MISSING}", "--out=track"],
        ["--input=synthetic", f"--model={MISSING}.tflite", "--out=track"],
    ],
    "hand25d.train_main": [
        [f"--data={MISSING}", "--workdir=run"],
        [f"--data={MISSING}", "--workdir=run", f"--init_from={MISSING}"],
        [f"--data={FIXTURE}", "--workdir={other_run}", "--batch_size=4", "--epochs=1"],
        [f"--data={FIXTURE}", "--workdir={bad_config_run}", "--batch_size=4", "--epochs=1"],
        ["--data={small_data}", "--workdir=run", "--batch_size=16", "--epochs=1"],
    ],
}
# Binaries that read no input path, and what they read instead.
NO_INPUT = {
    "export.pretrained_main": "generates its own data set from the recipe's seed",
    "export.shave.build_main": "compiles the repository's C sources",
    "hand25d.data.generate_main": "renders frames from a seed",
    "hand25d.model.card_main": "builds the network from its config",
}


@pytest.mark.skipif("TEST_SRCDIR" in os.environ,
                    reason="globs the workspace, which Bazel's sandbox does not hold")
def test_every_binary_is_covered():
  found = {os.path.relpath(path, _ROOT)[:-3].replace(os.sep, ".")
           for path in glob.glob(os.path.join(_ROOT, "**", "*_main.py"), recursive=True)
           if not os.path.relpath(path, _ROOT).startswith((".venv", "runs", "bazel-"))}
  assert found == set(CASES) | set(NO_INPUT)
  assert not set(CASES) & set(NO_INPUT)


def _bad_inputs(directory) -> dict:
  bad_blob = directory / "truncated.blob"
  bad_blob.write_bytes(b"HB")
  bad_results = directory / "bad_results"
  bad_results.mkdir()
  (bad_results / "all_supervision_seed0.json").write_text('{"seed": 0, "row": ')
  other_run = directory / "other_run"
  other_run.mkdir()
  (other_run / "config.json").write_text('{"seed": 7, "learning_rate": 0.5}')
  bad_config_run = directory / "bad_config_run"
  bad_config_run.mkdir()
  (bad_config_run / "config.json").write_text('{"seed": ')
  return {"bad_blob": str(bad_blob), "bad_results": str(bad_results),
          "other_run": str(other_run), "bad_config_run": str(bad_config_run),
          "small_data": str(shutil.copytree(FIXTURE, directory / "small_data"))}


@pytest.mark.parametrize("module", sorted(CASES))
def test_bad_input_ends_in_one_line_naming_it(module, tmp_path):
  bad = _bad_inputs(tmp_path)
  cases = [[arg.format(**bad) for arg in argv] for argv in CASES[module]]
  outcomes = cli_cases.run(module, cases, cwd=str(tmp_path))
  for argv, outcome in zip(cases, outcomes):
    assert outcome.kind in ("exit", "usage"), (argv, outcome)
    values = [arg.split("=", 1)[1] for arg in argv if "=" in arg]
    named = [os.path.basename(v) for v in values if MISSING in v or v in bad.values()]
    assert named and all(name in outcome.message for name in named), (argv, outcome.message)
    assert "\n" not in outcome.message.strip(), outcome.message
