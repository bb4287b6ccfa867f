"""Every picture takes its colours from hand25d.colours, shows invalid depth, and reads at its size.

Synthetic inputs (no model, no data set) are drawn through the modules that
draw hand25d's pictures (the runtime demo's frames and animation, the data
preview and augmented batch, Fig. 2), and the pixels under a left and a right
keypoint, an invalid depth pixel and a segmentation class are read back.
"""

import matplotlib
from matplotlib import lines
from matplotlib import text as mpl_text
import numpy as np
from PIL import Image
import pytest

from hand25d import colours
from hand25d import decoding
from hand25d import drawing
from hand25d import spec
from hand25d.data import preview
from hand25d.runtime import pipeline
from hand25d.runtime.demo import report

H, W = spec.SENSOR.height, spec.SENSOR.width
P = spec.NUM_PRIMARY_KEYPOINTS
# Per side, where its primary keypoints sit (sensor pixels): a column each,
# 12 px apart, so that no keypoint's label (drawn above right of it) covers another.
_ORIGIN = ((60.0, 40.0), (220.0, 100.0))
# Depth blocks of the synthetic frame: [rows, cols] -> what they hold.
_ZERO, _NAN, _FAR = (slice(20, 60), slice(240, 300)), (slice(180, 220), slice(20, 80)), (
    slice(180, 220), slice(240, 300))


def _primary_xy(side: int) -> np.ndarray:
  x0, y0 = _ORIGIN[side]
  return np.array([[x0, y0 + 12 * k] for k in range(P)], np.float64)


def _depth() -> np.ndarray:
  depth = np.full((H, W), 0.5, np.float32)
  depth[_ZERO] = 0.0
  depth[_NAN] = np.nan
  depth[_FAR] = 5.0  # Beyond the range shown: the top colour, not invalid.
  return depth


def _result(present=(True, True), depth: bool = True) -> pipeline.FrameResult:
  """A frame's result: the sides `present` at _primary_xy, all keypoints visible."""
  hand_results = tuple(
      pipeline.HandResult(
          side=name, present=present[side], presence=0.9, pose=None,
          keypoints_2d=_primary_xy(side), confidence=np.ones(P), visible=np.full(P, present[side]),
          keypoints_3d=np.full((P, 3), 0.5), depth_sources=("surface",) * P)
      for side, name in enumerate(spec.SIDES))
  return pipeline.FrameResult(index=3, timestamp_s=0.1, hands=hand_results,
                              timings_ms={"total": 5.0}, early_out=not any(present),
                              amplitude=np.full((H, W), 400, np.uint16),
                              depth=_depth() if depth else None)


def _pixel(fig, picture: np.ndarray, ax, x: float, y: float) -> np.ndarray:
  """[3, 3, 3] RGB of the picture around data point (x, y) of ax (once the figure is drawn).

  A 3x3 block: matplotlib snaps a small marker's centre to a pixel centre, up
  to a pixel away from the point's own pixel.
  """
  dx, dy = ax.transData.transform((x, y))
  row, col = int(fig.bbox.height - dy), int(dx)
  return picture[row - 1:row + 2, col - 1:col + 2].astype(int)


def _assert_colour(seen: np.ndarray, rgb, what: str, tolerance: int = 2) -> None:
  close = np.abs(seen - np.array(rgb)).max(axis=-1) <= tolerance
  assert close.any(), f"{what}: saw {seen.reshape(-1, 3).tolist()}, expected {rgb}"


def _smallest_text_px(fig) -> float:
  sizes = [t.get_fontsize() * fig.dpi / 72.0 for t in fig.findobj(mpl_text.Text)
           if t.get_visible() and t.get_text().strip()]
  return min(sizes)


def _viridis(value: float) -> np.ndarray:
  return np.round(255 * np.array(matplotlib.colormaps["viridis"](value)[:3])).astype(int)


# --- the colours ---------------------------------------------------------------

