"""A PNG map of a geofence query: the incident, its zone, the cameras and their fields of view.

matplotlib is imported only when a map is drawn, with the Agg backend (no display needed).
Coordinates are drawn in metres east and north of the incident (an azimuthal equidistant
projection centred on it, via pyproj), so the zone's circle is round and distances true.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyproj import Transformer

from camgate.extras import needs_extra
from camgate.geofence.geodesy import WGS84
from camgate.geofence.shapes import Area, Corridor, Disc, Shape
from camgate.geofence.survey import Sighting
from camgate.models import Incident

__all__ = ["COLOURS", "plot_sightings"]

#: Colour of a camera by its status.
COLOURS = {
    "reachable": "#1a9850",
    "excluded": "#d73027",
    "out_of_view": "#fdae61",
    "out_of_zone": "#878787",
}


def plot_sightings(
    path: str | Path,
    incident: Incident,
    sightings: Sequence[Sighting],
    zones: Sequence[Shape] = (),
    exclusions: Sequence[Shape] = (),
) -> Path:
    """Draw ``sightings`` round ``incident`` with its zone(s) and exclusions into a PNG file."""
    with needs_extra("plot", "the geofence plot"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    c = incident.position
    to_m = Transformer.from_crs(
        "OGC:CRS84",
        f"+proj=aeqd +lat_0={c.lat} +lon_0={c.lon} +datum=WGS84 +units=m",
        always_xy=True,
    )

    def xy(lat: object, lon: object) -> tuple[np.ndarray, np.ndarray]:
        x, y = to_m.transform(lon, lat)
        return np.asarray(x), np.asarray(y)

    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    for shapes, colour, fill in ((zones, "#4575b4", 0.08), (exclusions, "#d73027", 0.2)):
        for shape in shapes:
            if isinstance(shape, Corridor):
                x, y = xy(*shape.vertices(10.0))
                ax.plot(x, y, color=colour, lw=3, alpha=0.5, solid_capstyle="round")
                continue
            for lat, lon in _outline(shape):
                x, y = xy(lat, lon)
                ax.fill(x, y, color=colour, alpha=fill)
                ax.plot(x, y, color=colour, lw=1)
    for s in sightings:
        cam = s.camera
        colour = COLOURS[s.status]
        x, y = xy(cam.position.lat, cam.position.lon)
        if cam.heading_deg is not None and cam.fov_deg is not None:
            reach = cam.range_m or incident.radius_m
            half = cam.fov_deg / 2
            az = np.linspace(cam.heading_deg - half, cam.heading_deg + half, 24)
            lons, lats, _ = WGS84.fwd(
                np.full(24, cam.position.lon), np.full(24, cam.position.lat), az, np.full(24, reach)
            )
            wx, wy = xy(lats, lons)
            ax.fill(np.r_[x, wx, x], np.r_[y, wy, y], color=colour, alpha=0.15, lw=0.5)
        ax.plot(x, y, "o", color=colour, ms=6, mec="black", mew=0.5)
        ax.annotate(
            cam.id, (float(x), float(y)), fontsize=7, xytext=(4, 4), textcoords="offset points"
        )
    ax.plot(0, 0, "*", color="black", ms=14)
    for status, colour in COLOURS.items():
        ax.plot([], [], "o", color=colour, label=status.replace("_", " "))
    ax.legend(loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("metres east of the incident")
    ax.set_ylabel("metres north of the incident")
    ax.set_title(f"{incident.kind} at {c.lat:.5f}, {c.lon:.5f} — radius {incident.radius_m:.0f} m")
    ax.grid(True, lw=0.3)
    out = Path(path)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def _outline(shape: Shape) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(shape, Disc):
        az = np.linspace(0, 360, 181)
        n = len(az)
        lons, lats, _ = WGS84.fwd(
            np.full(n, shape.center.lon),
            np.full(n, shape.center.lat),
            az,
            np.full(n, shape.radius_m),
        )
        return [(np.asarray(lats), np.asarray(lons))]
    if isinstance(shape, Area):
        out = []
        for poly in shape.geometry.geoms:
            x, y = np.asarray(poly.exterior.coords).T
            out.append((y, (x + 180.0) % 360.0 - 180.0))
        return out
    return []
