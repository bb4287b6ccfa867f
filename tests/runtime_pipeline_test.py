"""The 2.5D runtime pipeline: input as in training, parallel = sequential, early out, bad frames."""

import dataclasses

from hand25d import decoding
from hand25d import mirror
from hand25d import spec
from hand25d.data import pipeline as data_pipeline
from hand25d.data import scene
from hand25d.model import config as config_lib
from hand25d.model import network
from hand25d.runtime import frames as frames_lib
from hand25d.runtime import inference
from hand25d.runtime import lifting
from hand25d.runtime import pipeline
from export import convert

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

# Every hand counts as present and every keypoint as visible: all stages run.
EVERYTHING = pipeline.PipelineOptions(presence_threshold=0.0, min_keypoint_confidence=0.0)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  """The deployable network with fresh weights, exported to float32 TFLite."""
  keras.utils.set_random_seed(0)
  path = tmp_path_factory.mktemp("model") / "hand25d.tflite"
  path.write_bytes(convert.to_tflite(network.inference_model(config_lib.ModelConfig()),
                                     "float32"))
  return str(path)


@pytest.fixture(scope="module")
def clip():
  """A short rendered clip with at least one hand in every frame."""
  frames = scene.render_sequence(7, 4)
  assert all(f["hand_present"].any() for f in frames)
  return frames


def _tiny_model(tmp_path, name: str, input_shape=(120, 160, 1), extra_output=None,
                heads: bool = False, hand_mask: bool = False) -> str:
  """A small stand-in network with the exported model's signature (or a broken one).

  With `heads`, it also has presence (always present), visibility (index_tip
  never visible) and pose (always c_pose) outputs, set by their biases.
  """
  image = keras.Input(input_shape, batch_size=1, name="amplitude")
  outputs = {spec.KEYPOINTS: keras.layers.Conv2D(spec.NUM_PRIMARY_CHANNELS, 2, strides=2)(image)}
  pooled = keras.layers.GlobalAveragePooling2D()(image)
  if heads:
    visibility = np.full((spec.NUM_SIDES, spec.NUM_KEYPOINTS), 10.0)
    visibility[:, spec.KEYPOINT_INDEX["index_tip"]] = -10.0
    pose = np.full((spec.NUM_SIDES, spec.NUM_POSE_CLASSES), -10.0)
    pose[:, spec.POSE_INDEX["c_pose"]] = 10.0
    for out, bias in ((spec.PRESENCE, np.full(spec.NUM_SIDES, 10.0)),
                      (spec.VISIBILITY, visibility), (spec.POSE, pose)):
      dense = keras.layers.Dense(bias.size, kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(bias.ravel()))
      outputs[out] = keras.layers.Reshape(bias.shape)(dense(pooled))
  if hand_mask:
    outputs[spec.HAND_MASK] = keras.layers.Conv2D(
        spec.NUM_SEGMENTATION_CLASSES, spec.HAND_MASK_STRIDE, strides=spec.HAND_MASK_STRIDE)(image)
  if extra_output:
    outputs["extra"] = keras.layers.Dense(extra_output)(pooled)
  path = tmp_path / f"{name}.tflite"
  path.write_bytes(convert.to_tflite(keras.Model(image, outputs), "float32"))
  return str(path)


def test_network_input_is_fed_as_in_training(clip):
  frame = clip[0]
  got = inference.network_input(frame["amplitude"], spec.INPUT_HEIGHT, spec.INPUT_WIDTH)
  resized = data_pipeline.resize(
      {"amplitude": tf.constant(frame["amplitude"], tf.float32),
       "depth": tf.constant(frame["depth"]),
       "segmentation": tf.constant(frame["segmentation"], tf.int32),
       "keypoints_xy": tf.constant(frame["keypoints_xy"])},
      spec.INPUT_HEIGHT, spec.INPUT_WIDTH)
  expected = data_pipeline.normalize_input(resized["amplitude"], "amplitude").numpy()
  assert got.shape == (1, spec.INPUT_HEIGHT, spec.INPUT_WIDTH, 1) and got.dtype == np.float32
  np.testing.assert_allclose(got[0, ..., 0], expected, atol=1e-6)


