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
import math
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio

from camgate import __version__
from camgate.adapters import Credentials
from camgate.codec import dump
from camgate.errors import AccessDenied, AnswerPending, CamgateError, NotFound, ValidationError
from camgate.gate import Gate
from camgate.models import Camera, ConsentTerms, GeoPoint, Owner, Scope, Waiver
from camgate.rules import AgencyRules
from camgate.settings import add_setting_option
from camgate.store import Store

__all__ = ["main"]

EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_PENDING = 1, 2, 3, 4
#: A live grant covers the clip plus this much, for connecting and waiting for a keyframe.
CONNECT_MARGIN_S = 5.0


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


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _gate(args: argparse.Namespace) -> Gate:
    rules = AgencyRules.from_toml(args.rules) if args.rules else None
    return Gate.open(args.db, rules=rules, audit_dsn=args.audit_dsn)


class _Reader:
    """The store and audit log opened read-only (``mode=ro``: no key, table, journal or WAL is
    created or written), for the commands that only read: an auditor can run them on a
    read-only copy, directory or mount. A command that reads only the audit log
    (``store=False``) of a PostgreSQL log needs no store file."""

    def __init__(self, args: argparse.Namespace, *, store: bool = True) -> None:
        from camgate.audit import AUDIT_DSN_ENV, AuditLog

        dsn = args.audit_dsn or os.environ.get(AUDIT_DSN_ENV) or None
        self._store = (
            Store(args.db, read_only=True) if store or not dsn or Path(args.db).exists() else None
        )
        try:
            self.audit = AuditLog(self._store, dsn=dsn, read_only=True)
        except BaseException:
            if self._store is not None:
                self._store.close()
            raise

    @property
    def store(self) -> Store:
        """The store, read-only."""
        assert self._store is not None  # commands that use it open it (store=True)
        return self._store

    def close(self) -> None:
        """Close the log and the store."""
        self.audit.close()
        if self._store is not None:
            self._store.close()


def _reader(args: argparse.Namespace, *, store: bool = True) -> _Reader:
    return _Reader(args, store=store)


# ---------------------------------------------------------------------- commands


def cmd_plugins(args: argparse.Namespace) -> int:
    """List adapters: capabilities, budgets, whether a simulator and a conformance target come
    with them, their quality declaration (``quality``: rule → status, or null) and what is
    wrong with it (``quality_problems``; a file that cannot be read is one, not a crash)."""
    from camgate.plugins import PluginHost
    from camgate.quality import declaration_problems, load_quality

    host = PluginHost()
    adapters: list[dict[str, Any]] = []
    for f in sorted(host.adapters().values(), key=lambda f: f.name):
        try:
            quality = load_quality(host.registrar(f.name), f.name)
            problems = [] if quality is None else declaration_problems(quality)
        except ValidationError as exc:
            quality, problems = None, [str(exc)]
        adapters.append(
            {
                "name": f.name,
                "distribution": f.distribution,
                "version": f.version,
                "capabilities": f.capabilities.to_list(),
                "budgets": dump(f.budgets),
                "description": f.description,
                "simulator": host.has_simulator(f.name),
                "conformance_target": host.has_conformance_target(f.name),
                "quality": None if quality is None else quality.to_json(),
                "quality_problems": problems,
            }
        )
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


def cmd_owner_history(args: argparse.Namespace) -> int:
    """Every access to the owner's cameras — when, for which kind of incident, how long, what
    was exported (with SHA-256) — and their revocations and notices, from the owner's slice of
    the audit log. Nothing about another owner is shown. --verify also proves the slice complete
    (a checkpoint is signed first; exit 1 if the proof fails)."""
    from camgate.activity import owner_history

    with _closing(_gate(args) if args.verify else _reader(args)) as gate:
        history = owner_history(gate.store, gate.audit, args.owner)
        if args.verify:
            history["slice"] = _verified_slice(gate, args.owner)
    if args.json:
        _print_json(history)
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


def _verified_slice(gate: Gate | _Reader, owner: str) -> dict[str, Any]:
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


