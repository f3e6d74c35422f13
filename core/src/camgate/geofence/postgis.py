"""The geofence index inside PostgreSQL: PostGIS ``ST_DWithin`` on ``geography(Point,4326)``.

:class:`PostgisIndex` answers the questions :class:`~camgate.geofence.index.CameraIndex`
answers — which cameras lie within a distance of a point, which may lie in a latitude/longitude
box, which lie inside a zone's shape — from a table of camera positions with a GiST index,
so several hubs sharing one PostgreSQL share one index and none holds the cameras in memory.

Distances are geodesic on WGS84 on both sides: PostGIS measures ``geography`` on the spheroid
with GeographicLib (Karney), the algorithm pyproj's ``Geod`` runs for camgate's own index; the
tests find the two agree to a micrometre (:data:`BOUNDARY_TOLERANCE_M` is the band
where they may legitimately differ). Candidate queries (``*_ids``, :meth:`PostgisIndex.in_shape`)
widen every distance by that band, so they never miss a camera camgate's exact test keeps.

The table is fed from the store's cameras: :meth:`PostgisIndex.sync` makes it hold exactly a
list of cameras (one transaction, only the differences written), :meth:`PostgisIndex.upsert`
and :meth:`PostgisIndex.delete` follow one camera. The schema is :data:`DDL`, applied by
:meth:`PostgisIndex.ensure_schema` (idempotent); the ``postgis`` extension must be installed on
the server (Debian: ``postgresql-<ver>-postgis-3``) and creating it needs a superuser once.

The DSN may hold a password: it never appears in a repr or an error from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from camgate.errors import ConfigError, StorageError, ValidationError
from camgate.extras import needs_extra
from camgate.geofence.geodesy import check_latlon, inverse, parallel_radius
from camgate.geofence.shapes import Area, Corridor, Disc, Shape
from camgate.models import Camera, GeoPoint

with needs_extra("postgres", "the PostGIS geofence index"):
    import psycopg

    from camgate.audit.postgres import hide_password, redact_dsn

__all__ = ["BOUNDARY_TOLERANCE_M", "DDL", "PostgisIndex", "covering_disc"]

#: The table of camera positions and its GiST index. ``position`` is computed from the exact
#: ``lat``/``lon`` the store holds, so a re-sync compares numbers, not geometries.
DDL = """
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE IF NOT EXISTS geofence_positions (
    camera_id text PRIMARY KEY,
    lat double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    position geography(Point, 4326) NOT NULL
        GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography) STORED
);
CREATE INDEX IF NOT EXISTS geofence_positions_position
    ON geofence_positions USING gist (position);
"""

#: Where PostGIS's spheroid distance and pyproj's may legitimately disagree, in metres: a
#: millimetre plus a part in a billion of the radius. Both run Karney's algorithm on WGS84;
#: the difference is floating-point rounding (measured well under a micrometre) and PostGIS's
#: own tolerance in ``ST_DWithin``. A camera farther than this from a zone's boundary gets the
#: same answer from both indexes.
BOUNDARY_TOLERANCE_M = 1e-3
_RELATIVE_TOLERANCE = 1e-9
#: More than half the Earth's circumference: every camera is within this of any point.
_EVERYWHERE_M = 20_100_000.0
#: A latitude/longitude box wider or taller than this (degrees) is not narrowed by the index:
#: its covering disc would hold most of a hemisphere anyway.
_MAX_BOX_DEG = 60.0
_BOX_SAMPLES = 256

#: Insert or move; a camera already at its position is not written (no row version, no WAL).
_UPSERT = """
INSERT INTO geofence_positions (camera_id, lat, lon) VALUES (%s, %s, %s)
ON CONFLICT (camera_id) DO UPDATE SET lat = EXCLUDED.lat, lon = EXCLUDED.lon
WHERE (geofence_positions.lat, geofence_positions.lon) IS DISTINCT FROM (EXCLUDED.lat, EXCLUDED.lon)
"""
#: :data:`_UPSERT` for every row of the sync's temporary table.
_MERGE = """
INSERT INTO geofence_positions (camera_id, lat, lon) SELECT * FROM geofence_incoming
ON CONFLICT (camera_id) DO UPDATE SET lat = EXCLUDED.lat, lon = EXCLUDED.lon
WHERE (geofence_positions.lat, geofence_positions.lon) IS DISTINCT FROM (EXCLUDED.lat, EXCLUDED.lon)
"""
_NEAR = """
SELECT DISTINCT g.camera_id, g.lat, g.lon
FROM unnest(%s::float8[], %s::float8[], %s::float8[]) AS c(lat, lon, r)
JOIN geofence_positions g
  ON ST_DWithin(g.position, ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326)::geography, c.r)
