"""shave_main prints the Table-3 comparison for a saved Keras model."""

from absl import flags
from absl.testing import flagsaver

from export.shave import shave_main
import tf_keras as keras  # after export: hand25d sets TF_USE_LEGACY_KERAS first


def test_main_prints_the_comparison_for_a_saved_model(tmp_path, capsys):
  inputs = keras.Input((16, 24, 1), batch_size=1)
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                          name="stem")(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="comb")(x)
  path = str(tmp_path / "tiny.keras")
  keras.Model(inputs, x).save(path)
  flags.FLAGS.mark_as_parsed()
  with flagsaver.flagsaver(keras_model=path, dtype="fp32", slice_kb=32):
    shave_main.main(["shave_main"])
  out = capsys.readouterr().out
  assert "float32" in out and "of 32768 B" in out
  assert "naive planar im2col + GEMM" in out and "speed-up" in out
  assert "stem" in out and "comb" in out
