"""``camgate demo --distributed``: the demo's story across processes, as a city would run it.

It starts, all throwaway: a PostgreSQL server (the hubs' shared state and audit log), a NATS
server with JetStream, two hubs on that database — this process (decisions, grants, the officer
watching) and ``camgate edge hub`` (the link that tells edges of consent changes and records
their acknowledgements) — and two edges at "owners' sites" (``camgate edge serve``), each with
its own SQLite store, its own audit log and the credentials of its two RTSP simulator cameras
(which never reach the hub). Where the machine allows (root and ``ip netns``), each edge and its
cameras run in a network namespace of their own whose only link is a veth to a bridge where NATS
listens: the edge reaches the hubs only by dialling out to NATS, and nothing in the namespace
listens beyond its own loopback. Elsewhere it all runs on loopback, and the summary says so.

The story: four owners enrol (two cameras per edge), a burglary is reported near all four, the
officer asks for live view of each (the policy refuses where the owner allows no live view),
and for each granted camera a still and a live clip come through the edge over NATS; then an
owner revokes while the officer watches: the edge ends the stream, acknowledges, and the link
records the acknowledgement in the shared log. The hub fetches each edge's own audit log and
verifies it with the edge's key. ``summary.json``, the hub's audit trail (``audit.jsonl``) and
each edge's (``edge-<id>-audit.jsonl``) go into the output folder; everything else (processes,
namespaces, the bridge, temporary folders) is removed on exit, on an error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import anyio

from camgate.errors import AccessDenied, CamgateError, ConfigError, ConsentRevoked
from camgate.extras import needs_extra
from camgate.models import Camera, CameraClass, ConsentTerms, GeoPoint, Owner, Scope, Waiver
from camgate.vocab import AuditKind

__all__ = ["EDGES", "run_distributed_demo"]

#: The module each site runs for its cameras: the rtsp adapter's simulator as a process (two
#: cameras that ask for digest credentials; one JSON line of sources and credentials, then it
#: serves until its stdin closes). Named, not imported: core does not import a plugin.
_CAMERAS = "camgate_rtsp.testing.simulator"

#: Live clip length (s) taken through each edge.
CLIP_SECONDS = 3.0
#: The edges' staleness limit (s) and the link's heartbeat period (s).
STALENESS_S = 5.0
BEAT_S = 0.5
#: How long any one process may take to say it is ready (s).
READY_S = 60.0
JACKSON = GeoPoint(32.2988, -90.1848)

#: edge id -> its cameras' owners: (owner id, name, scopes allowed, metres north of the scene).
EDGES: dict[str, list[tuple[str, str, set[Scope], float]]] = {
    "site1": [
        ("alice", "Alice (corner store)", {Scope.LIVE, Scope.SNAPSHOT}, 40.0),
        ("bob", "Bob (residence)", {Scope.RECORDED}, -60.0),
    ],
    "site2": [
        ("carol", "Carol (pharmacy)", {Scope.LIVE}, 120.0),
        ("dave", "Dave (garage)", {Scope.LIVE, Scope.SNAPSHOT}, -150.0),
    ],
}
#: The owner who revokes while the officer watches.
REVOKER = "carol"


class _Process:
    """A child process in its own session (a Ctrl-C reaches it only through :meth:`stop`),
    its output lines collected by a thread."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,  # the camera process stops when it reaches end-of-file
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout_s: float = READY_S) -> str:
        """The first output line starting with ``prefix``; CamgateError (with the process's
        last lines) when it exits or does not say it within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = "\n".join(self.lines[-15:])
        raise CamgateError(f"{self.name} did not say {prefix!r}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM (after closing its stdin), SIGKILL after 15 s."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


def _ip_binary() -> str:
    found = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise OSError("no 'ip' command (Debian's iproute2)")
    return found


def _ip(*args: str) -> str:
    done = subprocess.run([_ip_binary(), *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


class _Network:
    """Where the edges run: a network namespace each behind a bridge (``used``), or loopback.

    :meth:`wrap` puts a command into edge ``i``'s namespace; ``host_ip`` is the address NATS
    listens on (the bridge's, or 127.0.0.1); :meth:`close` removes what was made.
    """

    def __init__(self) -> None:
        self.used = False
        self.note = ""
        self.host_ip = "127.0.0.1"
        self.namespaces: list[str] = []
        self.addresses: list[str] = []
        self._bridge: str | None = None
        self._veths: list[str] = []

    def setup(self, edges: int) -> None:
        """Make a namespace for each of ``edges`` edges where allowed; otherwise say why in
        :attr:`note` (loopback). What was made before a failure is removed at once; call
        :meth:`close` in any case (also after an interruption)."""
        tag = f"{os.getpid() % 100000:05d}"
        if os.geteuid() != 0:
            self.note = "not root: edges on loopback (network namespaces need root)"
            return
        try:
            _ip("netns", "list")
        except (OSError, subprocess.SubprocessError) as exc:
            self.note = f"no usable 'ip netns' ({exc}): edges on loopback"
            return
        try:
            self._make(tag, edges)
        except (OSError, subprocess.SubprocessError) as exc:
            self.close()
            self.host_ip, self.addresses = "127.0.0.1", []
            self.note = f"network namespaces not allowed here ({exc}): edges on loopback"
            return
        self.used = True
        self.note = (
            f"each edge in its own network namespace; its only link a veth to bridge "
            f"{self._bridge} ({self.host_ip}), where only NATS listens"
        )

    def _make(self, tag: str, edges: int) -> None:
        taken = _ip("-4", "addr")
        for _ in range(20):
            net = f"10.213.{secrets.randbelow(250) + 1}."
            if net not in taken:
                break
        else:
            raise OSError("no free 10.213.x.0/24 subnet")
        self._bridge = bridge = f"cgd{tag}b"
        _ip("link", "add", bridge, "type", "bridge")
        self.host_ip = f"{net}1"
        _ip("addr", "add", f"{self.host_ip}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(edges):
            ns, host_end, ns_end = f"camgate-demo-{tag}-{i + 1}", f"cgd{tag}h{i}", f"cgd{tag}n{i}"
            _ip("netns", "add", ns)
            self.namespaces.append(ns)
            self._veths.append(host_end)  # deleting one end deletes the pair
            _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            _ip("link", "set", ns_end, "netns", ns)
            _ip("link", "set", host_end, "master", bridge, "up")
            address = f"{net}{11 + i}"
            in_ns = ("netns", "exec", ns, "ip")
            _ip(*in_ns, "addr", "add", f"{address}/24", "dev", ns_end)
            _ip(*in_ns, "link", "set", ns_end, "up")
            _ip(*in_ns, "link", "set", "lo", "up")
            self.addresses.append(address)  # no default route: the bridge's subnet only

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        """``argv`` run in edge ``i``'s namespace (as it is on loopback)."""
        return [_ip_binary(), "netns", "exec", self.namespaces[i], *argv] if self.used else argv

    def listening_beyond_loopback(self, i: int) -> list[str]:
        """The TCP/UDP sockets listening in edge ``i``'s namespace on anything but loopback."""
        if not self.used:
            return []
        out = _ip("netns", "exec", self.namespaces[i], "ss", "-ltunH")
        found = []
        for line in out.splitlines():
            fields = line.split()
            local = fields[4] if len(fields) > 4 else ""
            if local and not local.startswith(("127.", "[::1]", "::1")):
                found.append(local)
        return found

    def close(self) -> None:
        """Delete the namespaces (their veths go with them) and the bridge."""
        for ns in self.namespaces:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _ip("netns", "del", ns)
        self.namespaces = []
        for veth in self._veths:  # gone with its namespace, unless it never got there
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _ip("link", "del", veth)
        self._veths = []
        if self._bridge is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _ip("link", "del", self._bridge)
            self._bridge = None


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM handled like Ctrl-C (KeyboardInterrupt), so cleanup runs for both."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_distributed_demo(out: Path, *, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run the distributed demo into ``out`` (created; an earlier run's files there replaced).

    Needs PostgreSQL and nats-server (scripts/setup.sh installs both), the ``edgenet`` extra
    and the rtsp adapter. Returns the summary also written to ``out/summary.json``; every
    process, namespace and temporary folder it made is gone when it returns or raises
    (KeyboardInterrupt and SIGTERM included).
    """
    from camgate.testing.natsserver import NatsServer
    from camgate.testing.pgserver import PostgresServer

    # checked before anything starts
    with needs_extra("edgenet", "the distributed demo (camgate demo --distributed)"):
        import nats  # noqa: F401
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack, _terminate_as_interrupt():
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camgate-ddemo-")))
        home = tmp / "hub"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "CAMGATE_AUDIT_DSN"}
        env["CAMGATE_HOME"] = str(home)  # both hubs: the same signing key, never the user's
        stack.enter_context(_environ("CAMGATE_HOME", str(home)))
        stack.enter_context(_environ("CAMGATE_AUDIT_DSN", None))
        log(f"working folder {tmp} (removed on exit)")
        net = _Network()
        stack.callback(net.close)  # after every process below is stopped
        net.setup(len(EDGES))
        log(net.note)

        def start(name: str, argv: list[str]) -> _Process:
            proc = _Process(name, argv, env)
            stack.callback(proc.stop)
            return proc

        cameras = {  # started first, while PostgreSQL starts; awaited below
            edge_id: start(
                f"cameras of {edge_id}",
                net.wrap(i, [sys.executable, "-m", _CAMERAS, "--count", "2", "--auth"]),
            )
            for i, edge_id in enumerate(EDGES)
        }
        try:
            pg = stack.enter_context(PostgresServer())
        except RuntimeError as exc:  # not installed, or it would not start: say which
            raise ConfigError(f"the distributed demo needs PostgreSQL: {exc}") from None
        dsn = pg.create_database("camgate_demo")
        log(f"PostgreSQL up on 127.0.0.1:{pg.port} (the hubs' shared state and audit log)")
        try:
            natsd = stack.enter_context(NatsServer(tmp, host=net.host_ip))
        except RuntimeError as exc:
            raise ConfigError(f"the distributed demo needs nats-server: {exc}") from None
        log(f"NATS (JetStream) up at {natsd.url}")
        sites: dict[str, dict[str, Any]] = {}
        for edge_id, cams in cameras.items():
            sites[edge_id] = json.loads(cams.wait_for("{"))
            sources = ", ".join(sites[edge_id]["sources"])
            log(f"{edge_id}: cameras up (digest credentials) at {sources}")
        summary = anyio.run(_story, out, tmp, dsn, natsd.url, net, sites, start, log)
    what = "namespaces, bridge, " if summary["network"]["namespaces"] else ""
    log(f"everything stopped and removed ({what}processes, temporary folders)")
    return summary


@contextlib.contextmanager
def _environ(name: str, value: str | None) -> Iterator[None]:
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


async def _story(
    out: Path,
    tmp: Path,
    dsn: str,
    nats_url: str,
    net: _Network,
    sites: dict[str, dict[str, Any]],
    start: Callable[[str, list[str]], _Process],
    log: Callable[[str], Any],
) -> dict[str, Any]:
    """Enrol, report, decide, stream through the edges, revoke, verify: the hub's side."""
    import nats

    from camgate.adapters import Credentials
    from camgate.demo import WAIVER_TEXT
    from camgate.edgenet import fetch_edge_audit
    from camgate.gate import Gate
    from camgate.media.files import write_private
    from camgate.store import Store

    cli = [sys.executable, "-m", "camgate.cli"]
    gate = Gate.open(dsn)
    try:
        waiver = gate.publish_waiver(Waiver("jackson-pilot-1", WAIVER_TEXT))
        edge_of: dict[str, str] = {}
        for i, (edge_id, people) in enumerate(EDGES.items()):
            site = sites[edge_id]
            edge_db = tmp / f"{edge_id}.sqlite"
            edge_store = Store(edge_db)
            try:
                for (owner_id, name, scopes, north_m), source in zip(
                    people, site["sources"], strict=True
                ):
                    camera = Camera(
                        id=f"cam-{owner_id}",
                        adapter="rtsp",
                        source=source,  # the hub knows where, never how to log in
                        owner_id=owner_id,
                        position=GeoPoint(JACKSON.lat + north_m / 111_000, JACKSON.lon),
                        camera_class=CameraClass.PRIVATE,
                        label=name,
                    )
                    gate.add_owner(Owner(owner_id, name))
                    gate.add_camera(camera)
                    # The edge's own store: the same camera, with what only the site holds.
                    edge_store.add_owner(Owner(owner_id, name))
                    edge_store.add_camera(camera)
                    cred = site["credentials"][source]
                    edge_store.set_credentials(
                        camera.id, Credentials(cred["username"], cred["password"])
                    )
                    gate.enrol(
                        owner_id,
                        [camera.id],
                        waiver_version=waiver.version,
                        waiver_sha256=waiver.sha256,
                        terms=ConsentTerms(scopes=scopes),
                    )
                    edge_of[camera.id] = edge_id
                    allowed = sorted(map(str, scopes))
                    log(f"enrolled {camera.id} behind {edge_id}: {name} allows {allowed}")
            finally:
                edge_store.close()
            site["db"] = edge_db
            site["index"] = i
        link_args = [f"{e}={','.join(c for c, x in edge_of.items() if x == e)}" for e in EDGES]
        link = start(
            "hub link",
            [*cli, "--db", dsn, "edge", "hub", "--nats", nats_url, "--beat", str(BEAT_S),
             *(a for e in link_args for a in ("--edge", e))],
        )  # fmt: skip
        hub_key = gate.public_key.hex()
        edges: dict[str, _Process] = {}
        for edge_id, site in sites.items():
            edges[edge_id] = start(
                f"edge {edge_id}",
                net.wrap(
                    site["index"],
                    [*cli, "--db", str(site["db"]), "edge", "serve", "--id", edge_id,
                     "--nats", nats_url, "--hub-key", hub_key, "--staleness", str(STALENESS_S)],
                ),
            )  # fmt: skip
        await anyio.to_thread.run_sync(link.wait_for, "hub link: serving")
        log("hub 2 (camgate edge hub) serving: consent changes out, acknowledgements in")
        for edge_id, proc in edges.items():
            await anyio.to_thread.run_sync(proc.wait_for, f"edge {edge_id}: serving")
            where = (
                f"namespace {net.namespaces[sites[edge_id]['index']]}" if net.used else "loopback"
            )
            log(f"edge {edge_id} serving ({where}), dialled out to NATS")
        incident = gate.report_incident("burglary", JACKSON, radius_m=500.0)
        log(f"incident {incident.id}: burglary, 500 m around {JACKSON.lat}, {JACKSON.lon}")
        nc = await nats.connect(nats_url, name="camgate-officer")
        files: list[str] = []
        granted: list[str] = []
        denied: list[dict[str, Any]] = []
        try:
            for camera_id, edge_id in edge_of.items():
                try:
                    signed = await gate.request_access(
                        incident.id, camera_id, Scope.LIVE, requested_by="rtcc-demo",
                        duration_s=CLIP_SECONDS + 15.0,
                    )  # fmt: skip
                except AccessDenied as refusal:
                    denied.append({"camera": camera_id, "reasons": refusal.decision.reasons})
                    log(f"{camera_id} live: refused ({'; '.join(refusal.decision.reasons)})")
                    continue
                if camera_id.removeprefix("cam-") == REVOKER:
                    granted.append(camera_id)
                    continue  # watched below, until the owner revokes
                stream = await _open(nc, edge_id, camera_id, signed.token)
                made = await _still_and_clip(gate, stream, out, camera_id, signed.grant.id)
                files.extend(made)
                granted.append(camera_id)
                log(f"{camera_id}: still and {CLIP_SECONDS:g} s clip through edge {edge_id}")
            revocation = await _revocation(gate, nc, edge_of, incident.id, log)
            edge_audits: dict[str, Any] = {}
            for edge_id, site in sites.items():
                key = await anyio.to_thread.run_sync(_edge_key, site["db"])
                records, verdict = await fetch_edge_audit(nc, edge_id, key)
                path = out / f"edge-{edge_id}-audit.jsonl"
                lines = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records)
                write_private(path, lines.encode(), replace=True)
                files.append(str(path))
                kinds: dict[str, int] = {}
                for record in records:
                    kinds[record.kind] = kinds.get(record.kind, 0) + 1
                edge_audits[edge_id] = {
                    "ok": verdict.ok,
                    "records": len(records),
                    "kinds": kinds,
                    "public_key": key.hex(),
                }
                said = "verified" if verdict.ok else "BROKEN"
                log(f"edge {edge_id} audit slice: {len(records)} records, {said} with its key")
        finally:
            await nc.close()
        for proc in edges.values():
            proc.stop()  # ends cleanly: its audit log closed before the namespace goes
        link.stop()
        network = {
            "namespaces": net.used,
            "note": net.note,
            "nats": nats_url,
            "edges": {
                edge_id: {
                    "namespace": net.namespaces[site["index"]] if net.used else None,
                    "address": net.addresses[site["index"]] if net.used else "127.0.0.1",
                    "listening_beyond_loopback": net.listening_beyond_loopback(site["index"]),
                    "hub_can_dial_camera": _can_dial(net, site),
                }
                for edge_id, site in sites.items()
            },
        }
        result = gate.audit.verify()
        audit_path = out / "audit.jsonl"
        audit_lines = "".join(line + "\n" for line in gate.audit.export_jsonl())
        write_private(audit_path, audit_lines.encode(), replace=True)
        files.append(str(audit_path))
        notices = {o: len(gate.store.notices(o)) for ps in EDGES.values() for o, *_ in ps}
        acks = [r.body for r in gate.audit.records(AuditKind.EDGE_ACK)]
    finally:
        await gate.aclose()
    summary = {
        "distributed": True,
        "hubs": ["demo process (decisions, grants, the officer)", "camgate edge hub (link)"],
        "edges": {e: [c for c, x in edge_of.items() if x == e] for e in EDGES},
        "network": network,
        "granted": granted,
        "denied": denied,
        "files": files,
        "revocation": revocation,
        "edge_acks": acks,
        "edge_audits": edge_audits,
        "audit_ok": result.ok,
        "audit_records": result.records,
        "audit_head": result.head,
        "hub_public_key": hub_key,
        "incident": incident.id,
        "owner_notices": notices,
    }
    write_private(
        out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode(), replace=True
    )
    log(f"hub audit chain: {result.records} records, {'verified' if result.ok else 'BROKEN'}")
    return summary


