"""Footage retention and evidence holds: ``camgate retention``, ``camgate hold``."""

from __future__ import annotations

import argparse

from camgate.cli._common import (
    Builder,
    closing,
    open_gate,
    print_json,
)

__all__ = ["add_parsers"]


def cmd_retention_run(args: argparse.Namespace) -> int:
    """Delete every exported file (clip, snapshot, HLS segment, cache) past its expiry, unless
    its incident is on hold; each deletion is in the audit log before the file goes."""
    with closing(open_gate(args)) as gate:
        run = gate.retention.run(dry_run=args.dry_run)
    if args.json:
        print_json(run.to_json())
        return 0
    verb = "would delete" if run.dry_run else "deleted"
    elsewhere = f", left to other nodes {run.elsewhere}" if run.elsewhere else ""
    print(f"retention: {verb} {len(run.deleted)}, kept by a hold {len(run.held)}{elsewhere}")
    for item in run.deleted:
        print(f"  {verb} {item['kind']:<12} {item['path']} ({item['found']})")
    for item in run.held:
        print(f"  held    {item['kind']:<12} {item['path']} (incident {item['incident']})")
    return 0


def cmd_retention_list(args: argparse.Namespace) -> int:
    """Print every registered file with its expiry and state, as JSON."""
    with closing(open_gate(args)) as gate:
        print_json([a.to_json() for a in gate.retention.artifacts()])
    return 0


def cmd_hold_add(args: argparse.Namespace) -> int:
    """Place an evidence hold on an incident: its files are kept past expiry (audited)."""
    with closing(open_gate(args)) as gate:
        print_json(gate.retention.place_hold(args.incident, args.reason, by=args.by).to_json())
    return 0


def cmd_hold_release(args: argparse.Namespace) -> int:
    """Release an incident's evidence hold (audited); expired files go at the next run."""
    with closing(open_gate(args)) as gate:
        hold = gate.retention.release_hold(args.incident, reason=args.reason, by=args.by)
        print_json({"released": hold.to_json()})
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    """List the evidence holds in force."""
    with closing(open_gate(args)) as gate:
        holds = [h.to_json() for h in gate.retention.holds()]
    if args.json:
        print_json(holds)
    else:
        for h in holds:
            print(f"{h['incident']}  since {h['placed_at']}  by {h['by']}: {h['reason']}")
        if not holds:
            print("no evidence holds")
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``retention`` and ``hold`` to the ``camgate`` parser."""
    retention = b.group("retention", "delete expired footage files; list what is registered")
    p = b.add(retention, "run", cmd_retention_run, "delete what expired (audited first)")
    p.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    p.add_argument("--json", action="store_true")
    b.add(retention, "list", cmd_retention_list, "every registered file, its expiry and state")

    holds = b.group("hold", "evidence holds: keep an incident's footage past its expiry")
    p = b.add(holds, "add", cmd_hold_add, "place a hold on an incident")
    p.add_argument("incident")
    p.add_argument("--reason", required=True, help="why (e.g. the case number)")
    p.add_argument("--by", default="", help="who places it")
    p = b.add(holds, "release", cmd_hold_release, "release an incident's hold")
    p.add_argument("incident")
    p.add_argument("--reason", default="", help="why it is released")
    p.add_argument("--by", default="", help="who releases it")
    p = b.add(holds, "list", cmd_hold_list, "list the holds in force")
    p.add_argument("--json", action="store_true")