def cmd_report(args: argparse.Namespace) -> int:
    """Write the transparency report for a period (report.html with charts, report.json):
    counts only, no owner identity, small counts suppressed. The audit log is verified first;
    a log that fails is refused unless --allow-unverified (then the report says so). With
    --export FILE --key HEX it is computed from an audit export instead, verified the same way."""
    from camgate.report import Period, build_report, verify_export, write_report

    period = Period.parse(args.period)
    if args.export:
        key = _audit_key(args, None)
        if key is None:
            raise CamgateError(
                "--export needs --key (the hub's public key, from a trusted channel)"
            )
        with open(args.export, encoding="utf-8") as export:
            records, verified = verify_export(export, key)
        # An export's records after its last checkpoint carry no signature: anyone can append
        # chain-consistent ones to the file. Only what a checkpoint vouches for is counted.
        if verified.ok:
            records = [r for r in records if r.seq <= verified.records - verified.unsealed]
    else:
        with _closing(_reader(args, store=False)) as gate:
            verified = gate.audit.verify(public_key=_audit_key(args, None))
            # Exactly the records verified (appends may continue meanwhile); all, when flagged.
            records = [
                r for r in gate.audit.records() if r.seq <= verified.records or not verified.ok
            ]
    if not verified.ok and not args.allow_unverified:
        where = f"record {verified.first_bad}: " if verified.first_bad is not None else ""
        raise CamgateError(
            f"the audit log does not verify ({where}{verified.status}: {verified.problem}); "
            "no report written (--allow-unverified publishes it flagged)"
        )
    report = build_report(records, period, k=args.k, verified=verified)
    page, data = write_report(report, args.out)
    if args.json:
        _print_json(report)
    else:
        print(f"report {report['period']}: wrote {page} and {data}")
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
    settings = dict(args.setting) if args.setting else None
    with _closing(_gate(args)) as gate:
        gate.add_camera(camera, creds, settings)
        _print_json(dump(camera) | gate.camera_settings(camera.id))
    return 0


def cmd_camera_set(args: argparse.Namespace) -> int:
    """Change a camera's own adapter settings (secret ones are kept with its credentials)."""
    if not args.setting and not args.unset:
        raise CamgateError("give --setting KEY=VALUE or --unset KEY")
    with _closing(_gate(args)) as gate:
        _print_json(gate.set_camera_settings(args.camera, dict(args.setting), args.unset))
    return 0


def cmd_camera_show(args: argparse.Namespace) -> int:
    """Print a camera and its settings (the names of secret ones, never their values)."""
    with _closing(_gate(args)) as gate:
        _print_json(dump(gate.store.get_camera(args.camera)) | gate.camera_settings(args.camera))
    return 0


def cmd_camera_list(args: argparse.Namespace) -> int:
    """Print every camera (or one owner's) with its settings, as :func:`cmd_camera_show`."""
    with _closing(_gate(args)) as gate:
        cameras = gate.store.cameras(args.owner)
        _print_json([dump(c) | gate.camera_settings(c.id) for c in cameras])
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
        retention_days=args.retention_days,
        audio=args.audio,
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
        async with _gate(args) as gate:
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
            _print_json(result)
            return 0

    return anyio.run(run)


def cmd_explain(args: argparse.Namespace) -> int:
    """Print every policy's vote on a request and, for a refusal, why in plain words.

    A request still waiting for its owner's answer is shown as pending, with its deadline.
    """
    if not Path(args.db).exists():  # read-only: nothing is created to look in
        raise NotFound(f"no decision on request {args.request!r}: no camgate store at {args.db}")
    with _closing(_reader(args)) as gate:
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
        async with _gate(args) as gate:
            return dump(await gate.set_masks(args.owner, args.camera, polygons))

    _print_json(anyio.run(run))
    return 0


def cmd_masks_show(args: argparse.Namespace) -> int:
    """Print a camera's privacy masks as JSON (an empty list when it has none)."""
    with _closing(_gate(args)) as gate:
        gate.store.get_camera(args.camera)
        mask = gate.masks(args.camera)
    _print_json({"camera": args.camera, "polygons": dump(mask)["polygons"] if mask else []})
    return 0


def cmd_audit_find_clip(args: argparse.Namespace) -> int:
    """Re-hash a clip file and print the audit records that exported exactly these bytes (grant,
    camera, time); exit 1 when none did (an altered or foreign file)."""
    from camgate.media import clip_tags, find_clip

    with _closing(_reader(args)) as gate:
        found = find_clip(gate.audit, args.file)
    tags = {} if Path(args.file).is_dir() else clip_tags(args.file)
    _print_json(
        {
            "file": args.file,
            "tagged_grant": tags.get("camgate_grant"),
            "records": [
                {
                    "seq": r.seq,
                    "at": r.at,
                    "grant": r.body["grant_id"],
                    "camera": r.body["camera_id"],
                }
                for r in found
            ],
        }
    )
    return 0 if found else EXIT_ERROR