def _lab(rgb: np.ndarray, deficiency: str) -> np.ndarray:
  """CIELAB of sRGB colours (0..255) as seen with a colour-vision deficiency (Machado 2009)."""
  machado = {
      "none": np.eye(3),
      "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                 [-0.003882, -0.048116, 1.051998]],
      "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                 [-0.011820, 0.042940, 0.968881]],
      "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                 [0.004733, 0.691367, 0.303900]]}[deficiency]
  c = np.asarray(rgb, np.float64) / 255.0
  linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
  linear = np.clip(linear @ np.asarray(machado).T, 0.0, 1.0)
  xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                           [0.0193, 0.1192, 0.9505]]).T / np.array([0.9505, 1.0, 1.089])
  f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
  return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                   200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def test_colours_follow_the_spec_order():
  assert len(colours.SIDES) == spec.NUM_SIDES
  assert colours.SIDES[spec.SIDES.index("left")] == colours.LEFT
  assert colours.SIDES[spec.SIDES.index("right")] == colours.RIGHT
  assert len(colours.SEGMENTATION) == spec.NUM_SEGMENTATION_CLASSES
  for side in range(spec.NUM_SIDES):
    assert colours.SEGMENTATION[spec.SIDE_SEGMENTATION_CLASS[side]] == colours.SIDES[side]
  assert colours.unit((255, 0, 51)) == (1.0, 0.0, 0.2)


@pytest.mark.parametrize("deficiency", ["none", "protan", "deutan", "tritan"])
def test_colours_stay_apart_for_colour_blind_readers(deficiency):
  left, right = _lab(colours.LEFT, deficiency), _lab(colours.RIGHT, deficiency)
  assert np.linalg.norm(left - right) > 80
  depth_map = _lab(np.round(255 * matplotlib.colormaps[colours.DEPTH_COLORMAP](
      np.linspace(0, 1, 256))[:, :3]), deficiency)
  greys = _lab(np.repeat(np.arange(256)[:, None], 3, axis=1), deficiency)
  for rgb in colours.SIDES:
    assert np.linalg.norm(depth_map - _lab(rgb, deficiency), axis=-1).min() > 10, rgb
    assert np.linalg.norm(greys - _lab(rgb, deficiency), axis=-1).min() > 25, rgb
  invalid = _lab(colours.INVALID_DEPTH, deficiency)
  assert np.linalg.norm(depth_map - invalid, axis=-1).min() > 25


# --- the runtime demo's frames and animation ------------------------------------

@pytest.mark.parametrize("animation", [False, True])
def test_runtime_picture_draws_each_side_in_its_colour(animation):
  fig = report.figure(_result(), animation=animation)
  picture = drawing.rgb_array(fig)
  ax_amp, ax_depth = fig.axes[:2]
  for ax in (ax_amp, ax_depth):
    for side, rgb in enumerate(colours.SIDES):
      for x, y in _primary_xy(side)[[0, -1]]:
        _assert_colour(_pixel(fig, picture, ax, x, y), rgb, f"{spec.SIDES[side]} keypoint")


def test_runtime_depth_shows_invalid_pixels_and_clips_the_far_ones():
  fig = report.figure(_result((False, False)))
  picture = drawing.rgb_array(fig)
  ax_depth = fig.axes[1]

  def at(block):
    return _pixel(fig, picture, ax_depth, (block[1].start + block[1].stop) / 2,
                  (block[0].start + block[0].stop) / 2)

  _assert_colour(at(_ZERO), colours.INVALID_DEPTH, "depth 0")
  _assert_colour(at(_NAN), colours.INVALID_DEPTH, "depth NaN")
  _assert_colour(at(_FAR), _viridis(1.0), "depth beyond the range")
  lo, hi = spec.SENSOR.min_depth_m, spec.SENSOR.max_depth_m
  _assert_colour(_pixel(fig, picture, ax_depth, 150, 120), _viridis((0.5 - lo) / (hi - lo)),
                 "depth 0.5 m", tolerance=4)
  assert "depth (m)" in [ax.get_ylabel() for ax in fig.axes]  # The colour bar, in metres.
  labels = [t.get_text() for t in fig.legends[0].get_texts()]
  assert labels == ["left hand", "right hand", "invalid depth"]


def test_animation_frames_are_large_legible_and_equally_sized():
  shapes = set()
  for result in (_result(), _result((False, False), depth=False)):
    fig = report.figure(result, truth={"keypoints_xy": np.zeros((2, spec.NUM_KEYPOINTS, 2)),
                                       "keypoint_visible": np.ones((2, spec.NUM_KEYPOINTS))},
                        animation=True)
    shapes.add(drawing.rgb_array(fig).shape)
    assert _smallest_text_px(fig) >= drawing.MIN_TEXT_PX
    # Each sensor pixel takes more than one picture pixel (the old GIF: 0.6).
    assert fig.axes[0].bbox.width / W > 1.2
  assert len(shapes) == 1, shapes


