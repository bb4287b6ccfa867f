"""MultiWorkerMirroredStrategy: two worker processes on localhost train one run."""

import json
import os
import socket
import subprocess
import sys

from hand25d.training import config as config_lib

import pytest
import tensorflow as tf

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


@pytest.mark.slow
def test_two_workers_train_one_run(tmp_path):
  workers = [f"localhost:{p}" for p in _free_ports(2)]
  procs, logs = [], []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    # Logs go to files: a worker blocked on a full pipe would stall the other.
    logs.append(tmp_path / f"worker{index}.log")
    with open(logs[-1], "w") as log:
      procs.append(subprocess.Popen(
          [sys.executable, "-m", "hand25d.train_main", f"--data={DATA}",
           f"--workdir={tmp_path / 'run'}", "--distribution=multi_worker", "--batch_size=4",
           "--epochs=1", "--eval_every=100", "--checkpoint_every=1"],
          env=env, stdout=log, stderr=subprocess.STDOUT))
  for p in procs:
    p.wait(timeout=600)
  outputs = [log.read_text() for log in logs]
  for index, (p, out) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"worker {index} failed:\n{out[-3000:]}"
    assert "finished at step 2/2" in out
  # The chief (worker 0) kept the run; worker 1's scratch copies are gone.
  run = tmp_path / "run"
  assert config_lib.load(str(run)).distribution == "multi_worker"
  assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-2")
  assert not [d for d in os.listdir(run) if d.startswith(".scratch")]
