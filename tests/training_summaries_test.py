"""TensorBoard: hyperparameters and pictures of fixed validation frames (hand25d.training.summaries)."""

import dataclasses
import os

from hand25d import spec
from hand25d.training import config as config_lib
from hand25d.training import loop
from hand25d.training import summaries

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata as hparams_metadata

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
H, W = spec.INPUT_HEIGHT, spec.INPUT_WIDTH


def test_hparams_are_the_config_flat_without_logging_fields():
  cfg = config_lib.TrainConfig(data_dir="d", learning_rate=3e-3, recipe="quick")
  values = summaries.hparams(cfg)
  assert values["learning_rate"] == 3e-3 and values["batch_size"] == 32
  assert values["recipe"] == "quick" and values["seed"] == 0
  assert values["loss.seg"] == 50.0 and values["model.backbone"] == "ours"
  assert values["model.tier3_dilations"] == "(1, 2, 3, 4)"
  assert not {"log_every_steps", "eval_every_steps", "progress", "summary_images"} & set(values)
  assert all(isinstance(v, (bool, int, float, str)) for v in values.values())


def _one_frame(xy_left, seg_known=1.0):
  """Targets of one frame with a present left hand, its primary keypoints all at xy_left."""
  xy = np.zeros((1, spec.NUM_SIDES, spec.NUM_KEYPOINTS, 2), np.float32)
  xy[0, 0] = xy_left
  visible = np.zeros((1, spec.NUM_SIDES, spec.NUM_KEYPOINTS), np.float32)
  visible[0, 0] = 1.0
  seg = np.zeros((1, H // 2, W // 2), np.int32)
  seg[0, :10, :10] = spec.SIDE_SEGMENTATION_CLASS[0]
  return {"keypoints_xy": xy, "keypoint_visible": visible,
          "hand_present": np.array([[1.0, 0.0]], np.float32), "segmentation": seg,
          "segmentation_known": np.array([seg_known], np.float32)}


def test_render_draws_the_label_and_the_decoded_prediction():
  images = np.zeros((1, H, W, 1), np.float32)
  maps = np.zeros((1, H // 2, W // 2, spec.NUM_PRIMARY_CHANNELS), np.float32)
  maps[0, 20, 30, :spec.NUM_PRIMARY_KEYPOINTS] = 10.0  # Left hand: cell (30, 20) -> pixel (60.5, 40.5).
  seg_logits = np.zeros((1, H // 2, W // 2, spec.NUM_SEGMENTATION_CLASSES), np.float32)
  seg_logits[..., spec.SIDE_SEGMENTATION_CLASS[1]] = 1.0  # All "right hand".
  outputs = {spec.KEYPOINTS: maps, spec.SEGMENTATION: seg_logits}
  pictures = summaries.render(images, outputs, _one_frame([100.0, 80.0]))
  assert pictures.shape == (1, 2 * H, 3 * 2 * W + 2 * 2, 3) and pictures.dtype == np.uint8
  left = np.array(summaries._SIDE_RGB[0])
  frame = pictures[0]
  # The prediction's x is centred on (60.5, 40.5) in input pixels: (121.5, 81.5) drawn.
  assert (frame[82, 122] == left).all() and (frame[80, 124] == left).all()
  # The label's open square of half-width 3 around (100, 80): (200.5, 160.5) drawn,
  # edges at rows and columns 158 and 164 (x.5 rounds up).
  assert (frame[158, 200] == left).all() and (frame[164, 204] == left).all()
  assert (frame[162, 200] == 0).all()
  # The error between them, dimmed: the 45-degree line through (160.5, 120.5) drawn.
  assert (frame[120:122, 160:162] == left // 2).all(axis=-1).any()
  # Nothing drawn for the absent right hand.
  assert not (frame[:, :2 * W] == summaries._SIDE_RGB[1]).all(axis=-1).any()
  # Predicted segmentation all right-hand; the label's corner left-hand.
  assert (frame[100, 2 * W + 2 + 100] == summaries._SIDE_RGB[1]).all()
  assert (frame[5, 2 * (2 * W + 2) + 5] == left).all()
  unknown = summaries.render(images, outputs, _one_frame([100.0, 80.0], seg_known=0.0))
  assert (unknown[0, 5, 2 * (2 * W + 2) + 5] == summaries._UNKNOWN_RGB).all()


def _events(directory):
  """(tag, plugin name, step, value proto) of every summary value under directory."""
  return [(value.tag, value.metadata.plugin_data.plugin_name, event.step, value)
          for event in summaries.events(directory) for value in event.summary.value]


def test_scalars_read_every_file_of_a_resumed_run_and_keep_the_last_value(tmp_path):
  for steps in ([(10, 5.0), (20, 4.0)], [(20, 3.5), (30, 3.0)]):  # A resume repeats step 20.
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
      for step, loss in steps:
        tf.summary.scalar("loss", loss, step=step)
        tf.summary.image("frames", np.zeros((1, 4, 4, 3), np.float32), step=step)
      tf.summary.text("note", "not a scalar", step=0)
    writer.close()
  assert len([n for n in os.listdir(tmp_path) if n.startswith("events.out.tfevents.")]) == 2
  assert summaries.scalars(str(tmp_path)) == {"loss": [(10, 5.0), (20, 3.5), (30, 3.0)]}
  assert summaries.scalars(str(tmp_path / "absent")) == {}
  assert [e.step for e in summaries.events(str(tmp_path)) if e.summary.value][:2] == [10, 10]


def test_event_files_are_read_in_the_order_of_their_creation_time(tmp_path):
  for stamp, step in ((10, 2), (9, 1)):  # As text "10" sorts before "9".
    writer = tf.summary.create_file_writer(str(tmp_path / "w"))
    with writer.as_default():
      tf.summary.scalar("loss", 1.0, step=step)
    writer.close()
    (name,) = os.listdir(tmp_path / "w")
    os.rename(tmp_path / "w" / name, tmp_path / f"events.out.tfevents.{stamp}.host.1.v2")
  (tmp_path / "notes.txt").write_text("not an event file")
  assert [e.step for e in summaries.events(str(tmp_path)) if e.summary.value] == [1, 2]


@pytest.mark.slow  # Trains 2 steps.
def test_a_run_writes_images_and_hparams_for_tensorboard(tmp_path):
  cfg = config_lib.TrainConfig(data_dir=DATA, batch_size=4, epochs=1, eval_every_steps=100,
                               checkpoint_every_steps=100, progress=False, summary_images=4,
                               recipe="tiny")
  summary = loop.train_and_evaluate(cfg, str(tmp_path))
  assert summary["status"] == "finished"
  root = _events(str(tmp_path))
  experiment = [v for tag, _, _, v in root if tag == hparams_metadata.EXPERIMENT_TAG]
  start = [v for tag, _, _, v in root if tag == hparams_metadata.SESSION_START_INFO_TAG]
  assert len(experiment) == 1 and len(start) == 1
  assert all(v.metadata.plugin_data.plugin_name == hparams_metadata.PLUGIN_NAME
             for v in experiment + start)
  info = hparams_metadata.parse_session_start_info_plugin_data(
      start[0].metadata.plugin_data.content)
  assert info.hparams["learning_rate"].number_value == pytest.approx(cfg.learning_rate)
  assert info.hparams["batch_size"].number_value == 4
  assert info.hparams["recipe"].string_value == "tiny"
  assert info.hparams["loss.seg"].number_value == 50.0
  assert info.hparams["model.backbone"].string_value == "ours"
  metrics = hparams_metadata.parse_experiment_plugin_data(
      experiment[0].metadata.plugin_data.content).metric_infos
  assert {(m.name.group, m.name.tag) for m in metrics} == {
      ("eval", "mean_px_error"), ("eval", "best_mean_px_error")}
  evals = _events(str(tmp_path / "eval"))
  assert {"mean_px_error", "best_mean_px_error"} <= {tag for tag, _, _, _ in evals}
  images = [(step, v) for tag, plugin, step, v in evals
            if tag == summaries.IMAGES_TAG and plugin == "images"]
  assert [step for step, _ in images] == [2]  # The run's one evaluation, at its end.
  # Width, height, then one encoded PNG per frame: the tiny val split has 1 frame.
  encoded = tf.make_ndarray(images[0][1].tensor)
  assert len(encoded) == 2 + 1
  picture = tf.io.decode_png(encoded[2]).numpy()
  assert picture.shape == (2 * spec.INPUT_HEIGHT, 3 * 2 * spec.INPUT_WIDTH + 4, 3)
