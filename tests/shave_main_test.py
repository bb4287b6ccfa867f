"""shave_main prints the Table-3 comparison for a saved Keras model or a deployment blob.

The binary runs in a child process, as a user runs it (absl flags are
process-global: several mains cannot share one test process).
"""

import os
import subprocess
import sys

from export import convert
from export.shave import blob
import pytest
import tf_keras as keras

# Each test starts the binary (TensorFlow and the SHAVE compiler) in a child process.
pytestmark = pytest.mark.slow

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


def _tiny_model(shape=(16, 24, 1), name="image") -> keras.Model:
  inputs = keras.Input(shape, batch_size=1, name=name)
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                          name="stem")(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="comb")(x)
  return keras.Model(inputs, x)


def _shave_main(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
  proc = subprocess.run([sys.executable, "-m", "export.shave.shave_main", *args],
                        capture_output=True, text=True, check=False)
  assert (proc.returncode == 0) == ok, proc.stderr[-2000:]
  return proc


def _tiny_blob_and_tflite(tmp_path) -> tuple[str, str]:
  """An fp32 blob and the float32 TFLite model of one tiny network at the fixture's size."""
  model = _tiny_model((120, 160, 1), name="amplitude")
  blob_path, tflite_path = str(tmp_path / "tiny.blob"), str(tmp_path / "tiny.tflite")
  blob.write_blob(model, blob_path, "fp32")
  with open(tflite_path, "wb") as f:
    f.write(convert.to_tflite(model, "float32"))
  return blob_path, tflite_path


def test_main_prints_the_comparison_for_a_saved_model(tmp_path):
  path = str(tmp_path / "tiny.keras")
  _tiny_model().save(path)
  out = _shave_main(f"--keras_model={path}", "--dtype=fp32", "--slice_kb=32").stdout
  assert "float32" in out and "of 32768 B" in out
  assert "naive planar im2col + GEMM" in out and "speed-up" in out
  assert "stem" in out and "comb" in out


def test_main_saves_a_blob_and_reports_on_it(tmp_path):
  model_path, blob_path = str(tmp_path / "tiny.keras"), str(tmp_path / "tiny.blob")
  _tiny_model().save(model_path)
  saved = _shave_main(f"--keras_model={model_path}", f"--save_blob={blob_path}",
                      "--slice_kb=64").stdout
  assert f"wrote {blob_path}" in saved and "'layers': 2" in saved
  out = _shave_main(f"--blob={blob_path}").stdout
  size = os.path.getsize(blob_path)
  assert f"{blob_path}: SHAVE blob v{blob.VERSION}, 2 layers, {size} bytes" in out
  assert "float16" in out and "of 65536 B" in out
  # The same table as for the model the blob was written from.
  assert out.split("\n\n", 1)[1] == saved.split("\n\n", 1)[1]
  assert "drop --dtype" in _shave_main(f"--blob={blob_path}", "--dtype=fp32", ok=False).stderr
  assert "--tflite needs --blob and --data" in _shave_main(f"--tflite={blob_path}",
                                                               ok=False).stderr


def test_main_compares_a_blob_with_tflite_on_test_frames(tmp_path):
  blob_path, tflite_path = _tiny_blob_and_tflite(tmp_path)
  # --data_dir: the old name of --data, still taken (an alias, for one release).
  out = _shave_main(f"--blob={blob_path}", f"--tflite={tflite_path}",
                    f"--data_dir={FIXTURE}").stdout
  assert "vs float32 TFLite over 3 frames" in out
  assert "arg-max identical on" in out and "/24 keypoints" in out


def test_main_runs_a_blob_in_the_c_kernel_against_tflite(tmp_path):
  blob_path, tflite_path = _tiny_blob_and_tflite(tmp_path)
  out = _shave_main(f"--blob={blob_path}", f"--tflite={tflite_path}", f"--data={FIXTURE}",
                    "--runner=c").stdout
  # The C kernel's slice and DMA figures are checked against the simulator's.
  assert "C kernel: peak slice" in out and "both equal to the simulator's" in out
  assert "vs float32 TFLite over 3 frames" in out
  assert "arg-max identical on 24/24 keypoints (100.0%)" in out
