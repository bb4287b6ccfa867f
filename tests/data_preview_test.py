"""The preview's frames of a data set, what it refuses, and preview_main's errors."""

import logging
import os

import numpy as np
import pytest

import cli_cases
from hand25d.data import generate
from hand25d.data import pipeline
from hand25d.data import preview

# train 8, val 1, test 3 frames.
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


@pytest.fixture(scope="module", name="no_val")
def _no_val(tmp_path_factory):
  """A data set whose val split is empty (4 frames for 28/4/8 users)."""
  out = str(tmp_path_factory.mktemp("data") / "no_val")
  generate.generate(generate.GeneratorConfig(num_frames=4, height=48, width=64), out)
  return out


def test_stored_frames_refuses_what_is_not_there_naming_it(tmp_path, no_val):
  with pytest.raises(preview.PreviewError, match="manifest"):
    preview.stored_frames(str(tmp_path / "none"), "train", 2)
  with pytest.raises(preview.PreviewError, match="no split 'bogus'"):
    preview.stored_frames(FIXTURE, "bogus", 2)
  with pytest.raises(preview.PreviewError, match="split 'val' has no frames"):
    preview.stored_frames(no_val, "val", 2)
  with pytest.raises(ValueError, match="num_frames must be >= 1, got 0"):
    preview.stored_frames(FIXTURE, "train", 0)
  with pytest.raises(ValueError, match="seed >= 0"):
    preview.rendered_frames(-1, 2)


def test_asking_for_more_frames_than_a_split_has_draws_them_all_with_a_warning(caplog):
  with caplog.at_level(logging.WARNING):
    frames = preview.stored_frames(FIXTURE, "test", 5)
  assert len(frames) == 3
  assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
      f"split 'test' of {FIXTURE} has 3 frames: drawing all 3, not 5"]
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    assert len(preview.stored_frames(FIXTURE, "test", 3)) == 3
  assert not caplog.records


def test_augmented_batch_of_a_small_split_repeats_it_and_keeps_a_full_ones_batch(caplog):
  # The batch is drawn from a repeated data set: its first batch is one pass's.
  once, repeated = (next(iter(pipeline.make_dataset(FIXTURE, "train", 4, training=True, seed=3,
                                                    num_epochs=epochs)))
                    for epochs in (1, None))
  np.testing.assert_array_equal(once[0]["image"].numpy(), repeated[0]["image"].numpy())
  with caplog.at_level(logging.WARNING):
    png = preview.augmented_batch_png(FIXTURE, "val", num_frames=2, columns=2)
  assert png.startswith(b"\x89PNG")
  assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
      f"split 'val' of {FIXTURE} has 1 frames: the batch of 2 repeats them"]
  with pytest.raises(preview.PreviewError, match="no split 'dev'"):
    preview.augmented_batch_png(FIXTURE, "dev")


@pytest.mark.slow  # Starts the binary in a child process.
def test_preview_main_ends_a_user_error_in_one_line(tmp_path, no_val):
  (tmp_path / "a_dir").mkdir()
  outcomes = cli_cases.run("hand25d.data.preview_main", [
      ["--out=p.png", "--data=nonexistent"],
      ["--out=p.png", f"--data={FIXTURE}", "--split=bogus"],
      ["--out=p.png", f"--data={no_val}", "--split=val"],
      ["--out=a_dir", f"--data={FIXTURE}"],
      ["--out=p.png", "--num_frames=0"],
      ["--out=p.png", "--num_frames=-2"],
      ["--out=p.png", "--seed=-1"],
      ["--out=p.png", "--augmented"],
      ["--out=p.png", f"--data={FIXTURE}", "--split=test", "--num_frames=5"],
  ], cwd=str(tmp_path))
  assert outcomes[0].kind == "exit"
  assert outcomes[0].message.startswith("preview refused: ") and "nonexistent" in outcomes[0][1]
  assert outcomes[1].kind == "flags" and "--split" in outcomes[1].message
  assert outcomes[2][:2] == ("exit", f"preview refused: {no_val}: split 'val' has no frames")
  assert outcomes[3][:2] == ("flags", "flag --out=a_dir: --out is a directory; give the path "
                             "of the PNG to write")
  for outcome in outcomes[4:7]:
    assert outcome.kind == "flags", outcome
  assert "--num_frames=0" in outcomes[4].message and "--seed=-1" in outcomes[6].message
  assert outcomes[7][:2] == ("usage", "--augmented needs --data")
  assert outcomes[8].kind == "ok"
  assert "has 3 frames: drawing all 3, not 5" in outcomes[8].log
  assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
