"""Cameras and their privacy masks: ``camgate camera``, ``camgate masks``."""

from __future__ import annotations

import argparse
import os
from typing import Any

import anyio

from camgate.adapters import Credentials
from camgate.cli._common import (
    Builder,
    add_setting,
    closing,
    open_gate,
    print_json,
)
from camgate.codec import dump
from camgate.errors import CamgateError
from camgate.models import Camera, GeoPoint

__all__ = ["add_parsers"]


def cmd_camera_add(args: argparse.Namespace) -> int:
    """Register a camera (credentials go to the edge's store, never to the model)."""
    creds = None
    if args.username:
        if not args.password_env or args.password_env not in os.environ:
            raise CamgateError("--username needs --password-env naming a set environment variable")
        creds = Credentials(args.username, os.environ[args.password_env])
    camera = Camera(
        id=args.id,
        adapter=args.adapter,
        source=args.source,
        owner_id=args.owner,
        position=GeoPoint(args.lat, args.lon),
        camera_class=args.camera_class,
        heading_deg=args.heading,
        fov_deg=args.fov,
        range_m=args.range,
        battery=args.battery,
    )
    settings = dict(args.setting) if args.setting else None
    with closing(open_gate(args)) as gate:
        gate.add_camera(camera, creds, settings)
        print_json(dump(camera) | gate.camera_settings(camera.id))
    return 0


def cmd_camera_set(args: argparse.Namespace) -> int:
    """Change a camera's own adapter settings (secret ones are kept with its credentials)."""
    if not args.setting and not args.unset:
        raise CamgateError("give --setting KEY=VALUE or --unset KEY")
    with closing(open_gate(args)) as gate:
        print_json(gate.set_camera_settings(args.camera, dict(args.setting), args.unset))
    return 0


def cmd_camera_show(args: argparse.Namespace) -> int:
    """Print a camera and its settings (the names of secret ones, never their values)."""
    with closing(open_gate(args)) as gate:
        print_json(dump(gate.store.get_camera(args.camera)) | gate.camera_settings(args.camera))
    return 0


def cmd_camera_list(args: argparse.Namespace) -> int:
    """Print every camera (or one owner's) with its settings, as :func:`cmd_camera_show`."""
    with closing(open_gate(args)) as gate:
        cameras = gate.store.cameras(args.owner)
        print_json([dump(c) | gate.camera_settings(c.id) for c in cameras])
    return 0


def _polygon(text: str) -> list[tuple[float, float]]:
    points = []
    for pair in text.split():
        x, sep, y = pair.partition(",")
        try:
            points.append((float(x), float(y)))
        except ValueError:
            raise ValueError(f"--polygon: {pair!r} is not an x,y pair of numbers") from None
        if not sep:
            raise ValueError(f"--polygon: {pair!r} is not an x,y pair of numbers")
    return points


def cmd_masks_set(args: argparse.Namespace) -> int:
    """Set (replace) a camera's privacy masks: polygons in normalised image coordinates, (0,0)
    top-left to (1,1) bottom-right. Masked areas are filled in every frame that leaves the gate
    (live, clips, snapshots); open streams of the camera end so new ones use the new masks.
    With --clear, remove every mask."""
    polygons = [] if args.clear else [_polygon(p) for p in args.polygon or []]
    if not polygons and not args.clear:
        raise ValueError("give at least one --polygon, or --clear")

    async def run() -> dict[str, Any]:
        async with open_gate(args) as gate:
            return dump(await gate.set_masks(args.owner, args.camera, polygons))

    print_json(anyio.run(run))
    return 0


def cmd_masks_show(args: argparse.Namespace) -> int:
    """Print a camera's privacy masks as JSON (an empty list when it has none)."""
    with closing(open_gate(args)) as gate:
        gate.store.get_camera(args.camera)
        mask = gate.masks(args.camera)
    print_json({"camera": args.camera, "polygons": dump(mask)["polygons"] if mask else []})
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``camera`` and ``masks`` to the ``camgate`` parser."""
    cameras = b.group("camera", "manage cameras")
    p = b.add(cameras, "add", cmd_camera_add, "register a camera")
    p.add_argument("--id", required=True)
    p.add_argument("--owner", required=True)
    p.add_argument("--adapter", required=True, help="adapter name, e.g. rtsp")
    p.add_argument("--source", required=True, help="vendor address without credentials")
    p.add_argument("--lat", type=float, required=True)
    p.add_argument("--lon", type=float, required=True)
    p.add_argument("--class", dest="camera_class", default="private", choices=["private", "city"])
    p.add_argument("--heading", type=float, help="degrees clockwise from north")
    p.add_argument("--fov", type=float, help="angle of view in degrees")
    p.add_argument("--range", type=float, help="how far the camera sees, metres")
    p.add_argument("--battery", action="store_true", help="a battery camera")
    p.add_argument("--username", help="camera user (kept at the edge)")
    p.add_argument("--password-env", help="environment variable holding the camera password")
    add_setting(p, "stored with the camera")
    p = b.add(cameras, "set", cmd_camera_set, "change a camera's adapter settings")
    p.add_argument("camera")
    add_setting(p, "stored with the camera")
    p.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove a setting")
    p = b.add(cameras, "show", cmd_camera_show, "print a camera and its settings")
    p.add_argument("camera")
    p = b.add(cameras, "list", cmd_camera_list, "print every camera and its settings")
    p.add_argument("--owner", help="only this owner's cameras")

    masks = b.group("masks", "privacy masks: areas filled in every frame that leaves the gate")
    p = b.add(masks, "set", cmd_masks_set, "set (replace) a camera's privacy masks")
    p.add_argument("camera")
    p.add_argument("--owner", required=True, help="the camera's owner (only they may set masks)")
    p.add_argument(
        "--polygon",
        action="append",
        metavar="'X,Y X,Y X,Y ...'",
        help="corners in normalised coordinates, 0..1 (repeatable, one per polygon)",
    )
    p.add_argument("--clear", action="store_true", help="remove every mask")
    p = b.add(masks, "show", cmd_masks_show, "print a camera's privacy masks")
    p.add_argument("camera")
