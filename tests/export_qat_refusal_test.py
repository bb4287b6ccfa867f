"""int8 QAT of a backbone it cannot export is refused before any work, and training warns."""

import logging
import os
import re

import pytest

from export import config as export_config
from export import exporter
from export import qat
from hand25d.data import records
from hand25d.model import config as model_config
from hand25d.model import network
from hand25d.training import config as config_lib
from hand25d.training import loop


def _run(tmp_path, backbone):
  """A run directory with a config.json of `backbone` and an empty (unloadable) checkpoint."""
  workdir = str(tmp_path / backbone)
  config_lib.save_or_check(config_lib.TrainConfig(
      data_dir=str(tmp_path / "data"), model=model_config.ModelConfig(backbone=backbone)), workdir)
  prefix = os.path.join(workdir, "checkpoints", "ckpt-1")
  os.makedirs(os.path.dirname(prefix))
  open(prefix + ".index", "wb").close()
  return prefix


@pytest.mark.parametrize("backbone", sorted(model_config.QAT_UNSUPPORTED_BACKBONES))
def test_qat_of_an_unsupported_backbone_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                     backbone):
  def must_not_build(*args):
    raise AssertionError("the export built the model before refusing")
  monkeypatch.setattr(exporter, "load_inference_model", must_not_build)
  out = tmp_path / "out"
  cfg = export_config.ExportConfig(checkpoint=_run(tmp_path, backbone), out_dir=str(out),
                                   quant=("float32", "int8_ptq", "int8_qat"))
  reason = model_config.QAT_UNSUPPORTED_BACKBONES[backbone]
  with pytest.raises(export_config.ExportError, match=(
      f"int8_qat cannot export backbone .{backbone}. of .*: {re.escape(reason)}; "
      "export it with --quant=float32,int8_ptq")):
    exporter.export(cfg)
  assert not out.exists()
  # Without int8_qat the same export goes ahead (to the model build).
  with pytest.raises(AssertionError, match="built the model"):
    exporter.export(cfg.__class__(checkpoint=cfg.checkpoint, out_dir=str(out),
                                  quant=("float32",)))


def test_training_an_unsupported_backbone_warns_at_the_start(tmp_path, caplog):
  cfg = config_lib.TrainConfig(data_dir=str(tmp_path / "no_data"),
                               model=model_config.ModelConfig(backbone="densenet121"))
  with caplog.at_level(logging.WARNING), pytest.raises(records.RecordError):
    loop.train_and_evaluate(cfg, str(tmp_path / "run"))  # Stops at the missing data.
  assert "backbone densenet121" in caplog.text and "not as int8 QAT" in caplog.text


@pytest.mark.slow  # tfmot's QAT model of every backbone.
@pytest.mark.parametrize("backbone", model_config.BACKBONES)
def test_the_refused_backbones_are_exactly_those_qat_fails_on(backbone):
  """Keeps QAT_UNSUPPORTED_BACKBONES true: fuse + quantize at a tiny input size."""
  inference = network.inference_model(
      model_config.ModelConfig(backbone=backbone, input_height=64, input_width=64))
  if backbone not in model_config.QAT_UNSUPPORTED_BACKBONES:
    qat.quantize(qat.fuse(inference, grouped_form="native"))
    return
  with pytest.raises((RuntimeError, ValueError)):  # tfmot's RuntimeError; fuse's ValueError.
    qat.quantize(qat.fuse(inference, grouped_form="native"))
