"""Incidents, requests and the owner's side of them: ``camgate incident``, ``request``,
``revoke``, ``consent``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from camgate.cli._common import (
    CONNECT_MARGIN_S,
    EXIT_DENIED,
    EXIT_PENDING,
    Builder,
    add_setting,
    closing,
    open_gate,
    open_reader,
    print_json,
)
from camgate.codec import dump
from camgate.errors import AccessDenied, AnswerPending, CamgateError, NotFound
from camgate.gate import Gate
from camgate.models import GeoPoint, Scope

__all__ = ["add_parsers"]


def _window(args: argparse.Namespace) -> tuple[datetime, datetime] | None:
    if args.since is None and args.until is None:
        if args.scope == "recorded":
            raise CamgateError("--scope recorded needs --since and --until")
        return None
    if args.since is None or args.until is None:
        raise CamgateError("give both --since and --until")
    try:
        return datetime.fromisoformat(args.since), datetime.fromisoformat(args.until)
    except ValueError as exc:
        raise CamgateError(f"--since/--until: {exc}") from None


def cmd_incident_report(args: argparse.Namespace) -> int:
    """Report an incident."""
    with closing(open_gate(args)) as gate:
        incident = gate.report_incident(
            args.kind, GeoPoint(args.lat, args.lon), args.radius, window_s=args.window
        )
        print_json(dump(incident))
    return 0


def cmd_incident_close(args: argparse.Namespace) -> int:
    """Close an incident."""
    with closing(open_gate(args)) as gate:
        print_json(dump(gate.close_incident(args.id)))
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    """Request access and, when granted, fetch the media into --out."""
    from camgate.media.files import inside, make_dirs, safe_name
    from camgate.retention import export_bytes

    def export_snapshot(gate: Gate, path: Path, snap: Any, grant_id: str) -> Any:
        return export_bytes(
            gate.retention,
            path,
            "snapshot",
            snap.jpeg,
            camera_id=args.camera,
            grant_id=grant_id,
            created_at=snap.taken_at,
        )

    async def run() -> int:
        async with open_gate(args) as gate:
            if args.setting:  # validated before anything is asked; never stored
                gate.edge.override_settings(args.camera, dict(args.setting))
            try:
                signed = await gate.request_access(
                    args.incident,
                    args.camera,
                    args.scope,
                    requested_by=args.by,
                    duration_s=(
                        args.duration + CONNECT_MARGIN_S if args.scope == "live" else args.duration
                    ),
                    purpose=args.purpose,
                    note=args.note,
                    window=_window(args),
                    wait=not args.no_wait,
                    audio=args.audio,
                )
            except AnswerPending as held:
                print_json(
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
                print_json(result)
                print(f"camgate: {refusal}", file=sys.stderr)
                return EXIT_DENIED
            out = make_dirs(args.out)
            result = {
                "granted": True,
                "camera": args.camera,
                "request": signed.grant.request_id,
                "grant": signed.grant.id,
            }
            # The ids are not trusted as file names: a safe slug, and never outside --out.
            stem = f"{safe_name(args.camera)}-{safe_name(signed.grant.id)}"
            if signed.grant.scope is Scope.SNAPSHOT:
                snap = await gate.edge.snapshot(args.camera, signed)
                path = inside(out, f"{stem}.jpg")
                art = await anyio.to_thread.run_sync(
                    lambda: export_snapshot(gate, path, snap, signed.grant.id)
                )
                result |= {"file": str(path), "sha256": art.sha256}
            else:
                suffix = {"mp4": ".mp4", "fmp4": ".mp4", "ts": ".ts", "hls": ""}[args.format]
                path = inside(out, f"{stem}{suffix}")
                clip = await gate.edge.record_clip(
                    args.camera,
                    signed,
                    path,
                    args.duration,
                    format=args.format,
                    browser=args.browser,
                )
                result |= {"file": str(path), "sha256": clip.sha256, "duration_s": clip.duration_s}
                if clip.partial:  # shorter than asked: the camera stopped, kept as it is
                    result |= {"partial": True, "reason": clip.reason}
            print_json(result)
            return 0

    return anyio.run(run)


def cmd_explain(args: argparse.Namespace) -> int:
    """Print every policy's vote on a request and, for a refusal, why in plain words.

    A request still waiting for its owner's answer is shown as pending, with its deadline.
    """
    if not Path(args.db).exists():  # read-only: nothing is created to look in
        raise NotFound(f"no decision on request {args.request!r}: no camgate store at {args.db}")
    with closing(open_reader(args)) as gate:
        try:
            decision = gate.store.decision_json(args.request)
        except NotFound:
            wait = gate.store.approval_wait(args.request)
            if wait is not None and wait["outcome"] is None:
                if args.json:
                    print_json({"request": args.request, "pending": True} | wait)
                else:
                    print(
                        f"request {args.request}: waiting for a {wait['role']}'s approval until "
                        f"{wait['deadline']} (no answer means no): {'; '.join(wait['why'])}"
                    )
                return 0
            try:
                pending = gate.store.get_pending(args.request)
            except NotFound:
                raise NotFound(
                    f"no decision on request {args.request!r}, and none waits for an answer"
                ) from None
            if args.json:
                print_json({"request": args.request, "pending": True} | dump(pending))
            else:
                print(
                    f"request {args.request}: waiting for the owner's answer until "
                    f"{pending.deadline.isoformat(timespec='seconds')} (no answer means no)"
                )
            return 0
    if args.json:
        print_json(decision)
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
        async with open_gate(args) as gate:
            decision = await gate.answer(args.request, args.approve, owner_id=args.owner)
        return {
            "request": args.request,
            "answer": "yes" if args.approve else "no",
            "allowed": decision.allowed,
            "reasons": decision.reasons,
        }

    print_json(anyio.run(run))
    return 0


def cmd_pending(args: argparse.Namespace) -> int:
    """List requests that wait for an owner's answer (first refusing any past their deadline)."""
    with closing(open_gate(args)) as gate:
        gate.expire_pending()
        print_json([dump(p) for p in gate.pending(args.owner)])
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    """Record a second person's approval (or refusal) of a request waiting for one."""

    async def run() -> dict[str, Any]:
        async with open_gate(args) as gate:
            decision = await gate.approve(
                args.request, approver=args.by, approved=args.approve, reason=args.reason
            )
        return {
            "request": args.request,
            "approved": args.approve,
            "approver": args.by,
            "allowed": decision.allowed,
            "reasons": decision.reasons,
        }

    print_json(anyio.run(run))
    return 0


