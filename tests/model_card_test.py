"""The model card: figures of the inference network and the Table-2 Markdown."""

import json

from hand25d import paper
from hand25d import spec
from hand25d.model import card
from hand25d.model import config as config_lib

import pytest


# The card converts the network to TFLite and counts every layer.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ours():
  return card.model_card(config_lib.ModelConfig(input_mode="depth"))


def test_card_figures(ours):
  assert ours["backbone"] == "ours"
  assert ours["input_mode"] == "depth"
  assert ours["input_shape"] == [spec.INPUT_HEIGHT, spec.INPUT_WIDTH, spec.INPUT_CHANNELS]
  assert ours["outputs"] == {spec.KEYPOINTS: [60, 80, spec.NUM_PRIMARY_CHANNELS],
                             spec.PRESENCE: [spec.NUM_SIDES]}
  assert ours["params"] == 40_722
  assert ours["flops"] == 2 * ours["macs"] == 2 * 13_324_928
  assert sum(layer["params"] for layer in ours["layers"]) == ours["params"]
  assert sum(layer["flops"] for layer in ours["layers"]) == ours["flops"]
  # The graph also multiplies the zeros of the score maps' block-diagonal 1x1
  # (network.SCORE_FORM): 30x40 positions x 16 maps x 60 of their 64 inputs.
  assert ours["tflite"]["macs"] == ours["macs"] + 30 * 40 * 16 * 60
  assert ours["tflite"]["ops"]["CONV_2D"] == 22
  assert ours["tflite"]["ops"]["DEPTHWISE_CONV_2D"] == 12
  # The peak: two float maps of 76,800 values (30x40x64 in the first decoder
  # stage, 60x80x16 in the second: the score maps are formed at stride 4),
  # while the 15x20x64 encoder output waits for the presence head.
  assert ours["tflite"]["peak_activation_bytes"] == (2 * 30 * 40 * 64 + 15 * 20 * 64) * 4
  assert ours["paper"] == paper.TABLE2["ours"] == {"params": 0.041e6, "gflops": 0.035}
  json.dumps(ours)  # Serializable as it is.


def test_summary_and_markdown(ours):
  text = card.summary(ours)
  assert "params 40,722" in text and "26.65M" in text
  markdown = card.markdown([ours])
  assert "| Ours | 0.041M | 0.038M | 0.041M | 0.0266 | 0.035 |" in markdown
  assert "| tier1_conv | Conv2D | 30x40x16 | 400 | 0.960 |" in markdown
  assert markdown.endswith("\n\n" + card.notes().strip() + "\n")
  assert card.notes().startswith("## How the network meets the budget")
