"""The ``camgate`` command line.

Every command takes ``--help``. State lives in one SQLite file: ``--db PATH`` (or the
``CAMGATE_DB`` environment variable; default ``./camgate.db``), with the hub's signing key beside
it (``.key``); the agency's rules are read from ``--rules PATH`` (or ``$CAMGATE_RULES``; a TOML
file, see docs/consent.md). Exit status: 0 success, 1 an error (message on stderr), 2 bad usage,
3 the gate refused the request (reasons on stderr and in ``--json`` output), 4 the request waits
for the owner's answer (``camgate request --no-wait``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from camgate import __version__
from camgate.adapters import Credentials
from camgate.codec import dump
from camgate.errors import AccessDenied, AnswerPending, CamgateError, NotFound
from camgate.gate import Gate
from camgate.models import Camera, ConsentTerms, GeoPoint, Owner, Scope, Waiver
from camgate.rules import AgencyRules

__all__ = ["main"]

EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_PENDING = 1, 2, 3, 4


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _gate(args: argparse.Namespace) -> Gate:
    rules = AgencyRules.from_toml(args.rules) if args.rules else None
    return Gate.open(args.db, rules=rules)


# ---------------------------------------------------------------------- commands


def cmd_plugins(args: argparse.Namespace) -> int:
    """List adapters (and with --all, every plugin)."""
    from camgate.plugins import PluginHost

    host = PluginHost()
    adapters = [
        {
            "name": f.name,
            "distribution": f.distribution,
            "version": f.version,
            "capabilities": f.capabilities.to_list(),
            "budgets": dump(f.budgets),
            "description": f.description,
        }
        for f in sorted(host.adapters().values(), key=lambda f: f.name)
    ]
    if args.json:
        _print_json(adapters)
    else:
        for a in adapters:
            caps = ", ".join(a["capabilities"])
            print(f"{a['name']:<10} {a['distribution']} {a['version']}  [{caps}]")
        if not adapters:
            print("no adapters installed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the end-to-end demo into --out."""
    from camgate.demo import run_demo

    out = Path(args.out)
    summary = anyio.run(lambda: run_demo(out, log=lambda m: print(f"demo: {m}", flush=True)))
    print(f"demo: wrote {out / 'summary.json'}")
    return 0 if summary["audit_ok"] else EXIT_ERROR


def cmd_owner_add(args: argparse.Namespace) -> int:
    """Register an owner."""
    with _closing(_gate(args)) as gate:
        owner = gate.add_owner(Owner(args.id, args.name, args.contact, args.time_zone))
        _print_json(dump(owner))
    return 0


def cmd_waiver_publish(args: argparse.Namespace) -> int:
    """Publish a waiver version from a text file."""
    text = Path(args.file).read_text(encoding="utf-8")
    with _closing(_gate(args)) as gate:
        waiver = gate.publish_waiver(Waiver(args.version, text))
        _print_json({"version": waiver.version, "sha256": waiver.sha256})
    return 0


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
    with _closing(_gate(args)) as gate:
        gate.add_camera(camera, creds)
        _print_json(dump(camera))
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    """Enrol an owner's cameras under a waiver and terms."""
    scopes = [s for s in args.allow.split(",") if s] if args.allow else []
    with _closing(_gate(args)) as gate:
        sha = args.waiver_sha256
        if sha is None:
            sha = gate.store.get_waiver(args.waiver).sha256
        record = gate.enrol(
            args.owner,
            args.camera,
            waiver_version=args.waiver,
            waiver_sha256=sha,
            terms=_terms(args, scopes),
        )
        _print_json(dump(record))
    return 0


def _terms(args: argparse.Namespace, scopes: list[str]) -> ConsentTerms:
    quiet = None
    if args.quiet_hours:
        quiet = args.quiet_hours.split("-", 1) if "-" in args.quiet_hours else [args.quiet_hours]
    ends_at = None
    if args.ends_at:
        ends_at = datetime.fromisoformat(args.ends_at)
        if ends_at.tzinfo is None:
            raise CamgateError(f"--ends-at {args.ends_at}: give a time zone, e.g. +00:00")
    return ConsentTerms(
        scopes=scopes,
        max_session_s=args.max_session,
        mode=args.mode,
        ask_timeout_s=args.ask_timeout,
        incident_kinds=args.incident_kind,
        max_radius_m=args.max_radius,
        quiet_hours=quiet,
        max_lookback_s=args.max_lookback,
        ends_at=ends_at,
    )


def cmd_incident_report(args: argparse.Namespace) -> int:
    """Report an incident."""
    with _closing(_gate(args)) as gate:
        incident = gate.report_incident(
            args.kind, GeoPoint(args.lat, args.lon), args.radius, window_s=args.window
        )
        _print_json(dump(incident))
    return 0


