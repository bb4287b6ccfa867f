"""Pictures and the Markdown report of a runtime run.

Frames are drawn with matplotlib's object API (Figure + Agg canvas: no
pyplot, no global backend): the amplitude image with each visible keypoint
named, and the depth image with each keypoint's lifted depth, the skeleton
of the primary keypoints in the side's colour, and the ground truth as
white crosses where there is one. PNG and GIF are written with Pillow.
"""

import io
import os

from matplotlib.backends import backend_agg
from matplotlib import figure
import numpy as np
from PIL import Image

from hand25d import atomic
from hand25d import spec
from hand25d.runtime import pipeline

SIDE_COLOURS = ("tab:orange", "tab:cyan")
_PRIMARY = list(spec.PRIMARY_KEYPOINT_INDICES)


def _primary_parent(k: int) -> int:
  """Primary index of the nearest primary ancestor of primary keypoint k (-1: none)."""
  parent = spec.KEYPOINT_PARENTS[spec.PRIMARY_KEYPOINT_INDICES[k]]
  while parent >= 0 and parent not in spec.PRIMARY_KEYPOINT_INDICES:
    parent = spec.KEYPOINT_PARENTS[parent]
  return spec.PRIMARY_KEYPOINT_INDICES.index(parent) if parent >= 0 else -1


# (child, parent) pairs of primary keypoints: the skeleton drawn.
SKELETON = tuple((k, _primary_parent(k)) for k in range(spec.NUM_PRIMARY_KEYPOINTS)
                 if _primary_parent(k) >= 0)


def _title(result: pipeline.FrameResult) -> str:
  if not result.ok:
    return f"frame {result.index}: skipped ({result.error_kind})"
  hands = [f"{h.side}" + (f" ({h.pose})" if h.pose else "") for h in result.hands if h.present]
  what = ", ".join(hands) if hands else "no hand (early out)"
  return f"frame {result.index}: {what}  {result.timings_ms['total']:.1f} ms"


def draw(result: pipeline.FrameResult, truth: dict | None = None,
         dpi: int = 100) -> np.ndarray:
  """[h, w, 3] uint8 picture of a result: amplitude and depth panels with keypoints."""
  fig = figure.Figure(figsize=(8.0, 3.4), dpi=dpi)
  canvas = backend_agg.FigureCanvasAgg(fig)
  ax_amp, ax_depth = fig.subplots(1, 2)
  fig.suptitle(_title(result), fontsize=9)
  for ax, name in ((ax_amp, "amplitude"), (ax_depth, "depth (m)")):
    ax.set_title(name, fontsize=8)
    ax.set_axis_off()
  if result.amplitude is None:  # A bad frame: nothing to show but why.
    ax_amp.text(0.5, 0.5, result.error or "", ha="center", va="center", wrap=True, fontsize=7,
                transform=ax_amp.transAxes)
  else:
    ax_amp.imshow(np.sqrt(result.amplitude.astype(np.float32)), cmap="gray")
    depth = result.depth
    if depth is not None:
      image = ax_depth.imshow(np.ma.masked_equal(depth, 0.0), cmap="viridis",
                              vmin=spec.SENSOR.min_depth_m, vmax=spec.SENSOR.max_depth_m)
      fig.colorbar(image, ax=ax_depth, fraction=0.035, pad=0.02).ax.tick_params(labelsize=6)
    else:
      ax_depth.imshow(np.zeros_like(result.amplitude), cmap="gray")
      ax_depth.text(0.5, 0.5, "not computed (no hand)", ha="center", va="center", color="w",
                    fontsize=8, transform=ax_depth.transAxes)
    if truth is not None:
      xy, visible = np.asarray(truth["keypoints_xy"])[:, _PRIMARY], np.asarray(
          truth["keypoint_visible"])[:, _PRIMARY] > 0
      for ax in (ax_amp, ax_depth):
        ax.scatter(xy[visible][:, 0], xy[visible][:, 1], marker="x", s=10, c="w", linewidths=0.7)
    for side, hand in enumerate(result.hands):
      if hand.present:
        _draw_hand(ax_amp, ax_depth, hand, SIDE_COLOURS[side])
  fig.tight_layout()
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _draw_hand(ax_amp, ax_depth, hand: pipeline.HandResult, colour: str) -> None:
  xy, visible = hand.keypoints_2d, hand.visible
  for ax in (ax_amp, ax_depth):
    for k, parent in SKELETON:
      if visible[k] and visible[parent]:
        ax.plot(xy[[k, parent], 0], xy[[k, parent], 1], c=colour, lw=1.0)
    ax.scatter(xy[visible, 0], xy[visible, 1], s=9, c=colour, edgecolors="k", linewidths=0.3)
  for k in np.flatnonzero(visible):
    x, y = xy[k]
    ax_amp.annotate(spec.PRIMARY_KEYPOINT_NAMES[k], (x, y), xytext=(3, 2),
                    textcoords="offset points", fontsize=4.5, color=colour)
    z = hand.keypoints_3d[k, 2]
    label = f"{100 * z:.1f} cm" if np.isfinite(z) else "no depth"
    ax_depth.annotate(label, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=4.5,
                      color="w")


def write_png(path: str, picture: np.ndarray) -> None:
  buffer = io.BytesIO()
  Image.fromarray(picture).save(buffer, format="PNG")
  atomic.write_bytes(path, buffer.getvalue())


def write_gif(path: str, pictures: list[np.ndarray], fps: float) -> None:
  """An animated GIF of equally sized pictures, looping."""
  images = [Image.fromarray(p) for p in pictures]
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
      f"backend {summary['backend']}.", "",
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
