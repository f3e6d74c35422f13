"""``camgate edge``: an edge at an owner's site (``serve``) and the hub's link to edges (``hub``),
over NATS (docs/deployment.md, "Edges over NATS"; needs ``camgate[edgenet]``)."""

from __future__ import annotations

import argparse
import signal
import sys

import anyio

from camgate.cli._common import Builder, closing, open_gate, open_reader, print_json
from camgate.errors import ValidationError

__all__ = ["add_parsers"]


def _hub_key(text: str) -> bytes:
    from camgate.audit.chain import check_public_key

    try:
        return check_public_key(bytes.fromhex(text))
    except ValueError:
        raise ValidationError("--hub-key: the hub's public key as 64 hex digits") from None


async def _until_signal(run: object, name: str) -> None:
    """Run ``run(ready)`` until it returns or SIGTERM/SIGINT arrives."""

    def ready() -> None:
        print(f"{name}: serving", flush=True)

    async with anyio.create_task_group() as tg:

        async def main() -> None:
            await run(ready)  # type: ignore[operator]
            tg.cancel_scope.cancel()

        tg.start_soon(main)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                return


def cmd_edge_serve(args: argparse.Namespace) -> int:
    """Run an edge at an owner's site: its own store (``--db``: its cameras and their
    credentials, which never leave it) and audit log, grants verified offline with the hub's
    public key, NATS dialled out. Prints "edge ID: serving" once it holds its identity lease,
    then serves until SIGTERM/SIGINT. Refuses to start while another edge holds the same id."""
    from camgate.audit import AuditLog
    from camgate.edgenet import EdgeSite, SiteEdge
    from camgate.grants import GrantVerifier
    from camgate.plugins import PluginHost
    from camgate.store import Store

    key = _hub_key(args.hub_key)
    if args.staleness <= 0:
        raise ValidationError("--staleness must be above 0 seconds")
    store = Store(args.db)
    audit = AuditLog(store)  # signed with the edge's own key, beside the store
    edge = SiteEdge(
        store=store,
        host=PluginHost(),
        verifier=GrantVerifier(key),
        audit=audit,
        staleness_s=args.staleness,
    )
    site = EdgeSite(edge, args.id, args.nats, key)

    async def main() -> None:
        try:
            await _until_signal(site.run, f"edge {args.id}")
        finally:
            with anyio.CancelScope(shield=True):
                await edge.aclose()

    try:
        anyio.run(main)
    finally:
        audit.close()
        store.close()
    print(f"edge {args.id}: stopped", file=sys.stderr)
    return 0


def _edges(values: list[str]) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {}
    for value in values:
        edge, sep, cameras = value.partition("=")
        if not sep or not edge or not cameras:
            raise ValidationError(f"--edge {value!r}: expected EDGE=CAMERA[,CAMERA...]")
        edges.setdefault(edge, []).extend(c for c in cameras.split(",") if c)
    return edges


def cmd_edge_hub(args: argparse.Namespace) -> int:
    """Run the hub's link to its edges over NATS, beside ``camgate serve`` on the same store:
    publishes each camera's consent state to its edge (the registry's, ``camgate edge assign``,
    and any ``--edge``) after every change, heartbeats, and records the edges'
    acknowledgements (``edge.ack``) in the hub's audit log."""
    from camgate.edgenet import HubLink

    edges = _edges(args.edge or [])
    gate = open_gate(args)
    link = HubLink(gate, args.nats, edges, beat_s=args.beat, lease_s=args.lease)

    async def main() -> None:
        try:
            await _until_signal(link.run, "hub link")
        finally:
            with anyio.CancelScope(shield=True):
                await gate.aclose()

    anyio.run(main)
    return 0


def cmd_edge_assign(args: argparse.Namespace) -> int:
    """Record in the registry that edge EDGE serves these cameras (replacing the edge they
    had): the hub's link publishes their consent there, and ``WS /live/{grant}`` of
    ``camgate serve --nats`` opens them through it. All or nothing: an unknown camera records
    none."""
    with closing(open_gate(args)) as gate:
        gate.store.assign_edge(args.edge_id, list(args.cameras))
    print(f"edge {args.edge_id}: serves {', '.join(args.cameras)}")
    return 0


def cmd_edge_unassign(args: argparse.Namespace) -> int:
    """Forget which edge serves these cameras (the hub's own edge serves them again); the
    link tells their former edge they have no consent there any more."""
    with closing(open_gate(args)) as gate:
        gone = gate.store.unassign_edge(list(args.cameras))
    print(f"unassigned {', '.join(gone) if gone else 'nothing'}")
    return 0


def cmd_edge_list(args: argparse.Namespace) -> int:
    """Print the registry's camera -> edge mapping as JSON (``{"camera": "edge"}``)."""
    with closing(open_gate(args)) as gate:
        print_json(gate.store.camera_edges())
    return 0


def cmd_edge_key(args: argparse.Namespace) -> int:
    """Print the hub's public key (64 hex digits) for ``camgate edge serve --hub-key``: the key
    grants and control messages are signed with. Reads the store read-only."""
    reader = open_reader(args)
    try:
        key = reader.audit.public_key
    finally:
        reader.close()
    if key is None:
        raise ValidationError(f"{args.db}: no hub key recorded yet (nothing was signed)")
    print(key.hex())
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``camgate edge`` and its actions."""
    edge = b.group(
        "edge",
        "edges at owners' sites over NATS: serve (at the site), hub (link), key, "
        "assign/unassign/list (which edge serves a camera)",
    )
    p = b.add(edge, "serve", cmd_edge_serve, "run an edge at an owner's site")
    p.add_argument("--id", required=True, help="this edge's id (letters, digits, '_', '-')")
    p.add_argument("--nats", required=True, help="the NATS server's URL (nats://host:port)")
    p.add_argument("--hub-key", required=True, help="the hub's public key, 64 hex digits")
    p.add_argument("--db", default=argparse.SUPPRESS, help="the edge's own store (as camgate --db)")
    p.add_argument(
        "--staleness",
        type=float,
        default=5.0,
        help="seconds without a confirmed hub heartbeat before it stops serving (default 5)",
    )
    b.add(edge, "key", cmd_edge_key, "print the hub's public key for edges")
    p = b.add(edge, "hub", cmd_edge_hub, "run the hub's link to its edges")
    p.add_argument("--nats", required=True, help="the NATS server's URL (nats://host:port)")
    p.add_argument(
        "--edge",
        action="append",
        metavar="EDGE=CAM[,CAM...]",
        help="an edge and the cameras behind it, besides the registry's (camgate edge assign); "
        "repeat for each edge",
    )
    p.add_argument("--beat", type=float, default=0.5, help="heartbeat period, s (default 0.5)")
    p.add_argument(
        "--lease", type=float, default=6.0, help="an edge identity's lease, s (default 6)"
    )
    p = b.add(edge, "assign", cmd_edge_assign, "record that an edge serves these cameras")
    p.add_argument("edge_id", metavar="EDGE", help="the edge's id (as camgate edge serve --id)")
    p.add_argument("cameras", metavar="CAMERA", nargs="+", help="the cameras behind it")
    p = b.add(edge, "unassign", cmd_edge_unassign, "forget which edge serves these cameras")
    p.add_argument("cameras", metavar="CAMERA", nargs="+", help="the cameras")
    b.add(edge, "list", cmd_edge_list, "print which edge serves each camera (JSON)")
