"""matplotlib pieces shared by every picture: hands, depth, legend, colour bar, saving.

The data preview (hand25d/data/preview.py), Fig. 2
(hand25d/experiments/figure.py) and the runtime demo's frames and animation
(hand25d/runtime/demo/report.py) draw with these, so that a side, a depth or
an invalid pixel looks the same in all of them; the colours are
hand25d/colours.py's. Figures are built with matplotlib's object API (Figure
and the Agg canvas: no pyplot, no global backend) and saved at their own dpi,
so the text sizes set here are the sizes in the saved file.
"""

import io
from typing import Iterable, Sequence

from matplotlib import cm
from matplotlib import colors as mpl_colors
from matplotlib import colormaps
from matplotlib import figure
from matplotlib import lines
from matplotlib import patches
from matplotlib import patheffects
from matplotlib.backends import backend_agg
import numpy as np

from hand25d import colours
from hand25d import spec

# The smallest text, in pixels of the saved image (font size in points x dpi
# / 72), that reads at 100 % zoom; tests/pictures_test.py holds every picture to it.
MIN_TEXT_PX = 10.0

OUTLINE = colours.unit(colours.OUTLINE)
TRUTH = colours.unit(colours.TRUTH)


def _primary_parent(k: int) -> int:
  """Primary index of the nearest primary ancestor of primary keypoint k (-1: none)."""
  parent = spec.KEYPOINT_PARENTS[spec.PRIMARY_KEYPOINT_INDICES[k]]
  while parent >= 0 and parent not in spec.PRIMARY_KEYPOINT_INDICES:
    parent = spec.KEYPOINT_PARENTS[parent]
  return spec.PRIMARY_KEYPOINT_INDICES.index(parent) if parent >= 0 else -1


# The skeletons drawn, as (keypoint, parent) index pairs: of the spec's
# keypoints, and of the primary ones (each joined to its nearest primary
# ancestor).
BONES = tuple((k, parent) for k, parent in enumerate(spec.KEYPOINT_PARENTS) if parent >= 0)
PRIMARY_BONES = tuple((k, _primary_parent(k)) for k in range(spec.NUM_PRIMARY_KEYPOINTS)
                      if _primary_parent(k) >= 0)


def side_colour(side: int) -> tuple[float, float, float]:
  """matplotlib colour of spec.SIDES[side]."""
  return colours.unit(colours.SIDES[side])


def new_figure(width_in: float, height_in: float, dpi: float) -> figure.Figure:
  """A figure with constrained layout (room for a legend and colour bars outside the axes)."""
  fig = figure.Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
  backend_agg.FigureCanvasAgg(fig)
  return fig


