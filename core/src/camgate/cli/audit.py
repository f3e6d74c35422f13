"""The audit log and the transparency report: ``camgate audit``, ``camgate report``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from camgate.cli._common import (
    EXIT_ERROR,
    Builder,
    audit_key,
    closing,
    open_gate,
    open_reader,
    print_json,
)
from camgate.errors import CamgateError, ValidationError

__all__ = ["add_parsers"]


def cmd_report(args: argparse.Namespace) -> int:
    """Write the transparency report for a period (report.html with charts, report.json):
    counts only, no owner identity, small counts suppressed. The audit log is verified first;
    a log that fails is refused unless --allow-unverified (then the report says so). With
    --export FILE --key HEX it is computed from an audit export instead, verified the same way."""
    from camgate.report import Period, build_report, verify_export, write_report

    period = Period.parse(args.period)
    if args.export:
        key = audit_key(args, None)
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
        with closing(open_reader(args, store=False)) as gate:
            verified = gate.audit.verify(public_key=audit_key(args, None))
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
        print_json(report)
    else:
        print(f"report {report['period']}: wrote {page} and {data}")
    return 0


def cmd_audit_find_clip(args: argparse.Namespace) -> int:
    """Re-hash a clip file and print the audit records that exported exactly these bytes (grant,
    camera, time); exit 1 when none did (an altered or foreign file)."""
    from camgate.media import clip_tags, find_clip

    with closing(open_reader(args)) as gate:
        found = find_clip(gate.audit, args.file)
    tags = {} if Path(args.file).is_dir() else clip_tags(args.file)
    print_json(
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
        key = audit_key(args, None)
        if key is None:
            with closing(open_reader(args, store=False)) as gate:
                key = audit_key(args, gate)
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
    with closing(open_reader(args, store=False)) as gate:
        result = gate.audit.verify(public_key=audit_key(args, gate), known=known)
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
        print_json(data)
    else:
        print(good if ok else bad)
    return 0 if ok else EXIT_ERROR


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Write the audit log as JSON Lines: a header, the records, and the signed checkpoints
    (each after the record it signs); docs/audit.md says how a third party verifies it."""
    with closing(open_reader(args, store=False)) as gate:
        lines = gate.audit.export_jsonl(
            public_key=audit_key(args, None), unverified=args.allow_unverified
        )
        first = next(lines)  # verification happens before the first line: refuse whole
        print(first)
        for line in lines:
            print(line)
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign the current head of the audit log now (checkpoints are also written every 4096
    records and at the first append a minute after the last one)."""
    with closing(open_gate(args)) as gate:
        cp = gate.audit.checkpoint()
    if cp is None:
        print("nothing new to sign")
    else:
        print_json(cp.to_json())
    return 0


def cmd_audit_slice(args: argparse.Namespace) -> int:
    """Print every record about an owner's cameras between two checkpoints, with the proof
    (signed checkpoints and Merkle paths) that none was left out, as JSON."""
    with closing(open_reader(args, store=False)) as gate:
        piece = gate.audit.owner_slice(args.owner, args.since, args.until)
    print_json(piece.to_json())
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``report`` and ``audit`` to the ``camgate`` parser."""
    p = b.add(b.top, "report", cmd_report, "write the transparency report for a period")
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

    audit = b.group("audit", "verify, export, checkpoint the audit log; an owner's slice")
    p = b.add(audit, "verify", cmd_audit_verify, "verify the chain and the signed checkpoints")
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
    p = b.add(audit, "export", cmd_audit_export, "print the log and checkpoints as JSON Lines")
    p.add_argument("--key", help="the hub's Ed25519 public key, hex (default: this store's)")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="export a log that does not verify, marked as such (default: refuse)",
    )
    b.add(audit, "checkpoint", cmd_audit_checkpoint, "sign the current chain head now")
    p = b.add(audit, "slice", cmd_audit_slice, "an owner's records with a completeness proof")
    p.add_argument("owner")
    p.add_argument("--since", type=int, help="seq of the first checkpoint (default: the start)")
    p.add_argument("--until", type=int, help="seq of the second checkpoint (default: latest)")
    p = b.add(audit, "find-clip", cmd_audit_find_clip, "match a clip file to its audit record")
    p.add_argument("file", help="a clip file (or an HLS playlist or segment)")