async def _open(nc: Any, edge_id: str, camera_id: str, token: str) -> Any:
    """Open a camera's live stream on a remote edge, retrying (up to 20 s) while the edge
    says it is not up to date yet (a refusal before redemption: the grant is kept)."""
    from camgate.edgenet import open_remote_live

    deadline = time.monotonic() + 20.0
    while True:
        try:
            return await open_remote_live(nc, edge_id, camera_id, token)
        except ConsentRevoked as exc:
            if "up to date" not in str(exc) or time.monotonic() > deadline:
                raise
            await anyio.sleep(0.1)


async def _still_and_clip(
    gate: Any, stream: Any, out: Path, camera_id: str, grant_id: str
) -> list[str]:
    """A JPEG still (the first picture) and a CLIP_SECONDS MP4 from a remote live stream."""
    from camgate.media.jpeg import jpeg_from_packets
    from camgate.media.mux import Mp4Writer
    from camgate.retention import export_bytes

    clip = out / f"{camera_id}-clip.mp4"
    clip.unlink(missing_ok=True)
    first: list[Any] = []
    writer: Mp4Writer | None = None
    try:
        with anyio.fail_after(30):
            async for packet in stream:
                if packet.stream.kind != "video":
                    continue
                if len(first) < 90:
                    first.append(packet)
                if writer is None:
                    if not packet.is_keyframe:
                        continue
                    writer = Mp4Writer(clip, packet.stream, metadata={"camgate_grant": grant_id})
                writer.write(packet)
                if writer.duration >= CLIP_SECONDS:
                    break
    finally:
        await stream.aclose()
        if writer is not None:
            writer.close()
    jpeg, _w, _h = await anyio.to_thread.run_sync(jpeg_from_packets, first)
    still = out / f"{camera_id}-still.jpg"
    export_bytes(gate.retention, still, "snapshot", jpeg, camera_id=camera_id,
                 grant_id=grant_id, replace=True)  # fmt: skip
    return [str(still), str(clip)]