def _audit_key(args: argparse.Namespace, gate: Gate | _Reader | None) -> bytes | None:
    from camgate.audit.chain import check_public_key

    if getattr(args, "key", None):
        try:
            return check_public_key(bytes.fromhex(args.key))
        except ValueError:
            raise ValidationError(
                "--key: bad key: expected the Ed25519 public key as 64 hex digits"
            ) from None
    return gate.audit.public_key if gate is not None else None


def _status_line(result: Any) -> str:
    """One line for a verification verdict that is not OK, in capitals where it matters."""
    where = f" at record {result.first_bad}" if result.first_bad is not None else ""
    word = {
        "broken": "BROKEN",
        "truncated": "TRUNCATED",
        "empty": "EMPTY",
        "unpinned": "UNPINNED (its seal is missing)",
        "key": "signed with ANOTHER KEY",
    }.get(result.status, result.status.upper())
    return f"audit log {word}{where}: {result.problem}"


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify the audit log: every hash and link, each owner's sub-chain, every signed
    checkpoint; name the first bad record. With --slice, verify an owner's slice instead."""
    from camgate.audit import Checkpoint, OwnerSlice, verify_owner_slice

    if args.slice:
        key = _audit_key(args, None)
        if key is None:
            with _closing(_reader(args, store=False)) as gate:
                key = _audit_key(args, gate)
        if key is None:
            raise ValidationError("--slice needs --key (the hub's public key)")
        try:
            piece = OwnerSlice.from_json(json.loads(Path(args.slice).read_text(encoding="utf-8")))
            found = verify_owner_slice(piece, key)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValidationError(
                f"--slice {args.slice}: not an owner's slice (camgate audit slice): {exc!r}"
            ) from None
        return _verdict(
            args,
            found.ok,
            found.to_json(),
            f"owner {found.owner}: {found.records} records between checkpoints "
            f"{found.since} and {found.until}, none left out",
            f"owner {found.owner}: slice does NOT verify: {found.problem}",
        )
    known: list[Checkpoint] = []
    for source in ([args.against] if args.against else []) + (args.witness or []):
        known += _witnesses(source)
    with _closing(_reader(args, store=False)) as gate:
        result = gate.audit.verify(public_key=_audit_key(args, gate), known=known)
    return _verdict(args, result.ok, result.to_json(), _passed_line(result), _status_line(result))


def _witnesses(source: str) -> list[Any]:
    """The checkpoints in a --witness/--against value: JSON given inline, or a file's path."""
    from camgate.audit.seal import read_witnesses

    if source.lstrip().startswith(("{", "[")):
        return read_witnesses(source, source="--witness (inline JSON)")
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"--witness {source}: cannot read it ({exc})") from None
    return read_witnesses(text, source=source)


def _passed_line(result: Any) -> str:
    """What a passing verification proved: ``verified`` against outside witnesses, or only
    ``consistent`` up to the log's own latest checkpoint (never a bare OK)."""
    counts = (
        f"{result.records} records and {result.checkpoints} signed checkpoints verified, up to "
        f"the checkpoint signed at {result.signed_at or '(none)'} (seq {result.signed_seq}), "
        f"{result.unsealed} records after it, head {result.head[:16]}"
    )
    if result.status == "verified":
        return (
            f"audit log verified: {counts}; not cut back below the witnessed checkpoint of "
            f"record {result.witnessed_seq}"
        )
    return (
        f"audit log consistent: {counts}; no outside witness was given, so this cannot rule "
        "out that the log and its seal were cut back together to an older checkpoint "
        "(give --witness NOTICE, or --against an earlier export)"
    )


