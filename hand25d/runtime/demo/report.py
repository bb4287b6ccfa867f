"""Pictures and the Markdown report of a runtime run.

Each frame is drawn with hand25d/drawing.py (the colours of every hand25d
picture, hand25d/colours.py): the amplitude image and the depth image (depth
colour map with its colour bar in metres, invalid pixels black), each
present hand's primary keypoints and skeleton in its side's colour, the
ground truth as white rings where there is one, and a legend. The stills
name each keypoint on the amplitude and give its lifted depth on the depth
image; the animation's frames are smaller and carry no per-keypoint text,
so that what they show still reads at their size. PNG and GIF are written
with Pillow.
"""

import io
import os

import numpy as np
from PIL import Image

from hand25d import atomic
from hand25d import colours
from hand25d import drawing
from hand25d import spec
from hand25d.runtime import pipeline

_PRIMARY = list(spec.PRIMARY_KEYPOINT_INDICES)
# Both pictures are saved at this dpi; the sizes (inches) set how large the
# sensor's pixels come out: about 1.7 (stills) and 1.3 (animation) picture
# pixels per sensor pixel.
DPI = 100
STILL_SIZE_IN = (12.0, 5.0)
ANIMATION_SIZE_IN = (9.0, 4.0)
_FONT = 8.0  # Points: 11 px at DPI.
_TITLE_FONT = 10.0
# The animation's palette (`_gif_palette`): amplitude greys and depth colours.
_GIF_GREYS = 24
_GIF_DEPTH_COLOURS = 32


def _title(result: pipeline.FrameResult) -> str:
  if not result.ok:
    return f"frame {result.index}: skipped ({result.error_kind})"
  hands = [f"{h.side}" + (f" ({h.pose})" if h.pose else "") for h in result.hands if h.present]
  what = ", ".join(hands) if hands else "no hand (early out)"
  return f"frame {result.index}: {what}  {result.timings_ms['total']:.1f} ms"


def figure(result: pipeline.FrameResult, truth: dict | None = None, animation: bool = False):
  """The matplotlib Figure of a result: amplitude and depth panels with keypoints, legend.

  Args:
    result: the pipeline's output for the frame (its amplitude and depth
      images are drawn).
    truth: the frame's ground truth (keypoints_xy, keypoint_visible), or None.
    animation: the smaller picture without per-keypoint text (sequence.gif).
  """
  fig = drawing.new_figure(*(ANIMATION_SIZE_IN if animation else STILL_SIZE_IN), DPI)
  ax_amp, ax_depth = fig.subplots(1, 2)
  fig.suptitle(_title(result), fontsize=_TITLE_FONT)
  for ax, name in ((ax_amp, "amplitude"), (ax_depth, "depth")):
    ax.set_title(name, fontsize=_FONT)
    ax.set_axis_off()
  # The colour bar and the legend in every frame: the layout does not jump.
  drawing.depth_colorbar(fig, ax_depth, spec.SENSOR.min_depth_m, spec.SENSOR.max_depth_m,
                         _FONT, extend="both")
  drawing.legend(fig, drawing.legend_handles(truth=truth is not None, invalid_depth=True), _FONT)
  if result.amplitude is None:  # A bad frame: nothing to show but why.
    ax_amp.text(0.5, 0.5, result.error or "", ha="center", va="center", wrap=True,
                fontsize=_FONT, transform=ax_amp.transAxes)
    return fig
  ax_amp.imshow(np.sqrt(result.amplitude.astype(np.float32)), cmap="gray",
                interpolation="nearest")
  if result.depth is not None:
    drawing.show_depth(ax_depth, result.depth, spec.SENSOR.min_depth_m, spec.SENSOR.max_depth_m)
  else:
    ax_depth.imshow(np.zeros_like(result.amplitude), cmap="gray", vmin=0, vmax=1)
    ax_depth.text(0.5, 0.5, "not computed (no hand)", ha="center", va="center", color="w",
                  fontsize=_FONT, transform=ax_depth.transAxes)
  if truth is not None:
    xy = np.asarray(truth["keypoints_xy"])[:, _PRIMARY]
    visible = np.asarray(truth["keypoint_visible"])[:, _PRIMARY] > 0
    for ax in (ax_amp, ax_depth):
      drawing.draw_truth(ax, xy[visible])
  for side, hand in enumerate(result.hands):
    if hand.present:
      _draw_hand(ax_amp, ax_depth, hand, side, labels=not animation)
  return fig


def draw(result: pipeline.FrameResult, truth: dict | None = None,
         animation: bool = False) -> np.ndarray:
  """[h, w, 3] uint8 picture of a result (`figure`)."""
  return drawing.rgb_array(figure(result, truth, animation))


def _draw_hand(ax_amp, ax_depth, hand: pipeline.HandResult, side: int, labels: bool) -> None:
  xy, visible = hand.keypoints_2d, hand.visible
  for ax in (ax_amp, ax_depth):
    drawing.draw_bones(ax, xy, drawing.PRIMARY_BONES, side, shown=visible)
    drawing.draw_keypoints(ax, xy[visible], side)
  if not labels:
    return
  for k in np.flatnonzero(visible):
    x, y = xy[k]
    drawing.label(ax_amp, x, y, spec.PRIMARY_KEYPOINT_NAMES[k], _FONT)
    z = hand.keypoints_3d[k, 2]
    drawing.label(ax_depth, x, y, f"{100 * z:.1f} cm" if np.isfinite(z) else "no depth", _FONT)


def write_png(path: str, picture: np.ndarray) -> None:
  buffer = io.BytesIO()
  Image.fromarray(picture).save(buffer, format="PNG")
  atomic.write_bytes(path, buffer.getvalue())