def cmd_incident_close(args: argparse.Namespace) -> int:
    """Close an incident."""
    with _closing(_gate(args)) as gate:
        _print_json(dump(gate.close_incident(args.id)))
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    """Request access and, when granted, fetch the media into --out."""

    async def run() -> int:
        async with _gate(args) as gate:
            try:
                signed = await gate.request_access(
                    args.incident,
                    args.camera,
                    args.scope,
                    requested_by=args.by,
                    duration_s=args.duration + 30.0 if args.scope == "live" else args.duration,
                    purpose=args.purpose,
                    wait=not args.no_wait,
                )
            except AnswerPending as held:
                _print_json(
                    {
                        "granted": False,
                        "pending": True,
                        "camera": args.camera,
                        "request": held.pending.request_id,
                        "deadline": held.pending.deadline.isoformat(),
                    }
                )
                return EXIT_PENDING
            except AccessDenied as refusal:
                result = {
                    "granted": False,
                    "camera": args.camera,
                    "request": refusal.decision.request_id,
                    "reasons": refusal.decision.reasons,
                }
                _print_json(result)
                print(f"camgate: {refusal}", file=sys.stderr)
                return EXIT_DENIED
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            result = {
                "granted": True,
                "camera": args.camera,
                "request": signed.grant.request_id,
                "grant": signed.grant.id,
            }
            if signed.grant.scope is Scope.SNAPSHOT:
                snap = await gate.edge.snapshot(args.camera, signed)
                path = out / f"{args.camera}-{signed.grant.id}.jpg"
                path.write_bytes(snap.jpeg)
                result["file"] = str(path)
            elif signed.grant.scope is Scope.LIVE:
                path = out / f"{args.camera}-{signed.grant.id}.mp4"
                clip = await gate.edge.record_clip(args.camera, signed, path, args.duration)
                result |= {"file": str(path), "sha256": clip.sha256, "duration_s": clip.duration_s}
            _print_json(result)
            return 0

    return anyio.run(run)


def cmd_explain(args: argparse.Namespace) -> int:
    """Print every policy's vote on a request and, for a refusal, why in plain words.

    A request still waiting for its owner's answer is shown as pending, with its deadline.
    """
    with _closing(_gate(args)) as gate:
        try:
            decision = gate.store.decision_json(args.request)
        except NotFound:
            try:
                pending = gate.store.get_pending(args.request)
            except NotFound:
                raise NotFound(
                    f"no decision on request {args.request!r}, and none waits for an answer"
                ) from None
            if args.json:
                _print_json({"request": args.request, "pending": True} | dump(pending))
            else:
                print(
                    f"request {args.request}: waiting for the owner's answer until "
                    f"{pending.deadline.isoformat(timespec='seconds')} (no answer means no)"
                )
            return 0
    if args.json:
        _print_json(decision)
        return 0
    verdict = "allowed" if decision["allowed"] else "refused"
    print(f"request {decision['request']}: {verdict}")
    denials = [v for v in decision["votes"] if v["verdict"] == "deny"]
    if denials:
        print("refused because:")
        for vote in denials:
            print(f"  - {vote['reason']} ({vote['policy']})")
    print("every vote:")
    for vote in decision["votes"]:
        print(f"  {vote['verdict']:<8} {vote['policy']:<24} {vote['reason']}")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    """Record the owner's yes or no to a request that waits for it; print the final decision."""

    async def run() -> dict[str, Any]:
        async with _gate(args) as gate:
            decision = await gate.answer(args.request, args.approve, owner_id=args.owner)
        return {
            "request": args.request,
            "answer": "yes" if args.approve else "no",
            "allowed": decision.allowed,
            "reasons": decision.reasons,
        }

    _print_json(anyio.run(run))
    return 0