def _verdict(args: argparse.Namespace, ok: bool, data: dict[str, Any], good: str, bad: str) -> int:
    if args.json:
        _print_json(data)
    else:
        print(good if ok else bad)
    return 0 if ok else EXIT_ERROR


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Write the audit log as JSON Lines: a header, the records, and the signed checkpoints
    (each after the record it signs); docs/audit.md says how a third party verifies it."""
    with _closing(_reader(args, store=False)) as gate:
        lines = gate.audit.export_jsonl(
            public_key=_audit_key(args, None), unverified=args.allow_unverified
        )
        first = next(lines)  # verification happens before the first line: refuse whole
        print(first)
        for line in lines:
            print(line)
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign the current head of the audit log now (checkpoints are also written every 4096
    records and at the first append a minute after the last one)."""
    with _closing(_gate(args)) as gate:
        cp = gate.audit.checkpoint()
    if cp is None:
        print("nothing new to sign")
    else:
        _print_json(cp.to_json())
    return 0


def cmd_audit_slice(args: argparse.Namespace) -> int:
    """Print every record about an owner's cameras between two checkpoints, with the proof
    (signed checkpoints and Merkle paths) that none was left out, as JSON."""
    with _closing(_reader(args, store=False)) as gate:
        piece = gate.audit.owner_slice(args.owner, args.since, args.until)
    _print_json(piece.to_json())
    return 0


def cmd_geofence_query(args: argparse.Namespace) -> int:
    """List the cameras round a point or an incident: distance, bearing, field of view, and what
    a request for each would meet now (allowed, ask, denied) with every reason.

    Every camera of the store within --radius metres (geodesic, WGS84) of --lat/--lon is listed
    — or, with --incident, every camera in that incident's zones — reachable ones first (best
    view first), each with every geofence's vote (the agency's exclusion zones and jurisdiction
    included) and the decision a --scope request with --purpose would get (``Gate.survey``:
    every core check and consent policy). The query is written to the audit log as one
    ``survey`` record with its counts. --plot FILE also draws a PNG map.
    """
    from camgate.geofence import Disc, ZoneRole
    from camgate.geofence.geodesy import point
    from camgate.models import Incident

    with _closing(_gate(args)) as gate:
        now = gate.clock.now()
        if args.incident is not None:
            incident = gate.store.get_incident(args.incident)
            centre = incident.position
        else:
            if args.lat is None or args.lon is None or args.radius is None:
                raise CamgateError("give --lat, --lon and --radius, or --incident ID")
            centre = point(args.lat, args.lon, "--lat/--lon")
            radius = Disc.around(centre.lat, centre.lon, args.radius).radius_m
            incident = Incident("query", "query", centre, now, radius)
        zone = Disc.around(centre.lat, centre.lon, incident.radius_m)
        # A recorded request names its window: the last hour, for the survey.
        window = (now - timedelta(hours=1), now) if args.scope == "recorded" else None
        survey = gate.survey(
            incident,
            scope=args.scope,
            purpose=args.purpose,
            window=window,
            requested_by="cli",
            at=now,
        )
        rows = [row.sighting for row in survey.rows]
        exclusions = [z.shape for z in gate.zones.zones(ZoneRole.EXCLUSION)]
    result = {
        "query": {"lat": centre.lat, "lon": centre.lon, "radius_m": zone.radius_m},
        "incident": survey.incident_id,
        "scope": str(survey.scope),
        "counts": survey.counts,
        "cameras": [row.to_json() for row in survey.rows],
    }
    if args.plot:
        from camgate.geofence.plot import plot_sightings

        result["plot"] = str(plot_sightings(args.plot, incident, rows, [zone], exclusions))
    if args.json:
        _print_json(result)
        return 0
    print(f"{len(rows)} cameras within {zone.radius_m:.0f} m of {centre.lat}, {centre.lon}")
    for row in survey.rows:
        sighting = row.sighting
        fov = {None: "no FOV", True: "covers", False: "looks away"}[sighting.fov_covers]
        print(
            f"  {sighting.camera.id:<14} {sighting.distance_m:7.0f} m "
            f"{sighting.bearing_deg:5.0f}°  {fov:<10} {sighting.status:<12} {row.outcome}"
        )
        for reason in row.reasons:
            print(f"      {reason}")
    if args.plot:
        print(f"map: {args.plot}")
    return 0


