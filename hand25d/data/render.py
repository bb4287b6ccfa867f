"""A vectorised ray caster of simple primitives into a depth and id buffer.

Rays leave the pinhole camera at the origin through each pixel centre with
direction ((x - cx) / fx, (y - cy) / fy, 1); because the direction's z is 1
the ray parameter t of a hit *is* the z-depth. Every primitive is intersected
with the rays of its own screen bounding box only (numpy, no per-pixel Python;
capsules and cylinders, the most numerous, per pixel in a numba kernel),
solved further only for the rays whose discriminant says they meet it, and
z-buffered. Primitives: capsules (fingers, forearm, distractors),
cylinders, ellipsoids (palm, spheres), oriented boxes and planes.
"""

import math

import numba
import numpy as np

from hand25d import sensor
from hand25d import spec

NO_HIT = np.inf


# The camera is the runtime's (hand25d/sensor.py).
Camera = sensor.Camera
camera = sensor.camera


class DepthBuffer:
  """Z-buffer of depth (metres, inf = nothing) and the id of the nearest primitive."""

  def __init__(self, camera: Camera):
    self.camera = camera
    self.depth = np.full((camera.height, camera.width), NO_HIT)
    self.ids = np.full((camera.height, camera.width), -1, np.int32)

  def _box(self, centre: np.ndarray, radius: float):
    """Pixel box (y0, y1, x0, x1) covering the projection of a sphere.

    Exact per axis: the tangent planes through the camera that contain the
    other image axis are at angles atan2(c, z) +- asin(radius / hypot(c, z)).
    """
    cam = self.camera
    if centre[2] - radius < 0.02:  # Near or behind the camera: test every pixel.
      return 0, cam.height, 0, cam.width
    k = cam.intrinsics
    x0, x1 = _extent(centre[0], centre[2], radius, k.fx, k.cx, cam.width)
    y0, y1 = _extent(centre[1], centre[2], radius, k.fy, k.cy, cam.height)
    return y0, y1, x0, x1

  def _merge(self, box, hit: np.ndarray, t: np.ndarray, obj_id: int) -> None:
    """Z-buffers a primitive's depths into the pixels of `box` it may cover.

    Args:
      box: (y0, y1, x0, x1), the pixel box the primitive was cast in.
      hit: [y1 - y0, x1 - x0] bool, the pixels of the box that `t` holds.
      t: [count of hit] float64 depths (metres) of those pixels in row-major
        order; NO_HIT (or anything not nearer than the buffer) leaves a pixel.
    """
    y0, y1, x0, x1 = box
    depth, ids = self.depth[y0:y1, x0:x1], self.ids[y0:y1, x0:x1]
    old = depth[hit]
    closer = t < old
    depth[hit] = np.where(closer, t, old)
    ids[hit] = np.where(closer, obj_id, ids[hit])

  def _rays(self, box):
    y0, y1, x0, x1 = box
    return self.camera.rays[y0:y1, x0:x1]

  def _ray_sq(self, box):
    y0, y1, x0, x1 = box
    return self.camera.ray_sq[y0:y1, x0:x1]

  def add_capsule(self, a: np.ndarray, b: np.ndarray, radius: float, obj_id: int) -> None:
    """A capsule: all points within `radius` of the segment a-b."""
    self._add_swept(a, b, radius, obj_id, rounded=True)

  def add_cylinder(self, a: np.ndarray, b: np.ndarray, radius: float, obj_id: int) -> None:
    """A solid cylinder of `radius` about the segment a-b with flat end caps."""
    self._add_swept(a, b, radius, obj_id, rounded=False)

  def _add_swept(self, a: np.ndarray, b: np.ndarray, radius: float, obj_id: int,
                 rounded: bool) -> None:
    """A capsule (rounded) or a cylinder: the infinite cylinder about a-b, then the ends.

    The ray o + t d (o = 0) meets the infinite cylinder where
    qa t^2 + 2 qb t + qc = 0; its entry point at y = (p - a).ba in (0, |ba|^2)
    is on the body. Otherwise the first hit is on the end on that side: the
    end sphere of a capsule, or the cap plane of a cylinder if the ray is
    inside the infinite cylinder there.
    """
    # A projected capsule lies in the convex hull of its projected end spheres.
    box = _union(self._box(a, radius), self._box(b, radius))
    if box[0] >= box[1] or box[2] >= box[3]:
      return
    d = self._rays(box)
    ba = b - a
    baba, baoa = ba @ ba, -(ba @ a)
    # numpy's products (OpenBLAS's gemv, whose bits depend on the row segment),
    # the per-pixel rest in _swept_into.
    bard, da, rdrd = d @ ba, d @ a, self._ray_sq(box)
    qc = baba * (a @ a) - baoa * baoa - radius * radius * baba
    y0, y1, x0, x1 = box
    _swept_into(bard, da, rdrd, baba, baoa, qc, a @ a, b @ b, radius * radius, rounded,
                self.depth[y0:y1, x0:x1], self.ids[y0:y1, x0:x1], obj_id)

  def add_ellipsoid(self, centre: np.ndarray, rotation: np.ndarray, semi_axes: np.ndarray,
                    obj_id: int) -> None:
    """An ellipsoid with axes = rotation's columns scaled by semi_axes (a sphere if equal)."""
    box = self._box(centre, float(np.max(semi_axes)))
    if box[0] >= box[1] or box[2] >= box[3]:
      return
    m = rotation / semi_axes  # Columns scaled: camera -> unit-sphere coordinates via m.T.
    d = self._rays(box) @ m
    o = -centre @ m
    y0, y1, x0, x1 = box
    _ellipsoid_into(np.einsum("...i,...i", d, d), d @ o, o @ o - 1.0, self.depth[y0:y1, x0:x1],
                    self.ids[y0:y1, x0:x1], obj_id)

  def add_box(self, centre: np.ndarray, rotation: np.ndarray, half_sizes: np.ndarray,
              obj_id: int) -> None:
    """An oriented box (slab test) with half extents along rotation's columns."""
    box = self._box(centre, float(np.linalg.norm(half_sizes)))
    if box[0] >= box[1] or box[2] >= box[3]:
      return
    d = self._rays(box) @ rotation
    o = -centre @ rotation
    with np.errstate(divide="ignore", invalid="ignore"):
      t1 = (-half_sizes - o) / d
      t2 = (half_sizes - o) / d
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (near <= far) & (near > 0)
    self._merge(box, hit, near[hit], obj_id)

  def add_plane(self, point: np.ndarray, normal: np.ndarray, obj_id: int,
                max_depth: float) -> None:
    """An infinite plane through `point`, cut off beyond `max_depth` metres."""
    _plane_into(self.camera.rays @ normal, point @ normal, max_depth, self.depth, self.ids,
                obj_id)


