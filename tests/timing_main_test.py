"""timing_main on the fixture: a line per timed row, and the record it writes."""

import json
import os
import subprocess
import sys

import cli_cases

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


def test_prints_each_row_and_writes_the_timing_record(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "hand25d.experiments.timing_main", f"--data={FIXTURE}",
       f"--results_dir={tmp_path}", "--rows=amplitude_no_aux", "--steps=1", "--batch_size=2"],
      env=cli_cases.child_env(), capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("amplitude_no_aux: ") and "train examples/s" in lines[0]
  assert lines[-1] == f"wrote {tmp_path / 'timing.json'}"
  with open(tmp_path / "timing.json") as f:
    record = json.load(f)
  assert list(record["rows"]) == ["amplitude_no_aux"]
  assert record["rows"]["amplitude_no_aux"]["train_examples_per_s"] > 0
  assert record["rows"]["amplitude_no_aux"]["eval_examples_per_s"] > 0  # Tiny val split.
  assert record["batch_size"] == 2 and record["steps"] == 1
  assert record["data"]["splits"]["train"]["num_frames"] > 0
