"""``camgate onvif probe URL``: what an ONVIF device offers, before a camera is registered.

Connects like the adapter does (clock, services, profiles), lists the device's information,
services, video profiles (token, codec, resolution, video source) and whether it offers
snapshots and recordings, and the notes the adapter took (fallbacks, skipped profiles). It
fetches no picture. Run as ``camgate onvif probe`` or ``python -m camgate_onvif probe``.

Settings are the adapter's (docs/onvif.md), given as ``--setting key=value`` with a TOML
value (``--setting verify_tls=false``, ``--setting 'ports={rtsp={"554"=10554}}'``). The
user name is ``--user``; the password only ever comes from ``$CAMGATE_ONVIF_PASSWORD``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from camgate.settings import add_setting_option

__all__ = ["cmd_probe", "configure", "main", "probe"]

PASSWORD_ENV = "CAMGATE_ONVIF_PASSWORD"  # noqa: S105 - the variable's name, not a password


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``probe`` to ``parser`` (the ``onvif`` command) and make it run :func:`cmd_probe`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "probe", help="list an ONVIF device's profiles and services", description=__doc__
    )
    p.add_argument(
        "url", help="the device service address, e.g. http://192.0.2.7/onvif/device_service"
    )
    p.add_argument("--user", help=f"user name (the password comes from ${PASSWORD_ENV})")
    add_setting_option(p, "an adapter setting (docs/onvif.md), the value in TOML; repeatable")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_probe)


async def probe(url: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Connect to the device at ``url`` with the adapter's ``settings`` and describe it (a
    JSON-ready dict). Errors are camgate errors naming the URL tried, without credentials."""
    from camgate_rtsp.adapter import redact

    from camgate_onvif.adapter import OnvifAdapter, device_url
    from camgate_onvif.soap import OnvifFault

    url = device_url(url)
    async with OnvifAdapter.from_settings(settings) as adapter:
        device = await adapter.device(url)
        snapshot: str | None = None
        if device.streams:
            try:
                snapshot = redact(await device.snapshot_uri(device.streams[0].token))
            except OnvifFault as exc:
                device.notes.append(f"no snapshot URI ({exc.subcode or exc.text})")
        return {
            "url": url,
            "device": device.info,
            "clock": {
                "source": device.soap.clock_source,
                "offset_s": round(device.soap.offset.total_seconds(), 1),
            },
            "services": {name: redact(xaddr) for name, xaddr in sorted(device.xaddrs.items())},
            "media_service": device.media,
            "profiles": [
                {
                    "token": s.token,
                    "name": s.name,
                    "codec": s.codec,
                    "width": s.width,
                    "height": s.height,
                    "video_source": s.source_token,
                    "source": s.source,
                }
                for s in device.streams
            ],
            "snapshot": snapshot,
            "snapshot_fallback": snapshot is None and adapter.settings.snapshot_fallback,
            "recordings": "search" in device.xaddrs and "replay" in device.xaddrs,
            "notes": list(device.notes),
        }


def _text(report: dict[str, Any]) -> str:
    info = report["device"]
    lines = [
        f"device   {report['url']}",
        f"         {info.get('Manufacturer', '')} {info.get('Model', '')} "
        f"firmware {info.get('FirmwareVersion', '')} serial {info.get('SerialNumber', '')}",
        f"clock    {report['clock']['offset_s']:+g} s (from {report['clock']['source']})",
        "services " + ", ".join(report["services"]),
        "profiles (camera source = device URL#profile=TOKEN)",
    ]
    for p in report["profiles"]:
        lines.append(
            f"  {p['token']:<16} {p['codec']:<5} {p['width']}x{p['height']:<6} "
            f"source {p['video_source'] or '?'}  {p['name']}"
        )
    snap = report["snapshot"] or (
        "no (a frame from the stream)" if report["snapshot_fallback"] else "no"
    )
    lines += [f"snapshot {snap}", f"recorded {'yes' if report['recordings'] else 'no'}"]
    lines += [f"note     {n}" for n in report["notes"]]
    return "\n".join(lines)


def cmd_probe(args: argparse.Namespace) -> int:
    """List an ONVIF device's profiles and services (``camgate onvif probe URL``)."""
    import anyio

    settings: dict[str, Any] = dict(args.setting)
    password = os.environ.get(PASSWORD_ENV)
    if args.user is not None or password is not None:
        from camgate_onvif.adapter import device_url

        creds = {"username": args.user or "", "password": password or ""}
        settings.setdefault("credentials", {})[device_url(args.url)] = creds
    report = anyio.run(probe, args.url, settings)
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m camgate_onvif probe URL``: the same command without camgate's CLI."""
    from camgate.errors import CamgateError

    parser = argparse.ArgumentParser(prog="python -m camgate_onvif")
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CamgateError as exc:
        print(f"camgate: {exc}", file=sys.stderr)
        return 1
