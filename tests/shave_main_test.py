"""shave_main prints the Table-3 comparison for a saved Keras model or a deployment blob."""

import os

from absl import app
from absl import flags
from absl.testing import flagsaver
import pytest

from export import convert
from export.shave import blob
from export.shave import shave_main
import tf_keras as keras  # after export: hand25d sets TF_USE_LEGACY_KERAS first

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


def _tiny_model(shape=(16, 24, 1), name="image") -> keras.Model:
  inputs = keras.Input(shape, batch_size=1, name=name)
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                          name="stem")(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="comb")(x)
  return keras.Model(inputs, x)


@pytest.fixture(autouse=True)
def parsed_flags():
  flags.FLAGS.mark_as_parsed()


def test_main_prints_the_comparison_for_a_saved_model(tmp_path, capsys):
  path = str(tmp_path / "tiny.keras")
  _tiny_model().save(path)
  with flagsaver.flagsaver(keras_model=path, dtype="fp32", slice_kb=32):
    shave_main.main(["shave_main"])
  out = capsys.readouterr().out
  assert "float32" in out and "of 32768 B" in out
  assert "naive planar im2col + GEMM" in out and "speed-up" in out
  assert "stem" in out and "comb" in out


def test_main_saves_a_blob_and_reports_on_it(tmp_path, capsys):
  model_path, blob_path = str(tmp_path / "tiny.keras"), str(tmp_path / "tiny.blob")
  _tiny_model().save(model_path)
  with flagsaver.flagsaver(keras_model=model_path, save_blob=blob_path, slice_kb=64):
    shave_main.main(["shave_main"])
  saved = capsys.readouterr().out
  assert f"wrote {blob_path}" in saved and "'layers': 2" in saved
  with flagsaver.flagsaver(blob=blob_path):
    shave_main.main(["shave_main"])
  out = capsys.readouterr().out
  assert f"{blob_path}: SHAVE blob v1, 2 layers, {os.path.getsize(blob_path)} bytes" in out
  assert "float16" in out and "of 65536 B" in out
  # The same table as for the model the blob was written from.
  assert out.split("\n\n", 1)[1] == saved.split("\n\n", 1)[1]
  with flagsaver.flagsaver(blob=blob_path, dtype="fp32"):
    with pytest.raises(app.UsageError, match="drop --dtype"):
      shave_main.main(["shave_main"])
  with flagsaver.flagsaver(tflite=blob_path):
    with pytest.raises(app.UsageError, match="--tflite needs --blob and --data_dir"):
      shave_main.main(["shave_main"])


def test_main_compares_a_blob_with_tflite_on_test_frames(tmp_path, capsys):
  model = _tiny_model((120, 160, 1), name="amplitude")
  blob_path, tflite_path = str(tmp_path / "tiny.blob"), str(tmp_path / "tiny.tflite")
  blob.write_blob(model, blob_path, "fp32")
  with open(tflite_path, "wb") as f:
    f.write(convert.to_tflite(model, "float32"))
  with flagsaver.flagsaver(blob=blob_path, tflite=tflite_path, data_dir=FIXTURE):
    shave_main.main(["shave_main"])
  out = capsys.readouterr().out
  assert "vs float32 TFLite over 3 frames" in out
  assert "arg-max identical on" in out and "/24 keypoints" in out
