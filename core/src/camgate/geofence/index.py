"""A spatial index of cameras: a hashed grid of Earth-centred cubes.

Each camera is kept at its Earth-centred, Earth-fixed (ECEF) position in the cube of side
``cell_m`` that contains it; only cubes that hold cameras exist (a dict from the packed cube
number to its cameras). A query names a box in ECEF, visits the cubes that overlap it, and
returns the cameras found there: a *superset* of the answer, which the caller narrows with the
exact geodesic test (:mod:`camgate.geofence.geodesy`). Because the straight line between two
points is never longer than the geodesic between them, a query "within ``r`` m of P" can never
miss a camera, at the poles or across the antimeridian alike — there is no latitude/longitude
seam to get wrong.

Updates are incremental: :meth:`CameraIndex.add` enrols a camera or moves it (it leaves its old
cube), :meth:`CameraIndex.remove` takes it out; neither touches any other camera. Positions
live in growing numpy arrays (slots are reused after a removal), so a query that would visit
more cubes than it is worth (a very large zone) scans all positions in one vectorised pass
instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from camgate.errors import NotFound, ValidationError
from camgate.geofence.geodesy import (
    axial_height,
    check_latlon,
    ecef,
    inverse,
    parallel_radius,
)
from camgate.models import Camera, GeoPoint

if TYPE_CHECKING:
    from camgate.store import Store

__all__ = ["CameraIndex", "StoreIndex"]

Slots = npt.NDArray[np.int64]
_OFFSET = 1 << 20  # cube numbers are packed into 21 bits per axis
_MASK = (1 << 21) - 1
#: Above this many cubes a query scans every position at once instead of visiting cubes.
_MAX_CUBES = 20_000
#: Every indexed position (on the WGS84 ellipsoid) lies within this many metres of the Earth's
#: centre on each axis: query boxes are clipped to it, so no radius, however large, makes the
#: cube arithmetic overflow or a walk over more cubes than the Earth holds.
_EARTH_REACH_M = 6_400_000.0


class CameraIndex:
    """Cameras by position, for fast "which cameras could be in this zone" questions.

    ``cell_m`` is the side of a grid cube in metres (at least 10); about the radius of a typical
    query is a good choice. Queries return candidate *slots*; :meth:`ids`, :attr:`lat`,
    :attr:`lon` and :meth:`camera` read what is stored in them.
    """

    def __init__(self, cell_m: float = 500.0) -> None:
        if not math.isfinite(cell_m) or cell_m < 10.0:
            raise ValidationError(f"cell_m={cell_m!r}: must be a number of metres, at least 10")
        self.cell_m = float(cell_m)
        self._cells: dict[int, list[int]] = {}
        self._slot: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._cameras: list[Camera | None] = []
        self._key = np.zeros(0, np.int64)
        self._xyz = np.zeros((0, 3))
        self._lat = np.zeros(0)
        self._lon = np.zeros(0)
        self._active = np.zeros(0, bool)
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._slot

    def __repr__(self) -> str:
        return f"<CameraIndex {len(self)} cameras in {len(self._cells)} cubes of {self.cell_m} m>"

    # ------------------------------------------------------------------ storage

    @property
    def lat(self) -> npt.NDArray[np.float64]:
        """Latitude of every slot (read-only view; meaningless for free slots)."""
        return self._lat

    @property
    def lon(self) -> npt.NDArray[np.float64]:
        """Longitude of every slot (read-only view; meaningless for free slots)."""
        return self._lon

    def ids(self, slots: Iterable[int]) -> list[str]:
        """The camera ids stored in ``slots``."""
        return [self._ids[s] or "" for s in slots]

    def camera_ids(self) -> list[str]:
        """Every indexed camera id."""
        return list(self._slot)

    def camera(self, slot: int) -> Camera | None:
        """The :class:`Camera` stored in ``slot``, or None when only a position was indexed."""
        return self._cameras[slot]

    def slot(self, camera_id: str) -> int:
        """The slot of a camera; :class:`NotFound` when it is not indexed."""
        try:
            return self._slot[camera_id]
        except KeyError:
            raise NotFound(f"camera {camera_id!r} is not in the geofence index") from None

    def _grow(self, need: int) -> None:
        size = len(self._ids)
        if need <= size:
            return
        cap = max(need, 2 * size, 64)
        extra = cap - size
        self._ids.extend([None] * extra)
        self._cameras.extend([None] * extra)
        self._key = np.concatenate([self._key, np.zeros(extra, np.int64)])
        self._xyz = np.concatenate([self._xyz, np.zeros((extra, 3))])
        self._lat = np.concatenate([self._lat, np.zeros(extra)])
        self._lon = np.concatenate([self._lon, np.zeros(extra)])
        self._active = np.concatenate([self._active, np.zeros(extra, bool)])
        self._free.extend(range(cap - 1, size - 1, -1))

    def _keys(self, xyz: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        cube = np.floor(xyz / self.cell_m).astype(np.int64) + _OFFSET
        return (cube[:, 0] << 42) | (cube[:, 1] << 21) | cube[:, 2]

    # ------------------------------------------------------------------ updates

    def add(self, camera: Camera) -> None:
        """Index a camera that enrolled, or move one already indexed to its new position."""
        self.add_points([camera.id], [camera.position.lat], [camera.position.lon], [camera])

    def add_points(
        self,
        ids: Sequence[str],
        lat: Any,
        lon: Any,
        cameras: Sequence[Camera] | None = None,
    ) -> None:
        """Index many positions at once (vectorised); ids already indexed are moved.

        ``cameras``, when given, are kept with their positions so that queries can read their
        fields of view. Raises :class:`ValidationError` for a bad coordinate, before changing
        anything.
        """
        lat_a = np.asarray(lat, float).ravel()
        lon_a = np.asarray(lon, float).ravel()
        if not len(ids) == len(lat_a) == len(lon_a):
            raise ValidationError("ids, lat and lon must have the same length")
        check_latlon(lat_a, lon_a, "camera position")
        if not len(ids):
            return
        if len(set(ids)) != len(ids):
            raise ValidationError("the same camera id is given twice")
        for camera_id in ids:
            if camera_id in self._slot:
                self.remove(camera_id)
        self._grow(len(self._slot) + len(ids))
        slots = np.asarray([self._free.pop() for _ in ids], np.int64)
        xyz = ecef(lat_a, lon_a)
        keys = self._keys(xyz)
        self._xyz[slots] = xyz
        self._lat[slots] = lat_a
        self._lon[slots] = lon_a
        self._key[slots] = keys
        self._active[slots] = True
        for i, (camera_id, slot) in enumerate(zip(ids, slots.tolist(), strict=True)):
            self._ids[slot] = camera_id
            self._slot[camera_id] = slot
            self._cameras[slot] = cameras[i] if cameras is not None else None
        if len(ids) == 1:
            self._cells.setdefault(int(keys[0]), []).append(int(slots[0]))
            return
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        sorted_slots = slots[order]
        bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
        starts = np.concatenate([[0], bounds]).tolist()
        ends = np.concatenate([bounds, [len(sorted_keys)]]).tolist()
        key_list = sorted_keys[starts].tolist()
        slot_list = sorted_slots.tolist()
        for key, a, b in zip(key_list, starts, ends, strict=True):
            self._cells.setdefault(key, []).extend(slot_list[a:b])

    def remove(self, camera_id: str) -> bool:
        """Take a camera out (it left or was removed); False when it was not indexed."""
        slot = self._slot.pop(camera_id, None)
        if slot is None:
            return False
        key = int(self._key[slot])
        cell = self._cells[key]
        cell.remove(slot)
        if not cell:
            del self._cells[key]
        self._ids[slot] = None
        self._cameras[slot] = None
        self._active[slot] = False
        self._free.append(slot)
        return True

    # ------------------------------------------------------------------ queries

    def candidates_in_ecef_box(
        self, low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]
    ) -> Slots:
        """Every slot whose ECEF position lies in the box ``low``..``high`` (m).

        Any box works, however large: it is clipped to the Earth first; a box with a NaN bound
        holds nothing.
        """
        low = np.asarray(low, float)
        high = np.asarray(high, float)
        if np.isnan(low).any() or np.isnan(high).any():
            return np.zeros(0, np.int64)
        low = np.clip(low, -_EARTH_REACH_M, _EARTH_REACH_M)
        high = np.clip(high, -_EARTH_REACH_M, _EARTH_REACH_M)
        if (low > high).any():
            return np.zeros(0, np.int64)
        cube_lo = np.floor(low / self.cell_m).astype(np.int64)
        cube_hi = np.floor(high / self.cell_m).astype(np.int64)
        count = math.prod(int(n) for n in cube_hi - cube_lo + 1)  # Python ints: no overflow
        if count > min(_MAX_CUBES, 4 * len(self._cells) + 8):
            inside = self._active & np.all((self._xyz >= low) & (self._xyz <= high), axis=1)
            every: Slots = np.flatnonzero(inside).astype(np.int64)
            return every
        cells = self._cells
        found = []
        for i, j, k in itertools.product(
            range(cube_lo[0] + _OFFSET, cube_hi[0] + _OFFSET + 1),
            range(cube_lo[1] + _OFFSET, cube_hi[1] + _OFFSET + 1),
            range(cube_lo[2] + _OFFSET, cube_hi[2] + _OFFSET + 1),
        ):
            cell = cells.get((i << 42) | (j << 21) | k)
            if cell:
                found.append(cell)
        slots = np.fromiter(itertools.chain.from_iterable(found), np.int64)
        xyz = self._xyz[slots]
        keep = np.all((xyz >= low) & (xyz <= high), axis=1)
        return slots[keep]

    def candidates_near(self, center: GeoPoint, radius_m: float) -> Slots:
        """Slots that may lie within ``radius_m`` of ``center``: a superset, never missing one.

        Keeps the cameras whose straight-line (chord) distance is at most ``radius_m``; the
        geodesic distance is at least the chord, so none inside the radius is lost.
        """
        p = ecef(center.lat, center.lon)[0]
        if math.isnan(radius_m) or radius_m < 0:
            return np.zeros(0, np.int64)
        # Float slack (never drop a boundary camera); beyond the Earth's diameter every camera
        # is within reach, and a finite reach keeps the arithmetic below finite.
        reach = min(radius_m * (1 + 1e-9) + 1e-3, 4 * _EARTH_REACH_M)
        slots = self.candidates_in_ecef_box(p - reach, p + reach)
        d2 = np.sum((self._xyz[slots] - p) ** 2, axis=1)
        near: Slots = slots[d2 <= reach * reach]
        return near

    def candidates_in_latlon_box(
        self, south: float, north: float, west: float, east: float
    ) -> Slots:
        """Slots that may lie in a latitude/longitude box: a superset, never missing one.

        ``west`` may exceed ``east`` by unwrapping: pass ``east`` > 180 for a box across the
        antimeridian (``west=170, east=190``). The box's exact ECEF bounds are computed from
        the parallels' radii and the longitudes' sines and cosines.
        """
        p_max = parallel_radius(0.0 if south <= 0.0 <= north else min(abs(south), abs(north)))
        p_min = parallel_radius(max(abs(south), abs(north)))
        z_lo, z_hi = axial_height(south), axial_height(north)
        cos_r = _trig_range(west, east, 0.0)
        sin_r = _trig_range(west, east, 90.0)
        x = _scaled(p_min, p_max, cos_r)
        y = _scaled(p_min, p_max, sin_r)
        margin = 1.0
        low = np.asarray([x[0], y[0], z_lo]) - margin
        high = np.asarray([x[1], y[1], z_hi]) + margin
        return self.candidates_in_ecef_box(low, high)

    def within(self, center: GeoPoint, radius_m: float) -> list[tuple[str, float]]:
        """Cameras whose geodesic distance from ``center`` is at most ``radius_m``, nearest first.

        Returns ``(camera_id, distance_m)`` pairs: exactly what a scan of every camera with
        ``Geod.inv`` returns, found through the grid.
        """
        slots = self.candidates_near(center, radius_m)
        _az, dist = inverse(center.lat, center.lon, self._lat[slots], self._lon[slots])
        keep = dist <= radius_m
        slots, dist = slots[keep], dist[keep]
        order = np.argsort(dist, kind="stable")
        ids = self.ids(slots[order].tolist())
        return list(zip(ids, dist[order].tolist(), strict=True))


def _trig_range(west: float, east: float, phase: float) -> tuple[float, float]:
    """Min and max of cos(lon - phase) for lon in [west, east] (degrees)."""
    values = [math.cos(math.radians(west - phase)), math.cos(math.radians(east - phase))]
    if east - west >= 360.0:
        return -1.0, 1.0
    k = math.ceil((west - phase) / 180.0)
    while phase + 180.0 * k <= east:
        values.append(1.0 if k % 2 == 0 else -1.0)
        k += 1
    return min(values), max(values)


def _scaled(p_min: float, p_max: float, trig: tuple[float, float]) -> tuple[float, float]:
    lo, hi = trig
    return (p_min * lo if lo >= 0 else p_max * lo, p_max * hi if hi >= 0 else p_min * hi)


class StoreIndex:
    """A :class:`CameraIndex` of a store's cameras, kept in step with the store.

    Built on first use. The gate reports its own changes (:meth:`update`, :meth:`discard`);
    when another process commits to the store file, the next :meth:`get` re-reads the cameras
    and applies only the differences (new, moved, gone), without rebuilding the index.
    """

    def __init__(self, store: Store, cell_m: float = 500.0) -> None:
        self.store = store
        self.cell_m = cell_m
        self._index: CameraIndex | None = None
        self._version = -1

    def get(self) -> CameraIndex:
        """The index, brought up to date with the store.

        Re-read only when the store's camera counter moved (:meth:`Store.changes`: a camera
        added, moved or removed by any process), not on every other commit (an audit record, a
        grant); a file without counters (an older one, read-only) falls back to any commit.
        """
        changes = self.store.changes()
        version = self.store.data_version() if changes is None else changes.cameras
        if self._index is None:
            self._index = CameraIndex(self.cell_m)
        if version != self._version:
            self._sync(self._index)
            self._version = version
        return self._index

    def _sync(self, index: CameraIndex) -> None:
        cameras = self.store.cameras()
        seen = {c.id for c in cameras}
        for camera_id in [i for i in index.camera_ids() if i not in seen]:
            index.remove(camera_id)
        changed = [c for c in cameras if c.id not in index or index.camera(index.slot(c.id)) != c]
        if changed:
            index.add_points(
                [c.id for c in changed],
                [c.position.lat for c in changed],
                [c.position.lon for c in changed],
                changed,
            )

    def update(self, camera: Camera) -> None:
        """A camera enrolled or moved (no-op until the index is first built)."""
        if self._index is not None:
            self._index.add(camera)

    def discard(self, camera_id: str) -> None:
        """A camera left."""
        if self._index is not None:
            self._index.remove(camera_id)