def test_area_resize_averages_each_footprint_at_any_size():
  """A 240x300 frame (not a multiple of 120x160) against supersampling to 240x2400."""
  image = np.random.default_rng(0).integers(0, 4000, (240, 300)).astype(np.uint16)
  got = inference.area_resize(image, spec.INPUT_HEIGHT, spec.INPUT_WIDTH)
  # 2400 = 300 * 8 = 160 * 15: each output pixel is the mean of a 2x15 block.
  expected = np.repeat(image.astype(np.float64), 8, axis=1).reshape(120, 2, 160, 15).mean((1, 3))
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def _assert_same(a: pipeline.FrameResult, b: pipeline.FrameResult) -> None:
  assert (a.ok, a.early_out, a.error_kind) == (b.ok, b.early_out, b.error_kind)
  for ha, hb in zip(a.hands, b.hands, strict=True):
    assert (ha.side, ha.present, ha.presence, ha.pose, ha.depth_sources) == (
        hb.side, hb.present, hb.presence, hb.pose, hb.depth_sources)
    for field in ("keypoints_2d", "confidence", "visible", "keypoints_3d"):
      np.testing.assert_array_equal(getattr(ha, field), getattr(hb, field), err_msg=field)


def test_parallel_depth_gives_the_sequential_results(model_path, clip):
  results = {}
  for parallel in (False, True):
    options = pipeline.PipelineOptions(parallel_depth=parallel, min_keypoint_confidence=0.0)
    with pipeline.Pipeline(model_path, options=options) as p:
      results[parallel] = [p.process(f["phase_frames"]) for f in clip]
  for seq, par in zip(results[False], results[True]):
    _assert_same(seq, par)
    assert "depth_wait" in par.timings_ms or par.early_out
  lifted = [h for r in results[True] for h in r.hands if h.present]
  assert lifted and all(np.isfinite(h.keypoints_3d[h.visible]).all() for h in lifted)


def test_lifted_points_project_back_to_the_keypoints(model_path, clip):
  with pipeline.Pipeline(model_path, options=EVERYTHING) as p:
    result = p.process(clip[0]["phase_frames"])
  k = spec.SENSOR.intrinsics
  for hand in result.hands:
    assert hand.present and hand.visible.all()
    x, y, z = hand.keypoints_3d.T
    np.testing.assert_allclose(x / z * k.fx + k.cx, hand.keypoints_2d[:, 0], atol=1e-6)
    np.testing.assert_allclose(y / z * k.fy + k.cy, hand.keypoints_2d[:, 1], atol=1e-6)
    assert np.all((z > lifting.LiftConfig().min_depth_m) & (z < lifting.LiftConfig().max_depth_m))


@pytest.mark.parametrize("parallel", [False, True])
def test_early_out_skips_decoding_and_lifting(model_path, clip, monkeypatch, parallel):
  calls = {"decode": 0, "lift": 0}

  def counted(name, fn):
    def wrapper(*args, **kwargs):
      calls[name] += 1
      return fn(*args, **kwargs)
    return wrapper

  monkeypatch.setattr(decoding, "decode", counted("decode", decoding.decode))
  monkeypatch.setattr(lifting, "hand_depths", counted("lift", lifting.hand_depths))
  # sigmoid(presence) < 1 always: a threshold of 1 says no hand in every frame.
  options = pipeline.PipelineOptions(parallel_depth=parallel, presence_threshold=1.0)
  with pipeline.Pipeline(model_path, options=options) as p:
    results = [p.process(f["phase_frames"]) for f in clip]
  assert calls == {"decode": 0, "lift": 0}
  for r in results:
    assert r.ok and r.early_out and r.depth is None
    assert not any(h.present for h in r.hands) and all(0 < h.presence < 1 for h in r.hands)
    assert not {"decode", "depth_wait", "lift"} & set(r.timings_ms)
    assert not any(k["visible"] for h in r.to_json()["hands"] for k in h["keypoints"])
  # The counting sees the calls when there is a hand.
  with pipeline.Pipeline(model_path,
                         options=dataclasses.replace(options, presence_threshold=0.0)) as p:
    assert not p.process(clip[0]["phase_frames"]).early_out
  assert calls["decode"] == 1 and calls["lift"] == spec.NUM_SIDES


