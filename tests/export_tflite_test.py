"""The exporter: SavedModel, TFLite float32 / int8 PTQ / int8 QAT, TFLM, C arrays, budgets, errors."""

import dataclasses
import json
import os
import subprocess
import sys

from export import c_array
from export import checks
from export import config as export_config
from export import convert
from export import exporter
from export import metadata
from export import qat
from export.shave import blob
from hand25d import litert as litert_lib
from hand25d import losses
from hand25d import spec
from hand25d.model import card
from hand25d.model import layers
from hand25d.model import network
from hand25d.training import config as config_lib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

DATA = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
# Primary keypoints and visibility/presence only: the inference model has both outputs.
CFG = config_lib.with_heads_for_losses(config_lib.TrainConfig(
    data_dir=DATA, batch_size=4,
    loss=losses.LossWeights(akp=0.0, cho=0.0, dhp=0.0, seg=0.0, ds=0.0)))
# RESHAPE and TRANSPOSE: the decoder's channel shuffle (ModelConfig.decoder_shuffle);
# RESHAPE and CONCATENATION: also its nearest-neighbour up-sampling.
DEPLOYABLE_OPS = {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                  "MAX_POOL_2D", "MEAN", "QUANTIZE", "RESHAPE", "TRANSPOSE"}
# int8 vs float32 tolerance on every output, as a fraction of the float
# output's range over the evaluated frames: the largest deviation, and the
# mean over outputs of at least INT8_MEAN_MIN_VALUES values (the fixture's
# presence output is 2 logits of one frame, where a mean is a maximum). The
# fixture's weights are untrained: with the score maps formed at stride 4 and
# per-tensor weights its PTQ keypoint logits deviate by up to 0.109 of their
# range (0.1 sufficed at stride 2), while the quick model's PTQ export is
# 1.9% from float32 in px error (7.874 against 7.728 px, docs/export.md).
INT8_MAX_TOLERANCE = 0.12
INT8_MEAN_TOLERANCE = 0.01
INT8_MEAN_MIN_VALUES = 100
# LiteRT's optimized int8 kernels may round differently from its reference
# kernels (and TFLM) by some output quantization steps. Measured on keypoint
# logits: with per-channel weights up to 18 (the PTQ fixture, after the
# decoder's channel shuffle; 16 before); with per-tensor weights 26 (the PTQ
# fixture) and 24 (the shipped model's PTQ export, 14 for its QAT export); with
# the score maps at stride 4, 34 (the PTQ fixture) and 22 (the quick model's
# PTQ export).
INT8_KERNEL_STEPS = 40


