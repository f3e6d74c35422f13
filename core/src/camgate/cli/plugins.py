"""The installed adapters (``camgate plugins``) and the demo on them (``camgate demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio

from camgate.cli._common import (
    EXIT_ERROR,
    Builder,
    print_json,
)
from camgate.codec import dump
from camgate.errors import ValidationError

__all__ = ["add_parsers"]


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
        print_json(adapters)
    else:
        for a in adapters:
            caps = ", ".join(a["capabilities"])
            print(f"{a['name']:<10} {a['distribution']} {a['version']}  [{caps}]")
        if not adapters:
            print("no adapters installed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the end-to-end demo into --out (``--distributed``: across processes, see
    :mod:`camgate.demo_distributed`)."""
    from camgate.demo import run_demo

    out = Path(args.out)
    if args.distributed:
        from camgate.demo_distributed import run_distributed_demo

        if args.vendor != "rtsp":
            raise ValidationError("--distributed runs on the rtsp simulator only (no --vendor)")
        try:
            result = run_distributed_demo(out, log=lambda m: print(f"demo: {m}", flush=True))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: everything it started is gone
            print("demo: interrupted; everything it started was stopped and removed")
            return 130
        print(f"demo: wrote {out / 'summary.json'}")
        edges_ok = all(a["ok"] for a in result["edge_audits"].values())
        return 0 if result["audit_ok"] and edges_ok else EXIT_ERROR
    summary = anyio.run(
        lambda: run_demo(out, vendor=args.vendor, log=lambda m: print(f"demo: {m}", flush=True))
    )
    print(f"demo: wrote {out / 'summary.json'}")
    return 0 if summary["audit_ok"] else EXIT_ERROR


def add_parsers(b: Builder) -> None:
    """Add ``plugins`` and ``demo`` to the ``camgate`` parser."""
    p = b.add(b.top, "plugins", cmd_plugins, "list installed adapters")
    p.add_argument("--json", action="store_true", help="print a JSON list of adapters")

    p = b.add(b.top, "demo", cmd_demo, "run the end-to-end demo against a real RTSP server")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument(
        "--vendor",
        default="rtsp",
        help="the adapter whose simulator serves the two cameras (default: rtsp; e.g. ring)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="the story across PostgreSQL, NATS, two hubs and two edges (in network namespaces "
        "where root allows); needs camgate[edgenet], PostgreSQL and nats-server",
    )