def _gif_palette() -> Image.Image:
  """The animation's 256 colours: the named ones exactly, greys, the depth map's colours.

  One fixed palette for every frame, without dithering: an adaptive palette
  per frame turned the few pixels of a side's legend marker into a nearby
  depth colour, and the sensor noise of a dithered or finer-grained frame
  doubles the file.
  """
  named = [colours.LEFT, colours.RIGHT, colours.TRUTH, colours.OUTLINE, colours.INVALID_DEPTH]
  greys = [(v, v, v) for v in np.linspace(0, 255, _GIF_GREYS).round().astype(int).tolist()]
  depth = (255 * drawing.depth_colormap()(np.linspace(0, 1, _GIF_DEPTH_COLOURS))[:, :3])
  rgb = named + greys + [tuple(c) for c in depth.round().astype(int).tolist()]
  palette = Image.new("P", (1, 1))
  palette.putpalette([v for c in rgb for v in c] + [0] * (768 - 3 * len(rgb)))
  return palette


def write_gif(path: str, pictures: list[np.ndarray], fps: float) -> None:
  """An animated GIF of equally sized pictures, looping, in `_gif_palette`'s colours."""
  palette = _gif_palette()
  images = [Image.fromarray(p).quantize(palette=palette, dither=Image.Dither.NONE)
            for p in pictures]
  buffer = io.BytesIO()
  images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                 duration=int(round(1e3 / fps)), loop=0)
  atomic.write_bytes(path, buffer.getvalue())


def _fmt(value, digits: int = 1) -> str:
  return "n/a" if value is None else f"{value:.{digits}f}"


def _stat_row(name: str, s: dict, unit: str) -> str:
  return (f"| {name} | {_fmt(s['mean'])} {unit} | {_fmt(s['median'])} {unit} | "
          f"{_fmt(s['p90'])} {unit} | {s['count']} |")


def markdown(summary: dict, out_dir: str, images: list[str], gif: str | None) -> str:
  """The report of a run (summary as written by runner.run) as Markdown."""
  f, lat = summary["frames"], summary["latency"]
  bad = ", ".join(f"{n} {k}" for k, n in sorted(f["bad"].items())) or "none"
  lines = [
      "# hand25d runtime report", "",
      f"Model `{summary['model']}` on input `{summary['input']}`; outputs in `{out_dir}`.", "",
      f"Frames: {f['total']} ({f['processed']} processed, {f['early_out']} early outs; "
      f"bad frames skipped: {bad}).", "",
      "## Speed (phase frames in, 2.5D out)", "",
      f"Depth path {'in parallel with' if summary['parallel_depth'] else 'after'} the network, "
      f"backend {summary['backend']}"
      + (", the network on each frame and its mirror image (mirror ensemble)"
         if summary.get("mirror_ensemble") else "") + ".", "",
      "| frames/s | mean | p50 | p90 | p99 |", "| --- | --- | --- | --- | --- |",
      f"| {_fmt(lat.get('fps'))} | {_fmt(lat.get('mean_ms'), 2)} ms | "
      f"{_fmt(lat.get('p50_ms'), 2)} ms | {_fmt(lat.get('p90_ms'), 2)} ms | "
      f"{_fmt(lat.get('p99_ms'), 2)} ms |", ""]
  if lat.get("stage_mean_ms"):
    lines += ["Mean per stage: " + ", ".join(
        f"{k} {v:.2f} ms" for k, v in lat["stage_mean_ms"].items()) + ".", ""]
  acc = summary.get("accuracy")
  if acc:
    lines += [
        "## Accuracy against the renderer's ground truth", "",
        f"{acc['keypoints_found']} of {acc['keypoints_in_truth']} visible true keypoints found; "
        f"hand presence right in {_fmt(100 * acc['hand_presence_accuracy'])} % of hands.", "",
        "| error | mean | median | p90 | keypoints |", "| --- | --- | --- | --- | --- |",
        _stat_row("2D (network)", acc["error_2d_px"], "px"),
        _stat_row("2.5D (network + lifting)", acc["error_25d_mm"], "mm"),
        _stat_row("2.5D, lifting the true 2D keypoints", acc["lifting_error_mm"], "mm"),
        _stat_row("z of the same vs the rendered surface", acc["lifting_surface_error_mm"], "mm"),
        "", "True keypoints are joint centres; lifted points lie on the hand's surface.", ""]
  jit = summary.get("jitter")
  if jit:
    lines += [
        "## Jitter (mean |second difference| per frame, within clips)", "",
        "| track | without smoothing | with One Euro |", "| --- | --- | --- |",
        f"| network 2D | {_fmt(jit['network_raw']['px'], 2)} px | "
        f"{_fmt(jit['network_smoothed']['px'], 2)} px |",
        f"| network 2.5D | {_fmt(jit['network_raw']['mm'])} mm | "
        f"{_fmt(jit['network_smoothed']['mm'])} mm |"]
    if "lifting_raw_mm" in jit:
      lines += [f"| true 2D lifted | {_fmt(jit['lifting_raw_mm'])} mm | "
                f"{_fmt(jit['lifting_smoothed_mm'])} mm |",
                "", f"The true 3D motion itself: {_fmt(jit['truth_mm'])} mm."]
    lines.append("")
  if images or gif:
    lines += ["## Frames", ""]
    lines += [f"![{os.path.basename(p)}]({p})" for p in images]
    if gif:
      lines += ["", f"![sequence]({gif})"]
  return "\n".join(lines) + "\n"