async def _revocation(
    gate: Any, nc: Any, edge_of: dict[str, str], incident_id: str, log: Callable[[str], Any]
) -> dict[str, Any]:
    """The officer watches REVOKER's camera through its edge; the owner revokes on this hub;
    the edge ends the stream and acknowledges; the link records it. Timings in ms."""
    camera_id = f"cam-{REVOKER}"
    edge_id = edge_of[camera_id]
    signed = await gate.request_access(
        incident_id, camera_id, Scope.LIVE, requested_by="rtcc-demo", duration_s=60.0
    )
    stream = await _open(nc, edge_id, camera_id, signed.token)
    seen = 0
    with anyio.fail_after(30):
        async for _packet in stream:
            seen += 1
            if seen >= 10:
                break
    before = {r.seq for r in gate.audit.records(AuditKind.EDGE_ACK)}
    revoked_at = time.monotonic()
    await gate.revoke(REVOKER)
    ended_ms = None
    try:
        with anyio.fail_after(STALENESS_S + 10):
            async for _packet in stream:
                pass
    except ConsentRevoked:
        ended_ms = round((time.monotonic() - revoked_at) * 1000, 1)
    ack = None
    deadline = time.monotonic() + 20.0
    while ack is None and time.monotonic() < deadline:
        for record in gate.audit.records(AuditKind.EDGE_ACK):
            if record.seq not in before and record.body.get("camera") == camera_id:
                ack = record
        if ack is None:
            await anyio.sleep(0.05)
    acked_ms = round((time.monotonic() - revoked_at) * 1000, 1) if ack else None
    log(
        f"{REVOKER} revoked while the officer watched {camera_id}: the edge ended the stream "
        f"({stream.end_reason}) after {ended_ms} ms; acknowledged after {acked_ms} ms"
    )
    return {
        "owner": REVOKER,
        "camera": camera_id,
        "edge": edge_id,
        "packets_before": seen,
        "stream_end_reason": str(stream.end_reason.value) if stream.end_reason else None,
        "stream_ended_ms": ended_ms,
        "acknowledged": ack is not None,
        "acknowledged_ms": acked_ms,
        "ack_streams_ended": ack.body.get("streams_ended") if ack else None,
    }


def _edge_key(db: Path) -> bytes:
    """The edge's own audit key, as ``camgate --db EDGE.sqlite edge key`` prints it at the site
    (read-only; the operator pins it at the hub)."""
    from camgate.audit import AuditLog
    from camgate.store import Store

    store = Store(db, read_only=True)
    try:
        log = AuditLog(store, read_only=True)
        try:
            key = log.public_key
        finally:
            log.close()
    finally:
        store.close()
    if key is None:
        raise CamgateError(f"{db}: the edge has not signed anything yet")
    return key


def _can_dial(net: _Network, site: dict[str, Any]) -> bool | None:
    """Whether this (hub) side can open a TCP connection to a camera port at the edge's
    address (None on loopback, where it trivially can)."""
    if not net.used:
        return None
    port = int(site["sources"][0].split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    try:
        with socket.create_connection((net.addresses[site["index"]], port), timeout=2):
            return True
    except OSError:
        return False