def _save_run(workdir: str, cfg: config_lib.TrainConfig) -> None:
  """A run directory with config.json and one checkpoint of non-trivial batch norms."""
  config_lib.save_or_check(cfg, workdir)
  keras.utils.set_random_seed(0)
  model = network.build_training_model(cfg.model)
  rng = np.random.default_rng(0)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
  tf.train.Checkpoint(model=model).save(os.path.join(workdir, "checkpoints", "ckpt"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  _save_run(workdir, CFG)
  return workdir


# One export of all three modes, QAT fine-tuning included: its tests are slow.
@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
  """(config, report) of one export of all three modes."""
  out = str(tmp_path_factory.mktemp("export"))
  cfg = export_config.ExportConfig(
      checkpoint=run, out_dir=out, quant=convert.QUANT_MODES, calibration_frames=4,
      qat=qat.QatConfig(steps=2, batch_size=2, calibration_batches=1))
  return cfg, exporter.export(cfg)


@pytest.fixture(scope="module")
def frames(run):
  model, _, _ = exporter.load_inference_model(run)
  data = list(exporter._frames(DATA, "val", 0, CFG.model))  # pylint: disable=protected-access
  return model, data


def _tflite(cfg, quant) -> bytes:
  """The LiteRT model of a mode (signature and metadata kept)."""
  with open(os.path.join(cfg.out_dir, f"{export_config.model_name(quant)}.tflite"), "rb") as f:
    return f.read()


def _tflm(cfg, quant) -> bytes:
  """The TFLM model of a mode (stripped)."""
  with open(os.path.join(cfg.out_dir, export_config.tflm_file(quant)), "rb") as f:
    return f.read()


def _serve(directory: str):
  return tf.saved_model.load(directory).signatures[convert.SERVING_SIGNATURE]


def test_saved_model_serves_what_the_keras_model_computes(frames, tmp_path):
  model, data = frames
  convert.write_saved_model(model, str(tmp_path / "saved_model"))
  serve = _serve(str(tmp_path / "saved_model"))
  assert set(serve.structured_input_signature[1]) == {CFG.model.input_mode}
  assert set(serve.structured_outputs) == set(model.output)
  image = data[0][0]
  got = serve(**{CFG.model.input_mode: tf.constant(image)})
  for name, expected in model(image, training=False).items():
    np.testing.assert_allclose(got[name], expected, atol=1e-5 * np.abs(expected).max(),
                               err_msg=name)
  # Any batch size.
  batch = serve(**{CFG.model.input_mode: tf.constant(np.concatenate([image] * 3))})
  assert batch[spec.KEYPOINTS].shape[0] == 3


def test_fuse_keeps_the_function_and_removes_batch_norm(run, frames):
  model, data = frames
  fused = qat.fuse(model, grouped_form="fast")
  assert not any(isinstance(l, keras.layers.BatchNormalization) for l in fused.layers)
  assert sum(isinstance(l, layers.GroupedConv2D) for l in fused.layers) == 11
  image = data[0][0]
  for name, expected in model(image).items():
    np.testing.assert_allclose(fused(image)[name], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_report_and_files(exported):
  cfg, report = exported
  with open(os.path.join(cfg.out_dir, export_config.REPORT_FILE)) as f:
    assert json.load(f) == json.loads(json.dumps(report))
  assert set(report["exports"]) == set(convert.QUANT_MODES)
  assert set(report["mean_px_error"]) == {"keras_float32", *convert.QUANT_MODES}
  for quant, r in report["exports"].items():
    assert r["size_bytes"] == len(_tflite(cfg, quant))
    assert r["tflm_size_bytes"] == len(_tflm(cfg, quant)) < r["size_bytes"]
    assert litert_lib.read_metadata(_tflm(cfg, quant)) is None
    # The graph runs the network's MACs and the zeros of the score maps'
    # block-diagonal 1x1 (network.SCORE_FORM; QAT's is made dense after the
    # conversion): 30x40 positions x 16 maps x 60 of their 64 inputs.
    zeros = 30 * 40 * 16 * 60
    assert r["params"] == 40_722 and r["flops"] == 2 * (r["tflite_macs"] - zeros)
    assert set(r["ops"]) <= DEPLOYABLE_OPS, r["ops"]
    assert r["ops"]["CONV_2D"] == 22 and r["ops"]["DEPTHWISE_CONV_2D"] == 12
    assert "RESIZE_NEAREST_NEIGHBOR" not in r["ops"]
    assert r["eval"]["frames"] > 0 and r["eval"]["mean_px_error"] is not None
    assert r["tflm"]["arena_bytes"] % litert_lib.ARENA_GRANULE == 0
  float32, ptq = report["exports"]["float32"], report["exports"]["int8_ptq"]
  assert float32["size_bytes"] <= export_config.FLOAT32_BUDGET_BYTES
  # int8 weights: about a quarter of the float model, and a quarter of its arena.
  assert ptq["size_bytes"] < 0.6 * float32["size_bytes"]
  assert ptq["tflm"]["arena_bytes"] < 0.3 * float32["tflm"]["arena_bytes"]
  # The SHAVE blob of the float model comes along and reads back.
  program = blob.read_blob(os.path.join(cfg.out_dir, export_config.SHAVE_BLOB_FILE))
  assert report["shave_blob"]["dtype"] == "fp16"
  assert len(program.network.layers) == report["shave_blob"]["layers"]
  # The SavedModel of the float network comes along whatever the modes.
  assert report["saved_model"]["dir"] == export_config.SAVED_MODEL_DIR
  assert os.path.isfile(os.path.join(cfg.out_dir, export_config.SAVED_MODEL_DIR, "saved_model.pb"))


@pytest.mark.slow
@pytest.mark.parametrize("quant", convert.QUANT_MODES)
def test_litert_models_carry_metadata_and_their_signature(exported, quant):
  cfg, report = exported
  r = report["exports"][quant]
  model_bytes = _tflite(cfg, quant)
  meta = litert_lib.read_metadata(model_bytes)
  assert meta["name"] == export_config.model_name(quant) == r["metadata"]["name"]
  assert meta["version"] == r["metadata"]["version"] == metadata.version(report["checkpoint"])
  outputs = meta["subgraph_metadata"][0]["output_tensor_metadata"]
  assert [t["name"] for t in outputs] == r["metadata"]["outputs"]
  assert sorted(r["metadata"]["outputs"]) == sorted([spec.KEYPOINTS, spec.PRESENCE])
  assert sorted(litert_lib.packed_files(model_bytes)) == r["metadata"]["packed_files"]
  lite = litert_lib.LiteRtModel(model_bytes)
  assert lite.interpreter.get_signature_list()[convert.SERVING_SIGNATURE]["inputs"] == [
      CFG.model.input_mode]


@pytest.mark.slow
def test_float32_tflite_matches_keras(exported):
  _, report = exported
  r = report["exports"]["float32"]
  assert max(r["keras_vs_tflite_max_abs_diff"].values()) < 1e-4
  assert report["mean_px_error"]["float32"] == pytest.approx(
      report["mean_px_error"]["keras_float32"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["int8_ptq", "int8_qat"])
def test_int8_is_within_tolerance_of_float(exported, frames, quant):
  cfg, _ = exported
  model, data = frames
  lite = litert_lib.LiteRtModel(_tflite(cfg, quant))
  assert lite.inputs[0]["dtype"] == np.int8
  names = {name: tuple(t.shape) for name, t in model.output.items()}
  for name in names:
    expected = np.stack([model(image)[name].numpy() for image, _ in data])
    got = np.stack([lite([image], names)[name] for image, _ in data])
    scale = expected.max() - expected.min()
    assert np.abs(got - expected).max() <= INT8_MAX_TOLERANCE * scale, name
    if expected.size >= INT8_MEAN_MIN_VALUES:
      assert np.abs(got - expected).mean() <= INT8_MEAN_TOLERANCE * scale, name


@pytest.mark.slow
def test_qat_model_converts_to_int8_convolutions_grouped_as_trained(exported, frames):
  cfg, report = exported
  model, _ = frames
  interpreter = litert_lib.builtin_interpreter(_tflite(cfg, "int8_qat"))
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  convs = {kind: [op for op in litert_lib.op_details(interpreter) if op["op_name"] == kind]
           for kind in ("CONV_2D", "DEPTHWISE_CONV_2D")}
  filters = {kind: {tuple(tensors[op["inputs"][1]]["shape"]) for op in ops}
             for kind, ops in convs.items()}
  assert all(tensors[op["inputs"][1]]["dtype"] == np.int8
             for ops in convs.values() for op in ops)
  for layer in model.layers:
    if isinstance(layer, layers.GroupedConv2D):
      k = layer.kernel_size
      if layer.depthwise:
        assert (1, k, k, layer.filters) in filters["DEPTHWISE_CONV_2D"], layer.name
      elif k == 1:  # Made dense after the conversion (convert.dense_pointwise_groups).
        assert (layer.filters, 1, 1, layer.input.shape[-1]) in filters["CONV_2D"], layer.name
      else:
        assert (layer.filters, k, k, layer.input.shape[-1] // layer.groups) in filters["CONV_2D"]
  # The QAT Keras model and its TFLite model agree up to kernel rounding.
  r = report["exports"]["int8_qat"]
  for name, diff in r["keras_vs_tflite_max_abs_diff"].items():
    assert diff <= INT8_KERNEL_STEPS * r["output_quantization_step"][name], name


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["int8_ptq", "int8_qat"])
def test_int8_kernels_have_one_scale_each(exported, quant):
  cfg, report = exported
  assert report["exports"][quant]["weight_quantization"] == "per_tensor"
  interpreter = litert_lib.builtin_interpreter(_tflite(cfg, quant))
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  kernels = [tensors[op["inputs"][1]] for op in litert_lib.op_details(interpreter)
             if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
  assert len(kernels) == 34
  for kernel in kernels:
    assert kernel["dtype"] == np.int8
    assert kernel["quantization_parameters"]["scales"].size == 1, kernel["shape"]


def test_qat_quantizes_kernels_per_tensor_unless_asked(frames):
  model, _ = frames
  fused = qat.fuse(model, grouped_form="native")

  def per_axis(per_channel_weights: bool) -> set[bool]:
    quantized = qat.quantize(fused, per_channel_weights)
    return {v.shape.rank == 1 and v.shape[0] > 1
            for v in quantized.non_trainable_variables
            if v.name.endswith(("kernel_min:0", "kernel_max:0"))}

  assert per_axis(False) == {False}
  assert True in per_axis(True)  # The convolutions' (the presence Dense stays per-tensor).


@pytest.mark.slow
@pytest.mark.parametrize("quant", convert.QUANT_MODES)
def test_tflm_matches_litert(exported, frames, quant):
  cfg, report = exported
  model, data = frames
  model_bytes = _tflm(cfg, quant)
  r = report["exports"][quant]
  reference = litert_lib.LiteRtModel(_tflite(cfg, quant), reference=True)
  names = {name: tuple(t.shape) for name, t in model.output.items()}
  image = data[0][0]
  reference([image], names)
  micro = litert_lib.tflm_run(model_bytes, [litert_lib.quantize(image, reference.inputs[0])],
                              r["tflm"]["arena_bytes"], num_outputs=len(names))
  steps = r["output_quantization_step"] or {name: 1e-5 for name in names}
  # TFLM and LiteRT's reference kernels compute the same integer arithmetic but
  # for the rounding of a tie: at most one output quantization step apart (the
  # shipped model's export measured 0 on every output).
  for value, detail, litert in zip(micro, reference.outputs, reference.output_arrays()):
    step = detail["quantization"][0] if detail["dtype"] != np.float32 else 0.0
    np.testing.assert_allclose(litert_lib.dequantize(value, detail), litert, atol=step + 1e-5,
                               err_msg=detail["name"])
  for name, diff in r["tflm"]["max_abs_diff_vs_litert_reference"].items():
    assert diff <= steps[name] + 1e-5, name
  for name, diff in r["tflm"]["max_abs_diff_vs_litert_default"].items():
    assert diff <= INT8_KERNEL_STEPS * steps[name], name
  with pytest.raises(litert_lib.TflmError, match="bytes missing"):
    litert_lib.tflm_run(model_bytes, [litert_lib.quantize(image, reference.inputs[0])],
                        r["tflm"]["arena_bytes"] - litert_lib.ARENA_GRANULE)


@pytest.mark.slow
@pytest.mark.parametrize("quant", convert.QUANT_MODES)
def test_c_array_round_trips(exported, quant):
  cfg, report = exported
  r = report["exports"][quant]
  with open(os.path.join(cfg.out_dir, r["c_array"]["source"])) as f:
    source = f.read()
  with open(os.path.join(cfg.out_dir, r["c_array"]["header"])) as f:
    header = f.read()
  assert c_array.parse_source(source) == _tflm(cfg, quant)
  symbol = r["c_array"]["symbol"]
  assert f"alignas(16) const unsigned char {symbol}[]" in source
  assert f"extern const unsigned int {symbol}_len;" in header


@pytest.mark.slow
def test_oversized_float32_model_exits_with_the_excess(run, tmp_path):
  out = tmp_path / "out"
  proc = subprocess.run([sys.executable, "-m", "export.tflite_main", f"--checkpoint={run}",
                         f"--out={out}", "--max_float32_bytes=100000"],
                        capture_output=True, text=True, check=False)
  assert proc.returncode == 1, proc.stderr[-2000:]
  message = proc.stderr.strip().splitlines()[-1]
  assert message.startswith("export failed: float32 model is "), message
  assert "over the size budget of 100,000 bytes" in message
  excess = int(message.split("bytes: ")[1].split(" bytes")[0].replace(",", ""))
  assert 0 < excess < 100_000
  assert not out.exists()  # Nothing is written when a budget fails.


def test_op_that_tflm_cannot_run_fails_the_export(run, tmp_path, monkeypatch):
  inp = keras.Input((4, 4, 1), batch_size=1)
  # Named as the inference model's output: the LiteRT copy's metadata describes it.
  tiled = keras.Model(inp, {spec.KEYPOINTS: keras.layers.Lambda(
      lambda t: tf.tile(t, [1, 2, 1, 1]), name=spec.KEYPOINTS)(inp)})
  tiled_bytes = tf.lite.TFLiteConverter.from_keras_model(tiled).convert()
  monkeypatch.setattr(convert, "to_tflite", lambda *args, **kwargs: tiled_bytes)
  cfg = export_config.ExportConfig(checkpoint=run, out_dir=str(tmp_path / "out"))
  with pytest.raises(export_config.BudgetError, match="float32 model does not run in TensorFlow "
                     "Lite Micro.*cannot run op.*TILE"):
    exporter.export(cfg)
  assert not (tmp_path / "out").exists()


def test_missing_checkpoint_is_named(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(export_config.CheckpointError,
                     match=f"cannot export {missing}: checkpoint .* not found"):
    exporter.export(export_config.ExportConfig(checkpoint=missing, out_dir=str(tmp_path / "out")))


def test_stale_temporary_files_of_a_killed_export_are_removed(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / ".hand25d_float32.tflite.x1y2.tmp").write_bytes(b"half a model")
  with pytest.raises(export_config.CheckpointError):
    exporter.export(export_config.ExportConfig(checkpoint=str(tmp_path / "none"), out_dir=str(out)))
  assert not os.listdir(out)


def test_checkpoint_of_another_architecture_is_refused(run, tmp_path):
  other = str(tmp_path / "other")
  config_lib.save_or_check(
      dataclasses.replace(CFG, model=dataclasses.replace(CFG.model, tier1_channels=8)),
      other)
  os.symlink(os.path.join(run, "checkpoints"), os.path.join(other, "checkpoints"))
  with pytest.raises(export_config.CheckpointError, match=f"cannot export {other}.*does not fit"):
    exporter.export(export_config.ExportConfig(checkpoint=other, out_dir=str(tmp_path / "out")))


def _no_work(*args, **kwargs):
  raise AssertionError("the export started work")


@pytest.mark.parametrize("make, said", [
    (lambda p: p.write_text("a file"), "is not a directory"),
    (lambda p: None, "cannot be created: .*blocker is not a directory"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")),
     r"holds 1 entries an export does not write \(notes.txt\)"),
])
def test_out_that_cannot_take_the_export_is_refused_before_any_work(run, tmp_path, monkeypatch,
                                                                    make, said):
  out = tmp_path / "out"
  make(out)
  if not out.exists():  # Below a file.
    (tmp_path / "blocker").write_text("a file")
    out = tmp_path / "blocker" / "out"
  monkeypatch.setattr(exporter, "load_inference_model", _no_work)
  with pytest.raises(export_config.OutDirError, match=f"--out {out} {said}"):
    exporter.export(export_config.ExportConfig(checkpoint=run, out_dir=str(out)))
  if out.is_dir():
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow  # Starts tflite_main.
def test_tflite_main_refuses_an_out_that_is_a_file(run, tmp_path):
  out = tmp_path / "out"
  out.write_text("a file")
  proc = subprocess.run([sys.executable, "-m", "export.tflite_main", f"--checkpoint={run}",
                         f"--out={out}"], capture_output=True, text=True, check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == f"export failed: --out {out} is not a directory"


@pytest.mark.slow  # An export in a child process, killed.
def test_a_killed_export_leaves_the_previous_set_whole(run, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  old = {export_config.SHAVE_BLOB_FILE: b"old blob", "hand25d_float32.tflite": b"old model",
         "hand25d_float32.h": b"old", "hand25d_float32.cc": b"old",
         export_config.REPORT_FILE: b"{}"}
  for name, data in old.items():
    (out / name).write_bytes(data)
  # Killed (SIGKILL) once the blob and the model are written, before the C arrays.
  code = ("import os, signal, sys\n"
          "from hand25d import legacy_keras\n"
          "from export import c_array, exporter\n"
          "from export import config as export_config\n"
          "c_array.write = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
          "exporter.export(export_config.ExportConfig(checkpoint=sys.argv[1],\n"
          "                                           out_dir=sys.argv[2]))\n")
  proc = subprocess.run([sys.executable, "-c", code, run, str(out)], capture_output=True,
                        text=True, check=False)
  assert proc.returncode == -9, proc.stderr[-2000:]
  assert {p.name: p.read_bytes() for p in out.iterdir()} == old
  (staging,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
  assert {p.name for p in staging.iterdir()} >= {export_config.SHAVE_BLOB_FILE,
                                                 "hand25d_float32.tflite"}
  # The next export removes the killed one's set on start.
  with pytest.raises(export_config.CheckpointError):
    exporter.export(export_config.ExportConfig(checkpoint=str(tmp_path / "none"), out_dir=str(out)))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
  assert {p.name: p.read_bytes() for p in out.iterdir()} == old


@pytest.mark.slow  # An export.
def test_model_that_differs_from_its_keras_reference_is_refused(run, tmp_path, monkeypatch):
  to_tflite = convert.to_tflite

  def perturbed(model, quant, *args, **kwargs):
    """Converts the model with one kernel nudged: a conversion that changed the network."""
    layer = [l for l in model.layers if l.get_weights()][-1]
    weights = layer.get_weights()
    layer.set_weights([weights[0] + 0.05] + weights[1:])
    try:
      return to_tflite(model, quant, *args, **kwargs)
    finally:
      layer.set_weights(weights)

  monkeypatch.setattr(convert, "to_tflite", perturbed)
  out = tmp_path / "out"
  with pytest.raises(export_config.AgreementError,
                     match=r"hand25d_float32.tflite of .* differs from its Keras reference "
                     r"\(float inference model\) by .* on output '\w+' over 1 frames, over "
                     r"the .* allowed \(0.0001 of the output's largest magnitude"):
    exporter.export(export_config.ExportConfig(checkpoint=run, out_dir=str(out)))
  assert not out.exists()


def test_int8_agreement_is_counted_in_output_steps():
  check = checks.check_agreement
  steps = {"keypoints": 0.1}
  check("int8_ptq", "run", "float inference model", 3, {"keypoints": 9.5}, {}, steps)
  with pytest.raises(export_config.AgreementError,
                     match=r"hand25d_int8_ptq.tflite of run .* by 10 = 100 output quantization "
                     r"steps \(of 0.1\) on output 'keypoints' over 3 frames, over the 96 steps"):
    check("int8_ptq", "run", "float inference model", 3, {"keypoints": 10.0}, {}, steps)