def cmd_pending(args: argparse.Namespace) -> int:
    """List requests that wait for an owner's answer (first refusing any past their deadline)."""
    with _closing(_gate(args)) as gate:
        gate.expire_pending()
        _print_json([dump(p) for p in gate.pending(args.owner)])
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke every consent of an owner."""

    async def run() -> list[str]:
        async with _gate(args) as gate:
            return await gate.revoke(args.owner)

    cameras = anyio.run(run)
    _print_json({"owner": args.owner, "revoked": cameras})
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify the audit chain."""
    with _closing(_gate(args)) as gate:
        result = gate.audit.verify()
    if args.json:
        _print_json(result.to_json())
    elif result.ok:
        print(f"audit chain verified: {result.records} records, head {result.head[:16]}")
    else:
        print(f"audit chain BROKEN at record {result.first_bad}: {result.problem}")
    return 0 if result.ok else EXIT_ERROR


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Write the audit log as JSON Lines."""
    with _closing(_gate(args)) as gate:
        for line in gate.audit.export_jsonl():
            print(line)
    return 0


class _closing:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def __enter__(self) -> Gate:
        return self.gate

    def __exit__(self, *exc: object) -> None:
        self.gate.store.close()


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="camgate",
        description="Consent-gated access to privately owned security cameras.",
    )
    parser.add_argument("--version", action="version", version=f"camgate {__version__}")
    parser.add_argument(
        "--db",
        default=os.environ.get("CAMGATE_DB", "camgate.db"),
        help="the SQLite store (default: $CAMGATE_DB or ./camgate.db)",
    )
    parser.add_argument(
        "--rules",
        default=os.environ.get("CAMGATE_RULES") or None,
        help="the agency's rules, a TOML file (default: $CAMGATE_RULES; none)",
    )
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(group: Any, name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(
            name, help=help_text, description=func.__doc__
        )
        p.set_defaults(func=func)
        return p

    def group(name: str, help_text: str) -> Any:
        p = top.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = add(top, "plugins", cmd_plugins, "list installed adapters")
    p.add_argument("--json", action="store_true", help="print a JSON list of adapters")

    p = add(top, "demo", cmd_demo, "run the end-to-end demo against a real RTSP server")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")

    owners = group("owner", "manage owners")
    p = add(owners, "add", cmd_owner_add, "register an owner")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--contact")
    p.add_argument("--time-zone", default="UTC")

    waivers = group("waiver", "manage waivers")
    p = add(waivers, "publish", cmd_waiver_publish, "publish a waiver version")
    p.add_argument("--version", required=True, help="the waiver's version label")
    p.add_argument("--file", required=True, help="the waiver's exact text (UTF-8)")

    cameras = group("camera", "manage cameras")
    p = add(cameras, "add", cmd_camera_add, "register a camera")
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

    p = add(top, "enrol", cmd_enrol, "enrol an owner's cameras under a waiver")
    p.add_argument("--owner", required=True)
    p.add_argument("--camera", action="append", required=True, help="camera id (repeatable)")
    p.add_argument("--waiver", required=True, help="waiver version accepted")
    p.add_argument("--waiver-sha256", help="SHA-256 of the text the owner accepted")
    p.add_argument("--allow", default="", help="comma-separated scopes: live,recorded,snapshot")
    p.add_argument("--max-session", type=float, help="longest live session in seconds")
    p.add_argument(
        "--mode",
        default="pre-authorised",
        choices=["ask", "pre-authorised"],
        help="ask: each request waits for the owner's yes; pre-authorised (default): no asking",
    )
    p.add_argument(
        "--ask-timeout", type=float, default=300.0, help="seconds the owner has to answer"
    )
    p.add_argument(
        "--incident-kind", action="append", help="an incident kind accepted (repeatable; any)"
    )
    p.add_argument("--max-radius", type=float, help="metres from the incident, at most")
    p.add_argument("--quiet-hours", help="HH:MM-HH:MM in the owner's time zone, e.g. 22:00-07:00")
    p.add_argument("--max-lookback", type=float, help="how far back recordings reach, seconds")
    p.add_argument("--ends-at", help="when consent ends, ISO 8601 with a time zone")

    incidents = group("incident", "report and close incidents")
    p = add(incidents, "report", cmd_incident_report, "report an incident")
    p.add_argument("--kind", required=True)
    p.add_argument("--lat", type=float, required=True)
    p.add_argument("--lon", type=float, required=True)
    p.add_argument("--radius", type=float, required=True, help="metres")
    p.add_argument("--window", type=float, default=12 * 3600.0, help="seconds (default 12 h)")
    p = add(incidents, "close", cmd_incident_close, "close an incident")
    p.add_argument("id")

    p = add(top, "request", cmd_request, "request access; fetch the media when granted")
    p.add_argument("--incident", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--scope", required=True, choices=[s.value for s in Scope])
    p.add_argument("--by", required=True, help="who asks (officer id)")
    p.add_argument("--duration", type=float, default=10.0, help="live clip seconds")
    p.add_argument("--purpose", default="investigation")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="if the owner must be asked, print the held request and exit 4 instead of waiting",
    )
    p.add_argument("--out", default=".", help="folder for the snapshot or clip")

    p = add(top, "revoke", cmd_revoke, "revoke every consent of an owner")
    p.add_argument("--owner", required=True)

    consent = group("consent", "answer requests, revoke consent, explain decisions")
    p = add(consent, "answer", cmd_answer, "answer yes or no to a request that waits for it")
    p.add_argument("request", help="the request id from the owner's notice")
    yes_no = p.add_mutually_exclusive_group(required=True)
    yes_no.add_argument("--yes", dest="approve", action="store_true", help="allow this request")
    yes_no.add_argument("--no", dest="approve", action="store_false", help="refuse this request")
    p.add_argument("--owner", help="check that the request is for a camera of this owner")
    p = add(consent, "pending", cmd_pending, "list requests waiting for an owner's answer")
    p.add_argument("--owner")
    p = add(consent, "revoke", cmd_revoke, "revoke every consent of an owner")
    p.add_argument("--owner", required=True)
    p = add(consent, "explain", cmd_explain, "print every policy's vote on a request")
    p.add_argument("request")
    p.add_argument("--json", action="store_true")

    audit = group("audit", "verify or export the audit log")
    p = add(audit, "verify", cmd_audit_verify, "verify the hash chain")
    p.add_argument("--json", action="store_true")
    add(audit, "export", cmd_audit_export, "print the log as JSON Lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``camgate`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CamgateError as exc:
        print(f"camgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"camgate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