def _numbers(text: str, count: int, option: str, form: str) -> list[float]:
    """``count`` comma-separated finite numbers, or a CamgateError naming ``option``."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(parts) != count or len(values) != count or not all(map(math.isfinite, values)):
        raise CamgateError(f"{option}: {text!r} is not {form} (finite numbers, commas between)")
    return values


def cmd_geofence_zone_add(args: argparse.Namespace) -> int:
    """Store a zone: a search area or corridor of an incident, an exclusion, the jurisdiction."""
    from camgate.geofence import Area, Corridor, Disc, Zone
    from camgate.geofence.shapes import Shape

    shape: Shape
    if args.geojson:
        shape = Area.from_geojson(Path(args.geojson).read_text(encoding="utf-8"), crs=args.crs)
    elif args.corridor:
        if args.width is None:
            raise CamgateError("--corridor needs --width (metres either side of the route)")
        pairs = [_numbers(p, 2, "--corridor", "LAT,LON") for p in args.corridor.split()]
        try:
            shape = Corridor.along([(p[0], p[1]) for p in pairs], args.width)
        except ValidationError as exc:
            raise ValidationError(f"--corridor: {exc}") from None
    elif args.disc:
        lat, lon, radius = _numbers(args.disc, 3, "--disc", "LAT,LON,RADIUS")
        try:
            shape = Disc.around(lat, lon, radius)
        except ValidationError as exc:
            raise ValidationError(f"--disc: {exc}") from None
    else:
        raise CamgateError("give the zone's shape: --geojson FILE, --corridor or --disc")
    zone = Zone.new(args.role, shape, name=args.name, kind=args.kind, incident_id=args.incident)
    with _closing(_gate(args)) as gate:
        gate.zones.add(zone)
    _print_json(zone.to_json())
    return 0


def cmd_geofence_zone_list(args: argparse.Namespace) -> int:
    """Print the stored zones as JSON."""
    with _closing(_gate(args)) as gate:
        _print_json([z.to_json() for z in gate.zones.zones()])
    return 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    """Delete every exported file (clip, snapshot, HLS segment, cache) past its expiry, unless
    its incident is on hold; each deletion is in the audit log before the file goes."""
    with _closing(_gate(args)) as gate:
        run = gate.retention.run(dry_run=args.dry_run)
    if args.json:
        _print_json(run.to_json())
        return 0
    verb = "would delete" if run.dry_run else "deleted"
    print(f"retention: {verb} {len(run.deleted)}, kept by a hold {len(run.held)}")
    for item in run.deleted:
        print(f"  {verb} {item['kind']:<12} {item['path']} ({item['found']})")
    for item in run.held:
        print(f"  held    {item['kind']:<12} {item['path']} (incident {item['incident']})")
    return 0


def cmd_retention_list(args: argparse.Namespace) -> int:
    """Print every registered file with its expiry and state, as JSON."""
    with _closing(_gate(args)) as gate:
        _print_json([a.to_json() for a in gate.retention.artifacts()])
    return 0


def cmd_hold_add(args: argparse.Namespace) -> int:
    """Place an evidence hold on an incident: its files are kept past expiry (audited)."""
    with _closing(_gate(args)) as gate:
        _print_json(gate.retention.place_hold(args.incident, args.reason, by=args.by).to_json())
    return 0


def cmd_hold_release(args: argparse.Namespace) -> int:
    """Release an incident's evidence hold (audited); expired files go at the next run."""
    with _closing(_gate(args)) as gate:
        hold = gate.retention.release_hold(args.incident, reason=args.reason, by=args.by)
        _print_json({"released": hold.to_json()})
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    """List the evidence holds in force."""
    with _closing(_gate(args)) as gate:
        holds = [h.to_json() for h in gate.retention.holds()]
    if args.json:
        _print_json(holds)
    else:
        for h in holds:
            print(f"{h['incident']}  since {h['placed_at']}  by {h['by']}: {h['reason']}")
        if not holds:
            print("no evidence holds")
    return 0


_G = TypeVar("_G", bound=Gate | _Reader)


class _closing(Generic[_G]):
    def __init__(self, gate: _G) -> None:
        self.gate: _G = gate

    def __enter__(self) -> _G:
        return self.gate

    def __exit__(self, *exc: object) -> None:
        self.gate.audit.close()  # signs the records this command appended (the seal follows)
        self.gate.store.close()


# ---------------------------------------------------------------------- parser


def cmd_conformance_missing(args: argparse.Namespace) -> int:
    """Say how to install the conformance suite (it is a separate distribution)."""
    print(
        "camgate: the conformance suite is not installed: pip install camgate-conformance "
        "(in this repository: uv sync)",
        file=sys.stderr,
    )
    return EXIT_ERROR