"""

Rows = list[tuple[str, float, float]]


def _widen(radius_m: float) -> float:
    return radius_m * (1.0 + _RELATIVE_TOLERANCE) + BOUNDARY_TOLERANCE_M


def _radius(radius_m: float) -> float:
    try:
        r = float(radius_m)
    except (TypeError, ValueError):
        raise ValidationError(f"radius {radius_m!r} is not a number of metres") from None
    if math.isnan(r) or r < 0:
        raise ValidationError(f"radius {radius_m!r}: must be a number of metres, at least 0")
    return min(r, _EVERYWHERE_M)


def _center(center: GeoPoint) -> GeoPoint:
    check_latlon(center.lat, center.lon, "query point")
    return center


def covering_disc(
    south: float, north: float, west: float, east: float
) -> tuple[GeoPoint, float] | None:
    """A disc (centre, radius in m) that holds every point of a latitude/longitude box.

    ``east`` may exceed 180 for a box across the antimeridian (as for
    :meth:`CameraIndex.candidates_in_latlon_box`). None for a box over
    60° wide or tall: no useful disc holds it. The radius is the largest geodesic distance from
    the centre to points sampled along the box's four edges, plus half the longest gap between
    samples: the distance from the centre has no maximum inside the box (the box lies far from
    the centre's antipode), so its maximum over the box is on an edge, within half a gap of a
    sample.
    """
    if not all(math.isfinite(v) for v in (south, north, west, east)):
        raise ValidationError("a latitude/longitude box needs finite bounds")
    if north < south or east < west:
        raise ValidationError(f"empty latitude/longitude box {(south, north, west, east)!r}")
    if north - south > _MAX_BOX_DEG or east - west > _MAX_BOX_DEG:
        return None
    lat_c = (south + north) / 2.0
    lon_c = ((west + east) / 2.0 + 180.0) % 360.0 - 180.0
    t = np.linspace(0.0, 1.0, _BOX_SAMPLES)
    lats = np.concatenate(
        [south + (north - south) * t] * 2 + [np.full_like(t, south), np.full_like(t, north)]
    )
    lons = np.concatenate(
        [
            np.full_like(t, west),
            np.full_like(t, east),
            west + (east - west) * t,
            west + (east - west) * t,
        ]
    )
    lons = (lons + 180.0) % 360.0 - 180.0
    _az, dist = inverse(lat_c, lon_c, lats, lons)
    _az, meridian_gap = inverse(south, west, south + (north - south) / (_BOX_SAMPLES - 1), west)
    widest = parallel_radius(0.0 if south <= 0.0 <= north else min(abs(south), abs(north)))
    parallel_gap = widest * math.radians(east - west) / (_BOX_SAMPLES - 1)
    gap = max(float(meridian_gap[()]), parallel_gap)
    return GeoPoint(lat_c, lon_c), float(dist.max()) + gap / 2.0 + 1.0


class PostgisIndex:
    """Camera positions in PostgreSQL with PostGIS; the same questions as ``CameraIndex``.

    ``PostgisIndex(dsn)`` connects (autocommit; each write is one transaction) and
    :meth:`ensure_schema` creates the table. Every failure of the server is a
    :class:`~camgate.errors.StorageError` naming the database (password hidden); bad
    coordinates and radii are a :class:`~camgate.errors.ValidationError` before anything is sent.
    Not thread-safe: one connection, use one index per thread.
    """

    def __init__(self, dsn: str, *, connect_timeout: int = 30) -> None:
        self._dsn = dsn
        self.where = redact_dsn(dsn)
        try:
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                dsn, autocommit=True, connect_timeout=connect_timeout
            )
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to {self.where}: {self._scrub(exc)}") from None

    def __repr__(self) -> str:
        return f"<PostgisIndex {self.where}>"

    def _scrub(self, exc: BaseException) -> str:
        return hide_password(self._dsn, str(exc).strip() or type(exc).__name__)

    def _fail(self, doing: str, exc: psycopg.Error) -> StorageError:
        return StorageError(f"{doing} in {self.where}: {self._scrub(exc)}")

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self._conn.close()

    def __enter__(self) -> PostgisIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    def ensure_schema(self) -> None:
        """Create the ``postgis`` extension (when missing), the table and its GiST index.

        Idempotent. :class:`~camgate.errors.ConfigError` when PostGIS is not installed on the
        server or the role may not create the extension (a superuser must, once).
        """
        try:
            with self._conn.transaction():
                self._conn.execute(DDL)
        except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported) as exc:
            raise ConfigError(
                f"PostGIS is not installed on the PostgreSQL server of {self.where} "
                f"(Debian: postgresql-<ver>-postgis-3): {self._scrub(exc)}"
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ConfigError(
                f"cannot create the postgis extension in {self.where}: a superuser must run "
                f"CREATE EXTENSION postgis there once ({self._scrub(exc)})"
            ) from None
        except psycopg.Error as exc:
            raise self._fail("cannot create the geofence index", exc) from None

    # ------------------------------------------------------------------ updates

    def sync(self, cameras: Iterable[Camera]) -> int:
        """Make the index hold exactly ``cameras`` (the store's list); returns the rows changed.

        One transaction: new cameras inserted, moved ones updated, the others deleted; a
        camera already at its position is not written. Bad input (a duplicate id, a position
        off the Earth) is a :class:`ValidationError` and changes nothing.
        """
        cams = list(cameras)
        return self.sync_points(
            [c.id for c in cams], [c.position.lat for c in cams], [c.position.lon for c in cams]
        )

    def sync_points(self, ids: Sequence[str], lat: Any, lon: Any) -> int:
        """:meth:`sync` from parallel sequences of ids, latitudes and longitudes (vectorised)."""
        lat_a = np.asarray(lat, float).ravel()
        lon_a = np.asarray(lon, float).ravel()
        if not len(ids) == len(lat_a) == len(lon_a):
            raise ValidationError("ids, lat and lon must have the same length")
        check_latlon(lat_a, lon_a, "camera position")
        if len(set(ids)) != len(ids):
            raise ValidationError("the same camera id is given twice")
        if not all(isinstance(i, str) and i for i in ids):
            raise ValidationError("camera ids must be non-empty strings")
        try:
            with self._conn.transaction():
                self._conn.execute(
                    "CREATE TEMP TABLE geofence_incoming (camera_id text PRIMARY KEY, "
                    "lat float8 NOT NULL, lon float8 NOT NULL) ON COMMIT DROP"
                )
                with self._conn.cursor().copy(
                    "COPY geofence_incoming (camera_id, lat, lon) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["text", "float8", "float8"])
                    for row in zip(ids, lat_a.tolist(), lon_a.tolist(), strict=True):
                        copy.write_row(row)
                gone = self._conn.execute(
                    "DELETE FROM geofence_positions g WHERE NOT EXISTS "
                    "(SELECT 1 FROM geofence_incoming i WHERE i.camera_id = g.camera_id)"
                ).rowcount
                changed = self._conn.execute(_MERGE).rowcount
        except psycopg.Error as exc:
            raise self._fail("cannot sync the geofence index", exc) from None
        return max(gone, 0) + max(changed, 0)

    def upsert(self, camera: Camera) -> None:
        """Index a camera that enrolled, or move one already indexed."""
        check_latlon(camera.position.lat, camera.position.lon, "camera position")
        if not camera.id:
            raise ValidationError("camera ids must be non-empty strings")
        try:
            self._conn.execute(
                _UPSERT, (camera.id, float(camera.position.lat), float(camera.position.lon))
            )
        except psycopg.Error as exc:
            raise self._fail(f"cannot index camera {camera.id!r}", exc) from None

    def delete(self, camera_id: str) -> bool:
        """Take a camera out; False when it was not indexed."""
        try:
            cur = self._conn.execute(
                "DELETE FROM geofence_positions WHERE camera_id = %s", (camera_id,)
            )
        except psycopg.Error as exc:
            raise self._fail(f"cannot remove camera {camera_id!r}", exc) from None
        return cur.rowcount > 0

    # ------------------------------------------------------------------ reads

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise self._fail("cannot query the geofence index", exc) from None

    def __len__(self) -> int:
        return int(self._query("SELECT count(*) FROM geofence_positions")[0][0])

    def camera_ids(self) -> list[str]:
        """Every indexed camera id, sorted."""
        return [r[0] for r in self._query("SELECT camera_id FROM geofence_positions ORDER BY 1")]

    def within(self, center: GeoPoint, radius_m: float) -> list[tuple[str, float]]:
        """Cameras PostGIS finds within ``radius_m`` of ``center``, nearest first.

        ``(camera_id, distance_m)`` pairs with ``ST_Distance`` at most ``radius_m`` on
        geography (WGS84 spheroid), found through the GiST index with ``ST_DWithin``; ties
        broken by id. A radius beyond half the
        Earth's circumference finds every camera; a negative or NaN one is a
        :class:`ValidationError`.
        """
        c, r = _center(center), _radius(radius_m)
        # ST_DWithin(.., r) alone misses a camera at a pole at distance 0 when r is 0: the
        # index's geocentric boxes of two spellings of the pole (lon 0, lon 45) differ by float
        # noise and a zero expansion does not bridge it. So the index is asked for the radius
        # widened by the band, and ST_Distance (the same spheroid) decides.
        rows = self._query(
            "SELECT camera_id, d FROM (SELECT camera_id, ST_Distance(position, q.p) AS d "
            "FROM geofence_positions, "
            "(SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography AS p) AS q "
            "WHERE ST_DWithin(position, q.p, %s)) AS near WHERE d <= %s ORDER BY d, camera_id",
            (c.lon, c.lat, _widen(r), r),
        )
        return [(str(i), float(d)) for i, d in rows]

    def _near(self, discs: Sequence[tuple[GeoPoint, float]]) -> Rows:
        """Cameras within (widened) reach of any of the discs: id, lat, lon."""
        if not discs:
            return []
        rows = self._query(
            _NEAR,
            (
                [d[0].lat for d in discs],
                [d[0].lon for d in discs],
                [_widen(d[1]) for d in discs],
            ),
        )
        return [(str(i), float(la), float(lo)) for i, la, lo in rows]

    def _all(self) -> Rows:
        rows = self._query("SELECT camera_id, lat, lon FROM geofence_positions")
        return [(str(i), float(la), float(lo)) for i, la, lo in rows]

    def near_ids(self, center: GeoPoint, radius_m: float) -> list[str]:
        """Cameras that may lie within ``radius_m`` of ``center``: a superset, never missing one
        camgate's geodesic test keeps (the radius is widened by the tolerance band). Sorted."""
        rows = self._near([(_center(center), _radius(radius_m))])
        return sorted(r[0] for r in rows)

    def latlon_box_ids(self, south: float, north: float, west: float, east: float) -> list[str]:
        """Cameras that may lie in a latitude/longitude box: a superset, never missing one. Sorted.

        ``east`` may exceed 180 for a box across the antimeridian (``west=170, east=190``), as
        for :meth:`CameraIndex.candidates_in_latlon_box`. The index looks in the box's covering
        disc (:func:`covering_disc`); a box over 60° wide or tall lists every camera.
        """
        disc = covering_disc(south, north, west, east)
        rows = self._all() if disc is None else self._near([disc])
        return sorted(r[0] for r in rows)

    def in_shape(self, shape: Shape) -> list[str]:
        """Cameras inside a zone's shape, exactly as ``shape.contains`` says; sorted.

        PostGIS narrows the table to the shape's extent — a disc's radius, discs along a
        corridor's route, the covering disc of each polygon's box — and camgate's exact test
        decides, so the answer is the one :class:`CameraIndex` gives. A shape of another kind
        is tested against every camera.
        """
        rows = self._all() if (discs := _extent(shape)) is None else self._near(discs)
        if not rows:
            return []
        lat = np.fromiter((r[1] for r in rows), float, len(rows))
        lon = np.fromiter((r[2] for r in rows), float, len(rows))
        keep = np.asarray(shape.contains(lat, lon), bool)
        return sorted(r[0] for r, k in zip(rows, keep.tolist(), strict=True) if k)


def _extent(shape: Shape) -> list[tuple[GeoPoint, float]] | None:
    """Discs that hold the shape, or None when only a scan of every camera is safe."""
    if isinstance(shape, Disc):
        return [(shape.center, shape.radius_m)]
    if isinstance(shape, Corridor):
        # As Corridor.candidates: a vertex at least every step, each covering half a step.
        step = max(shape.half_width_m, 50.0)
        vla, vlo = shape.vertices(step)
        reach = shape.half_width_m + step / 2 + 1.0
        return [
            (GeoPoint(la, lo), reach) for la, lo in zip(vla.tolist(), vlo.tolist(), strict=True)
        ]
    if isinstance(shape, Area):
        discs = []
        for poly in shape.geometry.geoms:
            west, south, east, north = poly.bounds
            disc = covering_disc(south, north, west, east)
            if disc is None:
                return None
            discs.append(disc)
        return discs
    return None