def _bad_frames(good: np.ndarray) -> list:
  nan = good.astype(np.float32)
  nan[0, 3, 3] = np.inf
  saturated = good.copy()
  saturated[1] = 4095
  return [
      (good[:, :, :100], frames_lib.WRONG_SHAPE),
      (good.astype(np.int8), frames_lib.WRONG_DTYPE),
      (nan, frames_lib.NON_FINITE),
      (saturated, frames_lib.SATURATED),
      ([good[0], good[1], None, good[3]], frames_lib.MISSING_PHASE),
      (None, frames_lib.MISSING_PHASE),
      (7, frames_lib.WRONG_DTYPE),
      # Flat frames: no modulation, so no pixel has enough amplitude for depth.
      (np.full_like(good, 500), frames_lib.NO_VALID_DEPTH),
  ]


@pytest.mark.parametrize("parallel", [False, True])
def test_every_bad_frame_is_reported_and_the_next_one_processed(model_path, clip, parallel):
  good = clip[0]["phase_frames"]
  options = pipeline.PipelineOptions(parallel_depth=parallel, presence_threshold=0.0,
                                     min_keypoint_confidence=0.0)
  with pipeline.Pipeline(model_path, options=options) as p:
    reference = p.process(good)
    for bad, kind in _bad_frames(good):
      result = p.process(bad)
      assert not result.ok and result.error_kind == kind and kind in result.error
      assert result.hands == () and result.to_json()["error_kind"] == kind
      after = p.process(good)
      assert after.ok and after.index == result.index + 1
      _assert_same(after, reference)
    skipped = p.skip(frames_lib.BadFrameError(frames_lib.UNREADABLE, "x.npz: truncated"))
    assert skipped.error_kind == frames_lib.UNREADABLE and p.process(good).ok


def test_model_signature_is_checked(tmp_path):
  sensor = (spec.SENSOR.height, spec.SENSOR.width)
  with pytest.raises(inference.ModelSignatureError, match=r"shape \[1, 7\] is none of"):
    inference.TfliteModel.from_file(_tiny_model(tmp_path, "extra", extra_output=7), sensor)
  with pytest.raises(inference.ModelSignatureError, match=r"one input of shape \[1, H, W, 1\]"):
    inference.TfliteModel.from_file(_tiny_model(tmp_path, "rgb", input_shape=(120, 160, 3)),
                                    sensor)
  with pytest.raises(inference.ModelFileError, match="config.json is not a TFLite model"):
    (tmp_path / "config.json").write_text('{"model": "not a flatbuffer"}')
    inference.TfliteModel.from_file(str(tmp_path / "config.json"), sensor)


def test_pose_visibility_and_presence_outputs_are_used(tmp_path, clip):
  path = _tiny_model(tmp_path, "heads", heads=True)
  options = pipeline.PipelineOptions(min_keypoint_confidence=0.0)
  with pipeline.Pipeline(path, options=options) as p:
    result = p.process(clip[0]["phase_frames"])
  index_tip = spec.PRIMARY_KEYPOINT_NAMES.index("index_tip")
  for hand in result.hands:
    assert hand.present and hand.presence > 0.99 and hand.pose == "c_pose"
    assert 0.99 < hand.pose_score <= 1.0 and hand.to_json()["pose_score"] == round(
        hand.pose_score, 6)
    assert not hand.visible[index_tip] and np.delete(hand.visible, index_tip).all()
    assert np.isnan(hand.keypoints_3d[index_tip]).all()