def cmd_approvals(args: argparse.Namespace) -> int:
    """List requests waiting for approval (first refusing any past their deadline)."""
    with closing(open_gate(args)) as gate:
        print_json(
            [
                {
                    "request": w["request"]["id"],
                    "camera": w["request"]["camera_id"],
                    "requested_by": w["request"]["requested_by"],
                    "role": w["role"],
                    "deadline": w["deadline"],
                    "why": w["why"],
                }
                for w in gate.approval_waits()
            ]
        )
    return 0


def cmd_program(args: argparse.Namespace) -> int:
    """Show the agency's program (version, dates, running or not) and tell the owners, once,
    that it ended or was renewed."""
    with closing(open_gate(args)) as gate:
        rules = gate.rules
        now = gate.clock.now()
        sent = gate.program_notices()
        print_json(
            {
                "agency": rules.name,
                "version": rules.version,
                "program_start": rules.program_start and rules.program_start.isoformat(),
                "program_end": rules.program_end and rules.program_end.isoformat(),
                "state": rules.program_state(now),
                "notices_sent": sent,
            }
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke every consent of an owner."""

    async def run() -> list[str]:
        async with open_gate(args) as gate:
            return await gate.revoke(args.owner)

    cameras = anyio.run(run)
    print_json({"owner": args.owner, "revoked": cameras})
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``incident``, ``request``, ``revoke`` and ``consent`` to the ``camgate`` parser."""
    incidents = b.group("incident", "report and close incidents")
    p = b.add(incidents, "report", cmd_incident_report, "report an incident")
    p.add_argument("--kind", required=True)
    p.add_argument("--lat", type=float, required=True)
    p.add_argument("--lon", type=float, required=True)
    p.add_argument("--radius", type=float, required=True, help="metres")
    p.add_argument("--window", type=float, default=12 * 3600.0, help="seconds (default 12 h)")
    p = b.add(incidents, "close", cmd_incident_close, "close an incident")
    p.add_argument("id")

    p = b.add(b.top, "request", cmd_request, "request access; fetch the media when granted")
    p.add_argument("--incident", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--scope", required=True, choices=[s.value for s in Scope])
    p.add_argument("--by", required=True, help="who asks (officer id)")
    p.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help=f"live clip seconds (the grant asks {CONNECT_MARGIN_S:g} s more, to connect)",
    )
    p.add_argument("--since", help="recorded scope: window start, ISO 8601 with a time zone")
    p.add_argument("--until", help="recorded scope: window end, ISO 8601 with a time zone")
    p.add_argument(
        "--purpose",
        default="investigation",
        help="what the footage is for: names from the agency's purposes list, comma-separated "
        "(default: investigation); any other is refused",
    )
    p.add_argument("--note", default="", help="free text for the owner and the audit log")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="if the owner must be asked, print the held request and exit 4 instead of waiting",
    )
    p.add_argument("--out", default=".", help="folder for the snapshot or clip")
    p.add_argument("--audio", action="store_true", help="ask for sound too, if the owner shares it")
    add_setting(p, "for this request only, over the camera's stored ones; not stored")
    p.add_argument(
        "--format",
        default="mp4",
        choices=["mp4", "fmp4", "ts", "hls"],
        help="clip container (live and recorded scopes): mp4 (default), fragmented mp4, "
        "MPEG-TS, or hls (a folder with index.m3u8 and segments)",
    )
    p.add_argument(
        "--browser",
        action="store_true",
        help="video every browser plays: H.265 is transcoded to H.264 (costs a decode and an "
        "encode per picture; H.264 is kept as it is)",
    )

    p = b.add(b.top, "revoke", cmd_revoke, "revoke every consent of an owner")
    p.add_argument("--owner", required=True)

    consent = b.group("consent", "answer requests, revoke consent, explain decisions")
    p = b.add(consent, "answer", cmd_answer, "answer yes or no to a request that waits for it")
    p.add_argument("request", help="the request id from the owner's notice")
    yes_no = p.add_mutually_exclusive_group(required=True)
    yes_no.add_argument("--yes", dest="approve", action="store_true", help="allow this request")
    yes_no.add_argument("--no", dest="approve", action="store_false", help="refuse this request")
    p.add_argument("--owner", help="check that the request is for a camera of this owner")
    p = b.add(consent, "pending", cmd_pending, "list requests waiting for an owner's answer")
    p.add_argument("--owner")
    p = b.add(consent, "revoke", cmd_revoke, "revoke every consent of an owner")
    p.add_argument("--owner", required=True)
    p = b.add(consent, "approve", cmd_approve, "approve (or refuse) a request waiting for approval")
    p.add_argument("request", help="the request id")
    p.add_argument("--by", required=True, help="the approver's id (holding the rules' role)")
    yes_no = p.add_mutually_exclusive_group(required=True)
    yes_no.add_argument("--yes", dest="approve", action="store_true", help="approve it")
    yes_no.add_argument("--no", dest="approve", action="store_false", help="refuse it")
    p.add_argument("--reason", required=True, help="why (kept in the decision, grant and log)")
    b.add(consent, "approvals", cmd_approvals, "list requests waiting for approval")
    b.add(
        consent,
        "program",
        cmd_program,
        "show the agency's program; tell owners once that it ended or was renewed",
    )
    p = b.add(consent, "explain", cmd_explain, "print every policy's vote on a request")
    p.add_argument("request")
    p.add_argument("--json", action="store_true")