def _extent(c: float, z: float, radius: float, f: float, centre_px: float,
            size: int) -> tuple[int, int]:
  """Pixel range [lo, hi) on one image axis covered by a sphere in front of the camera."""
  a = math.atan2(c, z)
  b = math.asin(min(radius / math.hypot(c, z), 1.0))
  lo = f * math.tan(a - b) + centre_px
  hi = f * math.tan(a + b) + centre_px
  return max(int(math.floor(lo)), 0), min(int(math.ceil(hi)) + 1, size)


def _union(*boxes):
  return (min(b[0] for b in boxes), max(b[1] for b in boxes),
          min(b[2] for b in boxes), max(b[3] for b in boxes))


@numba.njit(cache=True, error_model="numpy")
def _swept_into(bard, da, rdrd, baba, baoa, qc, aa, bb, rr, rounded, depth, ids, obj_id):
  """Ray casts a capsule or cylinder (DepthBuffer._add_swept) into one box of the buffer.

  Args:
    bard, da: [h, w] float64 d.(b - a) and d.a of the box's rays d.
    rdrd: [h, w] float64 d.d.
    baba, baoa, qc: |b - a|^2, -(b - a).a and the constant of the cylinder's
      quadratic (see _add_swept).
    aa, bb, rr: a.a, b.b and radius^2 (capsule end spheres).
    rounded: a capsule (end spheres) or a cylinder (flat caps).
    depth, ids: [h, w] views of the buffer's box, z-buffered in place.
    obj_id: the id written where the primitive is nearer.

  The arithmetic is numpy's, operation for operation and in float64 (no
  fused multiply-adds), so the buffer holds the same bits as numpy would.
  """
  for i in range(bard.shape[0]):
    for j in range(bard.shape[1]):
      qa = baba * rdrd[i, j] - bard[i, j] * bard[i, j]
      qb = -baba * da[i, j] - baoa * bard[i, j]
      h = qb * qb - qa * qc
      if not h >= 0:  # Misses the infinite cylinder.
        continue
      t = (-qb - np.sqrt(h)) / qa
      y = baoa + t * bard[i, j]
      if not (y > 0 and y < baba):  # Not on the body: the end on that side.
        before_a = y <= 0
        if rounded:
          cb = -da[i, j] if before_a else -(da[i, j] + bard[i, j])
          hc = cb * cb - rdrd[i, j] * ((aa if before_a else bb) - rr)
          t = (-cb - np.sqrt(hc)) / rdrd[i, j] if hc >= 0 else NO_HIT
        else:
          t = ((0.0 if before_a else baba) - baoa) / bard[i, j]
          if not abs(qb + qa * t) < np.sqrt(h):
            t = NO_HIT
      if t > 0 and t < depth[i, j]:
        depth[i, j] = t
        ids[i, j] = obj_id


@numba.njit(cache=True, error_model="numpy")
def _ellipsoid_into(qa, qb, qc, depth, ids, obj_id):
  """Ray casts an ellipsoid (DepthBuffer.add_ellipsoid) into one box of the buffer.

  Args:
    qa, qb: [h, w] float64 coefficients of the box's rays' quadratic
      qa t^2 + 2 qb t + qc = 0 in unit-sphere coordinates.
    qc: its constant.
    depth, ids: [h, w] views of the buffer's box, z-buffered in place.
    obj_id: the id written where the ellipsoid is nearer.

  float64 arithmetic in numpy's order, as _swept_into.
  """
  for i in range(qa.shape[0]):
    for j in range(qa.shape[1]):
      h = qb[i, j] * qb[i, j] - qa[i, j] * qc
      if h >= 0:  # Else a miss.
        t = (-qb[i, j] - np.sqrt(h)) / qa[i, j]
        if t > 0 and t < depth[i, j]:
          depth[i, j] = t
          ids[i, j] = obj_id


@numba.njit(cache=True, error_model="numpy")
def _plane_into(denom, numerator, max_depth, depth, ids, obj_id):
  """Z-buffers a plane's t = numerator / denom ([H, W] float64) where it lies in (0, max_depth)."""
  for i in range(denom.shape[0]):
    for j in range(denom.shape[1]):
      t = numerator / denom[i, j]
      if t > 0 and t < max_depth and t < depth[i, j]:
        depth[i, j] = t
        ids[i, j] = obj_id