def _add_conformance(top: Any) -> None:
    """``camgate conformance``: provided by camgate-conformance when it is installed."""
    help_text = "run the conformance suite against an adapter (camgate-conformance)"
    try:
        from camgate_conformance.cli import cmd_conformance, configure
    except ImportError:
        p = top.add_parser(
            "conformance", help=help_text, description=cmd_conformance_missing.__doc__
        )
        p.add_argument("args", nargs=argparse.REMAINDER, help="the suite's arguments")
        p.set_defaults(func=cmd_conformance_missing)
        return
    p = top.add_parser("conformance", help=help_text, description=cmd_conformance.__doc__)
    configure(p)


def _add_onvif(top: Any) -> None:
    """``camgate onvif probe``: provided by camgate-onvif when it is installed (imported here,
    when the parser is built, never when this module is imported)."""
    try:
        from camgate_onvif.cli import configure
    except ImportError:
        return
    p = top.add_parser("onvif", help="ONVIF devices: probe (camgate-onvif)")
    configure(p)


def _add_setting(p: argparse.ArgumentParser, where: str) -> None:
    help_text = "an adapter setting (docs/rtsp.md, docs/onvif.md), the value in TOML"
    add_setting_option(p, f"{help_text}; {where}; repeatable")


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
    parser.add_argument(
        "--audit-dsn",
        default=None,
        help="keep the audit log in this PostgreSQL database (default: $CAMGATE_AUDIT_DSN, "
        "else in the store); prefer PGPASSWORD or ~/.pgpass to a password in the DSN",
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
    p = add(owners, "history", cmd_owner_history, "every access to an owner's cameras")
    p.add_argument("owner", help="the owner's id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--verify",
        action="store_true",
        help="sign a checkpoint now and prove the owner's slice complete up to it",
    )

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
    _add_setting(p, "stored with the camera")
    p = add(cameras, "set", cmd_camera_set, "change a camera's adapter settings")
    p.add_argument("camera")
    _add_setting(p, "stored with the camera")
    p.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove a setting")
    p = add(cameras, "show", cmd_camera_show, "print a camera and its settings")
    p.add_argument("camera")
    p = add(cameras, "list", cmd_camera_list, "print every camera and its settings")
    p.add_argument("--owner", help="only this owner's cameras")

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
    p.add_argument(
        "--retention-days",
        type=float,
        help="keep footage at most this many days (the agency's limit applies if shorter)",
    )
    p.add_argument("--audio", action="store_true", help="share sound too (default: video only)")

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
    _add_setting(p, "for this request only, over the camera's stored ones; not stored")
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

    geofence = group("geofence", "which cameras a place may reach; zones and exclusions")
    p = add(geofence, "query", cmd_geofence_query, "list cameras round a point, with reasons")
    p.add_argument("--lat", type=float, help="latitude, WGS84 degrees")
    p.add_argument("--lon", type=float, help="longitude, WGS84 degrees")
    p.add_argument("--radius", type=float, help="metres (geodesic)")
    p.add_argument("--incident", help="survey this stored incident instead of a point")
    p.add_argument("--scope", default="live", choices=["live", "recorded", "snapshot"])
    p.add_argument("--purpose", default="investigation", help="the request's purpose")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="FILE", help="also draw a PNG map into FILE")
    p = add(geofence, "zone-add", cmd_geofence_zone_add, "store a zone")
    p.add_argument("--role", required=True, choices=["search", "exclusion", "jurisdiction"])
    p.add_argument("--name", default="", help="e.g. 'Beat 4', 'St Mark clinic'")
    p.add_argument("--kind", default="", help="e.g. beat, clinic, school, shelter, worship")
    p.add_argument("--incident", help="the incident a search zone belongs to")
    p.add_argument("--geojson", metavar="FILE", help="polygons (GeoJSON, any CRS)")
    p.add_argument("--crs", help="the GeoJSON's CRS when it does not say (default WGS84)")
    p.add_argument("--corridor", metavar="'LAT,LON LAT,LON ...'", help="a route")
    p.add_argument("--width", type=float, help="a corridor's half-width, metres")
    p.add_argument("--disc", metavar="LAT,LON,RADIUS", help="a place and a radius in metres")
    add(geofence, "zones", cmd_geofence_zone_list, "print the stored zones as JSON")

    p = add(top, "report", cmd_report, "write the transparency report for a period")
    p.add_argument("--period", required=True, help="YYYY-MM, YYYY-Qn or YYYY (UTC)")
    p.add_argument("--out", required=True, help="folder for report.html and report.json")
    p.add_argument(
        "--k", type=int, default=5, help="suppress counts below this (default 5; 1: none)"
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="write the report even if the audit log fails verification (flagged in it)",
    )
    p.add_argument("--json", action="store_true", help="also print the report's JSON")
    p.add_argument(
        "--export",
        metavar="FILE",
        help="compute it from an audit export (camgate audit export) instead of --db",
    )
    p.add_argument("--key", help="with --export: the hub's Ed25519 public key, hex")

    retention = group("retention", "delete expired footage files; list what is registered")
    p = add(retention, "run", cmd_retention_run, "delete what expired (audited first)")
    p.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    p.add_argument("--json", action="store_true")
    add(retention, "list", cmd_retention_list, "every registered file, its expiry and state")

    holds = group("hold", "evidence holds: keep an incident's footage past its expiry")
    p = add(holds, "add", cmd_hold_add, "place a hold on an incident")
    p.add_argument("incident")
    p.add_argument("--reason", required=True, help="why (e.g. the case number)")
    p.add_argument("--by", default="", help="who places it")
    p = add(holds, "release", cmd_hold_release, "release an incident's hold")
    p.add_argument("incident")
    p.add_argument("--reason", default="", help="why it is released")
    p.add_argument("--by", default="", help="who releases it")
    p = add(holds, "list", cmd_hold_list, "list the holds in force")
    p.add_argument("--json", action="store_true")
    masks = group("masks", "privacy masks: areas filled in every frame that leaves the gate")
    p = add(masks, "set", cmd_masks_set, "set (replace) a camera's privacy masks")
    p.add_argument("camera")
    p.add_argument("--owner", required=True, help="the camera's owner (only they may set masks)")
    p.add_argument(
        "--polygon",
        action="append",
        metavar="'X,Y X,Y X,Y ...'",
        help="corners in normalised coordinates, 0..1 (repeatable, one per polygon)",
    )
    p.add_argument("--clear", action="store_true", help="remove every mask")
    p = add(masks, "show", cmd_masks_show, "print a camera's privacy masks")
    p.add_argument("camera")

    _add_conformance(top)
    _add_onvif(top)

    audit = group("audit", "verify, export, checkpoint the audit log; an owner's slice")
    p = add(audit, "verify", cmd_audit_verify, "verify the chain and the signed checkpoints")
    p.add_argument("--json", action="store_true")
    p.add_argument("--key", help="the hub's Ed25519 public key, hex (default: this store's)")
    p.add_argument(
        "--against", metavar="EXPORT", help="checkpoints seen before (an earlier export)"
    )
    p.add_argument(
        "--witness",
        metavar="FILE|JSON",
        action="append",
        help="a checkpoint kept outside the store's directory: an owner's notice, a "
        "checkpoint or an export, as a file or inline JSON (repeatable)",
    )
    p.add_argument("--slice", metavar="FILE", help="verify an owner's slice file instead")
    p = add(audit, "export", cmd_audit_export, "print the log and checkpoints as JSON Lines")
    p.add_argument("--key", help="the hub's Ed25519 public key, hex (default: this store's)")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="export a log that does not verify, marked as such (default: refuse)",
    )
    add(audit, "checkpoint", cmd_audit_checkpoint, "sign the current chain head now")
    p = add(audit, "slice", cmd_audit_slice, "an owner's records with a completeness proof")
    p.add_argument("owner")
    p.add_argument("--since", type=int, help="seq of the first checkpoint (default: the start)")
    p.add_argument("--until", type=int, help="seq of the second checkpoint (default: latest)")
    p = add(audit, "find-clip", cmd_audit_find_clip, "match a clip file to its audit record")
    p.add_argument("file", help="a clip file (or an HLS playlist or segment)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``camgate`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`camgate ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CamgateError as exc:
        print(f"camgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as exc:  # a path that did not map it: still name the file
        from camgate.store import storage_error

        print(f"camgate: {storage_error(exc, args.db)}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"camgate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