def test_a_hand_mask_output_is_decoded_with(tmp_path):
  model = inference.TfliteModel.from_file(_tiny_model(tmp_path, "mask", hand_mask=True),
                                          (120, 160))
  assert set(model.output_names) == {spec.KEYPOINTS, spec.HAND_MASK}
  outputs = model.infer(np.ones((120, 160), np.float32))
  assert outputs[spec.HAND_MASK].shape == (1, 15, 20, 3)
  # Flat score maps: without the mask every keypoint is cell (0, 0); a mask that
  # puts the left hand at mask cell (10, 4) and the right at (3, 16) moves them.
  outputs[spec.KEYPOINTS] = np.zeros_like(outputs[spec.KEYPOINTS])
  mask = np.zeros((1, 15, 20, 3), np.float32)
  mask[..., 0] = 10.0
  mask[0, 10, 4] = [-10.0, 10.0, -10.0]
  mask[0, 3, 16] = [-10.0, -10.0, 10.0]
  outputs[spec.HAND_MASK] = mask
  xy, _ = model.decode(outputs)
  cell_centre = lambda row, col: [(col + 0.5) * 8 - 0.5, (row + 0.5) * 8 - 0.5]  # noqa: E731
  np.testing.assert_allclose(xy[0], [cell_centre(10, 4)] * spec.NUM_PRIMARY_KEYPOINTS, atol=4)
  np.testing.assert_allclose(xy[1], [cell_centre(3, 16)] * spec.NUM_PRIMARY_KEYPOINTS, atol=4)
  del outputs[spec.HAND_MASK]
  np.testing.assert_allclose(model.decode(outputs)[0], 0.0, atol=1.0)


def test_tflm_backend_matches_litert(model_path, clip):
  frames = [f["phase_frames"] for f in clip[:2]]
  results = {}
  for backend in ("litert", "tflm"):
    options = pipeline.PipelineOptions(backend=backend, presence_threshold=0.0,
                                       min_keypoint_confidence=0.0)
    with pipeline.Pipeline(model_path, options=options) as p:
      results[backend] = [p.process(f) for f in frames]
  for a, b in zip(results["litert"], results["tflm"]):
    for ha, hb in zip(a.hands, b.hands):
      np.testing.assert_allclose(ha.keypoints_2d, hb.keypoints_2d, atol=1e-3)
      np.testing.assert_allclose(ha.presence, hb.presence, atol=1e-5)


@pytest.mark.parametrize("backend", inference.BACKENDS)
def test_the_mirror_ensemble_sees_a_mirrored_frame_as_the_frame_mirrored(model_path, clip,
                                                                         backend):
  """Both passes swap roles on the mirrored frame, so its outputs are the frame's, mirrored.

  One pass of the (fresh, asymmetric) network has no such symmetry, so the
  check fails if the ensemble's second pass does not see the mirrored input.
  """
  sensor = (spec.SENSOR.height, spec.SENSOR.width)
  amplitude = clip[0]["amplitude"]
  flipped = np.ascontiguousarray(amplitude[:, ::-1])
  for ensemble in (True, False):
    model = inference.TfliteModel.from_file(model_path, sensor, backend=backend,
                                            mirror_ensemble=ensemble)
    got, expected = model.infer(flipped), mirror.unmirror(model.infer(amplitude))
    assert set(got) == set(expected) == set(model.output_names)
    close = [np.allclose(got[k], expected[k], atol=1e-4) for k in got]
    assert all(close) if ensemble else not any(close)
  model = inference.TfliteModel.from_file(model_path, sensor, backend=backend,
                                          mirror_ensemble=True)
  xy, _ = model.decode(model.infer(amplitude))
  xy_flipped, _ = model.decode(model.infer(flipped))
  np.testing.assert_allclose(xy_flipped[::-1, :, 0], sensor[1] - 1 - xy[..., 0], atol=1e-3)
  np.testing.assert_allclose(xy_flipped[::-1, :, 1], xy[..., 1], atol=1e-3)


def test_pipeline_options_reach_the_model(model_path, clip):
  options = dataclasses.replace(EVERYTHING, mirror_ensemble=True)
  with pipeline.Pipeline(model_path, options=options) as p:
    assert p.model.mirror_ensemble
    assert p.process(clip[0]["phase_frames"]).ok
    with pipeline.Pipeline(p.model, options=options):  # A ready model of the same setting.
      pass
    with pytest.raises(ValueError, match="options.mirror_ensemble is False but the given "
                                         "TfliteModel has mirror_ensemble=True"):
      pipeline.Pipeline(p.model, options=EVERYTHING)