def test_runtime_stills_are_legible():
  fig = report.figure(_result())
  drawing.rgb_array(fig)
  assert _smallest_text_px(fig) >= drawing.MIN_TEXT_PX
  assert fig.axes[0].bbox.width / W > 1.6


def _legend_marker(fig, side: int) -> tuple[float, float]:
  """Display (x, y) of the legend's marker of a side."""
  for artist in fig.legends[0].findobj(lines.Line2D):
    if artist.get_marker() == "o" and artist.get_markerfacecolor() == drawing.side_colour(side):
      xy = artist.get_xydata()
      return tuple(artist.get_transform().transform(xy[len(xy) // 2]))
  raise AssertionError(f"no legend marker for {spec.SIDES[side]}")


def test_gif_keeps_each_sides_colour_and_the_frames_size(tmp_path):
  """Also where a side has a few pixels only (its legend marker, with that hand absent)."""
  fig = report.figure(_result((False, True)), animation=True)
  pictures = [drawing.rgb_array(fig), report.draw(_result((False, False)), animation=True)]
  report.write_gif(str(tmp_path / "a.gif"), pictures, fps=10)
  gif = Image.open(tmp_path / "a.gif")
  assert gif.n_frames == 2 and gif.size == pictures[0].shape[1::-1]
  frame = np.asarray(gif.convert("RGB"))
  dx, dy = _legend_marker(fig, 0)
  row, col = int(fig.bbox.height - dy), int(dx)
  _assert_colour(frame[row - 1:row + 2, col - 1:col + 2], colours.LEFT, "left legend marker",
                 tolerance=0)
  x, y = _primary_xy(1)[-1]
  _assert_colour(_pixel(fig, frame, fig.axes[1], x, y), colours.RIGHT, "right keypoint",
                 tolerance=0)


# --- the data preview and the augmented batch -----------------------------------

def _frame() -> dict:
  xy = np.zeros((spec.NUM_SIDES, spec.NUM_KEYPOINTS, 2))
  for side in range(spec.NUM_SIDES):
    xy[side, list(spec.PRIMARY_KEYPOINT_INDICES)] = _primary_xy(side)
    others = [k for k in range(spec.NUM_KEYPOINTS) if k not in spec.PRIMARY_KEYPOINT_INDICES]
    xy[side, others] = _primary_xy(side)[0] + [-12.0, 0.0]
  segmentation = np.zeros((H, W), np.uint8)
  segmentation[100:140, 20:60], segmentation[100:140, 260:300] = 1, 2
  return {"amplitude": np.full((H, W), 400, np.uint16), "depth": _depth(),
          "segmentation": segmentation, "hand_present": np.ones(2), "pose": np.zeros(2),
          "orientation_bin": np.zeros(2), "keypoints_xy": xy,
          "keypoint_visible": np.ones((spec.NUM_SIDES, spec.NUM_KEYPOINTS))}


def test_preview_colours_invalid_depth_and_legibility():
  fig = preview.figure([_frame(), _frame()])
  picture = drawing.rgb_array(fig)
  ax_amp, ax_depth, ax_seg = fig.axes[:3]
  for side, rgb in enumerate(colours.SIDES):
    x, y = _primary_xy(side)[-1]
    _assert_colour(_pixel(fig, picture, ax_amp, x, y), rgb, f"{spec.SIDES[side]} keypoint")
  _assert_colour(_pixel(fig, picture, ax_seg, 40, 120), colours.LEFT, "left segmentation")
  _assert_colour(_pixel(fig, picture, ax_seg, 280, 120), colours.RIGHT, "right segmentation")
  _assert_colour(_pixel(fig, picture, ax_depth, 270, 40), colours.INVALID_DEPTH, "depth 0")
  _assert_colour(_pixel(fig, picture, ax_depth, 50, 200), colours.INVALID_DEPTH, "depth NaN")
  assert _smallest_text_px(fig) >= drawing.MIN_TEXT_PX
  assert "depth (m)" in [ax.get_ylabel() for ax in fig.axes]


def test_augmented_batch_colours_and_legibility():
  h, w = spec.INPUT_HEIGHT, spec.INPUT_WIDTH
  frame = _frame()
  xy = frame["keypoints_xy"] / 2  # Sensor to network pixels.
  t = {"hand_present": np.ones((1, 2)), "segmentation": np.zeros((1, h // 2, w // 2)),
       "keypoints_xy": xy[None], "keypoint_visible": frame["keypoint_visible"][None],
       "pose": np.zeros((1, 2)), "pose_known": np.ones((1, 2)),
       "orientation": np.eye(spec.NUM_ORIENTATION_BINS)[[[0, 1]]],
       "orientation_known": np.ones((1, 2)), "segmentation_known": np.ones(1)}
  for stride in (spec.OUTPUT_STRIDE, max(spec.DEEP_SUPERVISION_STRIDES)):
    cell = decoding.pixel_to_cell(xy, stride)
    t[f"keypoint_index_s{stride}"] = (cell[..., 1] * (w // stride) + cell[..., 0])[None]
  fig = preview.batch_figure(np.full((1, h, w), 0.3), t, "test batch", columns=1)
  picture = drawing.rgb_array(fig)
  for side, rgb in enumerate(colours.SIDES):
    x, y = xy[side, spec.PRIMARY_KEYPOINT_INDICES[-1]]
    _assert_colour(_pixel(fig, picture, fig.axes[0], x, y), rgb, f"{spec.SIDES[side]} target")
  assert _smallest_text_px(fig) >= drawing.MIN_TEXT_PX


# --- Fig. 2 ----------------------------------------------------------------------

def _predictions(image: np.ndarray) -> dict:
  """A model's inputs, outputs and targets as figure._predict returns them, one frame."""
  h, w = image.shape
  stride = spec.OUTPUT_STRIDE
  maps = np.full((1, h // stride, w // stride, spec.NUM_PRIMARY_CHANNELS), -10.0, np.float32)
  true = np.zeros((1, spec.NUM_SIDES, spec.NUM_KEYPOINTS, 2))
  for side in range(spec.NUM_SIDES):
    cells = decoding.pixel_to_cell(_primary_xy(side) / 2, stride)
    for k, (cx, cy) in enumerate(cells):
      maps[0, cy, cx, side * P + k] = 10.0
    true[0, side, list(spec.PRIMARY_KEYPOINT_INDICES)] = decoding.cell_to_pixel(cells, stride)
  segmentation = np.zeros((1, h // 2, w // 2, spec.NUM_SEGMENTATION_CLASSES), np.float32)
  segmentation[0, :, :, 0] = 1.0
  segmentation[0, 10:20, 5:15, 1] = segmentation[0, 40:50, 60:70, 2] = 2.0
  return {"image": image[None], "outputs": {spec.KEYPOINTS: maps,
                                            spec.SEGMENTATION: segmentation},
          "targets": {"frame_id": np.array([7]), "keypoints_xy": true,
                      "keypoint_visible": np.ones((1, spec.NUM_SIDES, spec.NUM_KEYPOINTS))}}


def test_fig2_colours_invalid_depth_and_legibility():
  from hand25d.experiments import figure  # pylint: disable=import-outside-toplevel  (TensorFlow)
  h, w = spec.INPUT_HEIGHT, spec.INPUT_WIDTH
  depth_input = np.full((h, w), 0.25, np.float32)
  depth_input[:20, :20] = 0.0  # Invalid in the network's depth input.
  amp, depth = _predictions(np.full((h, w), 0.4, np.float32)), _predictions(depth_input)
  fig, records = figure.draw(amp, depth, [0])
  picture = drawing.rgb_array(fig)
  assert records == [{"frame_id": 7, "depth_px": 0.0, "amplitude_px": 0.0}]
  ax_depth, ax_amp, ax_seg = fig.axes[:3]
  for ax in (ax_depth, ax_amp):
    for side, rgb in enumerate(colours.SIDES):
      x, y = amp["targets"]["keypoints_xy"][0, side, spec.PRIMARY_KEYPOINT_INDICES[-1]]
      _assert_colour(_pixel(fig, picture, ax, x, y), rgb, f"{spec.SIDES[side]} keypoint")
  _assert_colour(_pixel(fig, picture, ax_depth, 10, 10), colours.INVALID_DEPTH, "depth 0")
  _assert_colour(_pixel(fig, picture, ax_seg, 10, 15), colours.LEFT, "left segmentation")
  _assert_colour(_pixel(fig, picture, ax_seg, 65, 45), colours.RIGHT, "right segmentation")
  assert _smallest_text_px(fig) >= drawing.MIN_TEXT_PX