def png_bytes(fig: figure.Figure) -> bytes:
  """The figure as PNG bytes at its own dpi."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=fig.dpi)
  return buffer.getvalue()


def rgb_array(fig: figure.Figure) -> np.ndarray:
  """[h, w, 3] uint8 picture of the figure at its own dpi."""
  fig.canvas.draw()
  return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def depth_colormap() -> mpl_colors.Colormap:
  """colours.DEPTH_COLORMAP with invalid (masked) pixels in colours.INVALID_DEPTH."""
  return colormaps[colours.DEPTH_COLORMAP].with_extremes(bad=colours.unit(colours.INVALID_DEPTH))


def invalid_depth(depth: np.ndarray) -> np.ndarray:
  """Where a depth image holds no measurement: 0 (sensor.depth's mark), NaN, Inf, negative."""
  depth = np.asarray(depth, np.float32)
  return ~np.isfinite(depth) | (depth <= 0.0)


def show_depth(ax, depth_m: np.ndarray, vmin_m: float, vmax_m: float) -> None:
  """Draws a depth image (metres) in the depth colour map, invalid pixels in their colour.

  Depth outside [vmin_m, vmax_m] takes the end colours (the colour bar's
  arrows say so). Pixels are drawn as squares (no smoothing), so a single
  invalid pixel stays visible.
  """
  depth = np.asarray(depth_m, np.float32)
  ax.imshow(np.ma.masked_array(depth, invalid_depth(depth)), cmap=depth_colormap(),
            vmin=vmin_m, vmax=vmax_m, interpolation="nearest")


def depth_colorbar(fig: figure.Figure, axes, vmin_m: float, vmax_m: float, fontsize: float,
                   extend: str = "neither", rows: int = 1):
  """A colour bar in metres beside `axes` (one Axes, or a column of `rows` sharing the bar).

  It needs no image: a panel without depth keeps the same layout (and an
  animation's frames stay aligned).
  """
  mappable = cm.ScalarMappable(mpl_colors.Normalize(vmin_m, vmax_m), depth_colormap())
  bar = fig.colorbar(mappable, ax=axes, extend=extend, shrink=0.9 if rows == 1 else 0.6,
                     aspect=20 * rows, pad=0.01)
  bar.set_label("depth (m)", fontsize=fontsize)
  bar.ax.tick_params(labelsize=fontsize)
  return bar


def _outline(width: float) -> list:
  return [patheffects.withStroke(linewidth=width, foreground=OUTLINE)]


def draw_bones(ax, xy: np.ndarray, bones: Iterable[tuple[int, int]], side: int,
               shown: np.ndarray | None = None, lw: float = 1.2, alpha: float = 1.0) -> None:
  """Lines between keypoints xy[k] and xy[parent] for each (k, parent), outlined.

  With `shown` ([K] bool), only the bones whose both ends are shown.
  """
  for k, parent in bones:
    if shown is not None and not (shown[k] and shown[parent]):
      continue
    ax.plot(xy[[k, parent], 0], xy[[k, parent], 1], color=side_colour(side), lw=lw, alpha=alpha,
            solid_capstyle="round", path_effects=_outline(lw + 1.2))


def draw_keypoints(ax, xy: np.ndarray, side: int, size: float = 16.0,
                   filled: bool = True) -> None:
  """Keypoint markers in the side's colour: filled dots (outlined), or rings (hidden ones)."""
  xy = np.asarray(xy).reshape(-1, 2)
  if filled:
    ax.scatter(xy[:, 0], xy[:, 1], s=size, color=side_colour(side), edgecolors=OUTLINE,
               linewidths=0.6, zorder=3)
  else:
    ax.scatter(xy[:, 0], xy[:, 1], s=size, facecolors="none", edgecolors=side_colour(side),
               linewidths=1.0, zorder=3)


def draw_truth(ax, xy: np.ndarray, size: float = 40.0) -> None:
  """Ground-truth keypoints as rings (colours.TRUTH, outlined), around where the dots should sit."""
  xy = np.asarray(xy).reshape(-1, 2)
  ax.scatter(xy[:, 0], xy[:, 1], s=size, facecolors="none", edgecolors=TRUTH, linewidths=0.9,
             zorder=2, path_effects=_outline(2.2))


def label(ax, x: float, y: float, text: str, fontsize: float) -> None:
  """White text above right of (x, y) in data coordinates, outlined so it reads on any pixel."""
  ax.annotate(text, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=fontsize,
              color=colours.unit(colours.LABEL), path_effects=_outline(2.0), zorder=4)


def legend_handles(hidden: bool = False, truth: bool = False,
                   invalid_depth: bool = False) -> list:
  """Legend entries for what a picture shows, in one order for every picture: the sides first."""
  handles = [lines.Line2D([], [], color=side_colour(s), marker="o", markeredgecolor=OUTLINE,
                          markeredgewidth=0.6, lw=1.2, label=f"{name} hand")
             for s, name in enumerate(spec.SIDES)]
  if hidden:
    handles.append(lines.Line2D([], [], ls="none", marker="o", markerfacecolor="none",
                                markeredgecolor="0.5", label="hidden keypoint (ring)"))
  if truth:
    handles.append(lines.Line2D([], [], ls="none", marker="o", markerfacecolor="none",
                                markeredgecolor=TRUTH, markersize=7, markeredgewidth=0.9,
                                path_effects=_outline(2.2), label="ground truth"))
  if invalid_depth:
    handles.append(patches.Patch(facecolor=colours.unit(colours.INVALID_DEPTH),
                                 edgecolor="0.5", label="invalid depth"))
  return handles


def legend(fig: figure.Figure, handles: Sequence, fontsize: float) -> None:
  """One legend row under the figure's axes."""
  fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=fontsize,
             frameon=False, handlelength=1.6, columnspacing=1.4)


def segmentation_image(classes: np.ndarray) -> np.ndarray:
  """[h, w, 3] float RGB of segmentation classes (spec.SEGMENTATION_CLASSES order)."""
  palette = np.array([colours.unit(c) for c in colours.SEGMENTATION], np.float32)
  return palette[np.asarray(classes, np.int64)]
