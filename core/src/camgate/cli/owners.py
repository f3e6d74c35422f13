"""Owners, waivers and enrolment: ``camgate owner``, ``camgate waiver``, ``camgate enrol``."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from camgate.cli._common import (
    EXIT_ERROR,
    Builder,
    Reader,
    closing,
    open_gate,
    open_reader,
    print_json,
)
from camgate.codec import dump
from camgate.errors import CamgateError, NotFound
from camgate.gate import Gate
from camgate.models import ConsentTerms, Owner, Waiver

__all__ = ["add_parsers"]


def cmd_owner_add(args: argparse.Namespace) -> int:
    """Register an owner."""
    with closing(open_gate(args)) as gate:
        owner = gate.add_owner(Owner(args.id, args.name, args.contact, args.time_zone))
        print_json(dump(owner))
    return 0


def cmd_owner_history(args: argparse.Namespace) -> int:
    """Every access to the owner's cameras — when, for which kind of incident, how long, what
    was exported (with SHA-256) — and their revocations and notices, from the owner's slice of
    the audit log. Nothing about another owner is shown. --verify also proves the slice complete
    (a checkpoint is signed first; exit 1 if the proof fails)."""
    from camgate.activity import owner_history

    with closing(open_gate(args) if args.verify else open_reader(args)) as gate:
        history = owner_history(gate.store, gate.audit, args.owner)
        if args.verify:
            history["slice"] = _verified_slice(gate, args.owner)
    if args.json:
        print_json(history)
        return 0 if history.get("slice", {"ok": True})["ok"] else EXIT_ERROR
    if args.verify:
        v = history["slice"]
        print(
            f"slice verified: {v['records']} records about {args.owner}, none left out, up to the "
            f"signed checkpoint at record {v['until']}"
            if v["ok"]
            else f"slice does NOT verify: {v['problem']}"
        )
    s = history["summary"]
    print(
        f"owner {history['owner']} ({history['name']}): {s['requests']} requests — "
        f"{s['granted']} granted, {s['refused']} refused, {s['no-answer']} not answered, "
        f"{s['waiting']} waiting; {s['exports']} files exported; {s['revocations']} "
        f"revocations; {s['notifications']} notices"
    )
    for r in history["requests"]:
        kind = r["incident_kind"] or "unknown"
        print(
            f"{r['at'][:19]}  {r['scope']:<8} camera {r['camera']}  {kind} incident  "
            f"{r['outcome']}  (asked by {r['requested_by']}, purpose: {r['purpose']})"
        )
        for reason in r["reasons"]:
            print(f"    refused: {reason}")
        a = r["access"]
        if a:
            took = f"{a['seconds']:.1f} s" if a["seconds"] is not None else "not ended"
            print(
                f"    accessed {a['started_at'][:19]}, {took}, {a.get('packets') or 0} packets, "
                f"{a.get('bytes') or 0} bytes, ended: {a.get('reason') or '-'}"
            )
        for e in r["exports"]:
            gone = f"deleted {e['deleted_at'][:19]}" if e["deleted_at"] else "kept"
            print(
                f"    exported {e['kind']} {e['path']} sha256 {e['sha256']} "
                f"(expires {e['expires_at'][:19]}; {gone})"
            )
    for v in history["revocations"]:
        print(f"{v['at'][:19]}  revoked consent for {', '.join(v['cameras']) or 'no camera'}")
    for n in history["notifications"]:
        state = "sent" if n["delivered"] else "NOT accepted by any notifier"
        print(f"{n['at'][:19]}  notice {n['event']} camera {n['camera']} ({state})")
    return 0 if history.get("slice", {"ok": True})["ok"] else EXIT_ERROR


def _verified_slice(gate: Gate | Reader, owner: str) -> dict[str, Any]:
    """Sign a checkpoint now and verify the owner's slice from the start of the log up to it."""
    from camgate.audit import verify_owner_slice

    gate.audit.checkpoint()
    try:
        piece = gate.audit.owner_slice(owner)
    except NotFound as exc:
        return {"ok": True, "records": 0, "since": 0, "until": 0, "problem": str(exc)}
    key = gate.audit.public_key
    if key is None:
        return {"ok": False, "records": 0, "since": 0, "until": 0, "problem": "no signing key"}
    return verify_owner_slice(piece, key).to_json()


def cmd_waiver_publish(args: argparse.Namespace) -> int:
    """Publish a waiver version from a text file."""
    text = Path(args.file).read_text(encoding="utf-8")
    with closing(open_gate(args)) as gate:
        waiver = gate.publish_waiver(Waiver(args.version, text))
        print_json({"version": waiver.version, "sha256": waiver.sha256})
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    """Enrol an owner's cameras under a waiver and terms."""
    scopes = [s for s in args.allow.split(",") if s] if args.allow else []
    with closing(open_gate(args)) as gate:
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
        print_json(dump(record))
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
        retention_days=args.retention_days,
        audio=args.audio,
    )


def add_parsers(b: Builder) -> None:
    """Add ``owner``, ``waiver`` and ``enrol`` to the ``camgate`` parser."""
    owners = b.group("owner", "manage owners")
    p = b.add(owners, "add", cmd_owner_add, "register an owner")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--contact")
    p.add_argument("--time-zone", default="UTC")
    p = b.add(owners, "history", cmd_owner_history, "every access to an owner's cameras")
    p.add_argument("owner", help="the owner's id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--verify",
        action="store_true",
        help="sign a checkpoint now and prove the owner's slice complete up to it",
    )

    waivers = b.group("waiver", "manage waivers")
    p = b.add(waivers, "publish", cmd_waiver_publish, "publish a waiver version")
    p.add_argument("--version", required=True, help="the waiver's version label")
    p.add_argument("--file", required=True, help="the waiver's exact text (UTF-8)")

    p = b.add(b.top, "enrol", cmd_enrol, "enrol an owner's cameras under a waiver")
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
    p.add_argument(
        "--retention-days",
        type=float,
        help="keep footage at most this many days (the agency's limit applies if shorter)",
    )
    p.add_argument("--audio", action="store_true", help="share sound too (default: video only)")
