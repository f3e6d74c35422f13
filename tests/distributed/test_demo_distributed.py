"""``camgate demo --distributed`` as a user runs it: a subprocess, then its outputs checked on
their own — the hub's audit export verified with the stdlib-free verifier, each edge's slice
re-chained, the clips decoded by ffprobe — and nothing it started left behind (processes,
network namespaces, its working folder), also when interrupted with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from camgate.audit.chain import AuditRecord, verify_records
from camgate.media.jpeg import decode_jpeg
from camgate.report import verify_export

CLI = [sys.executable, "-m", "camgate.cli"]


def _descendants(pid: int) -> set[int]:
    """Every living process under ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _namespaces(pid: int) -> list[str]:
    if os.geteuid() != 0:
        return []
    done = subprocess.run(["/usr/sbin/ip", "netns", "list"], capture_output=True, text=True)
    return [
        line for line in done.stdout.splitlines() if f"camgate-demo-{pid % 100000:05d}-" in line
    ]


def _leftovers(proc: subprocess.Popen[str], output: str, children: set[int]) -> list[str]:
    """What the demo process left behind after it exited."""
    left = [f"process {pid}" for pid in children if _alive(pid)]
    left += _namespaces(proc.pid)
    folder = re.search(r"working folder (\S+)", output)
    if folder and Path(folder.group(1)).exists():
        left.append(folder.group(1))
    servers = list(re.finditer(r"(PostgreSQL|NATS).* up .*?(\d+\.\d+\.\d+\.\d+):(\d+)", output))
    assert [m.group(1) for m in servers] == ["PostgreSQL", "NATS"], output
    for server in servers:
        try:
            with socket.create_connection((server.group(2), int(server.group(3))), timeout=2):
                left.append(f"{server.group(1)} still listening")
        except OSError:
            pass
    return left


def test_distributed_demo_runs_the_story_across_processes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.Popen(
        [*CLI, "demo", "--distributed", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children: set[int] = set()
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # the processes it started, seen while it runs
        lines.append(line)
        if "serving" in line:
            children |= _descendants(proc.pid)
    code = proc.wait(timeout=300)
    output = "".join(lines)
    print(f"camgate demo --distributed: {time.monotonic() - started:.1f} s wall")
    assert code == 0, output
    assert len(children) >= 4, output  # 2 camera processes, the link, 2 edges (and more)
    assert _leftovers(proc, output, children) == []

    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert summary["distributed"] is True
    assert summary["edges"] == {
        "site1": ["cam-alice", "cam-bob"],
        "site2": ["cam-carol", "cam-dave"],
    }
    assert summary["granted"] == ["cam-alice", "cam-carol", "cam-dave"]
    assert [d["camera"] for d in summary["denied"]] == ["cam-bob"]
    network = summary["network"]
    if os.geteuid() == 0:
        assert network["namespaces"] is True, network["note"]
        for edge in network["edges"].values():
            assert edge["listening_beyond_loopback"] == []
            assert edge["hub_can_dial_camera"] is False
    else:
        assert network["namespaces"] is False and "loopback" in network["note"]

    # The revocation reached the edge mid-stream, and its acknowledgement is in the hub's log.
    revocation = summary["revocation"]
    assert revocation["stream_end_reason"] == "revoked"
    assert revocation["acknowledged"] is True and revocation["ack_streams_ended"] == 1
    assert any(a["camera"] == "cam-carol" and a["edge"] == "site2" for a in summary["edge_acks"])

    # The hub's audit trail verifies on its own, with the hub's key.
    export = (out / "audit.jsonl").read_text().splitlines()
    records, verdict = verify_export(export, bytes.fromhex(summary["hub_public_key"]))
    assert verdict.ok and summary["audit_ok"]
    kinds = [r.kind for r in records]
    assert kinds.count("grant.issued") == 4  # alice, carol, dave, and carol's watched stream
    assert "consent.revoked" in kinds and "edge.ack" in kinds
    assert "access.start" not in kinds  # media flowed at the edges, which record it

    # Each edge's own slice: chained, one start and one end per stream it served.
    ends: dict[str, list[str]] = {}
    for edge_id in ("site1", "site2"):
        assert summary["edge_audits"][edge_id]["ok"] is True
        text = (out / f"edge-{edge_id}-audit.jsonl").read_text().splitlines()
        slice_ = [AuditRecord(**json.loads(line)) for line in text]
        assert verify_records(slice_).ok
        starts = [r for r in slice_ if r.kind == "access.start"]
        assert len(starts) == len([r for r in slice_ if r.kind == "access.end"]) >= 1
        for r in slice_:
            if r.kind == "access.end":
                ends.setdefault(r.body["camera"], []).append(r.body["reason"])
    assert ends["cam-carol"] == ["revoked"]
    assert "cam-bob" not in ends

    # The media that came through the edges decodes.
    for camera in ("cam-alice", "cam-dave"):
        width, height = decode_jpeg((out / f"{camera}-still.jpg").read_bytes())
        assert width > 0 and height > 0
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
             str(out / f"{camera}-clip.mp4")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert float(probe.stdout) >= 2.5


def test_distributed_demo_interrupted_leaves_nothing(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "demo", "--distributed", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    children: set[int] = set()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "edge site2 serving" in line:  # everything is up
                children = _descendants(proc.pid)
                proc.send_signal(signal.SIGINT)  # Ctrl-C
                break
        lines.extend(proc.stdout)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines)
    assert children, output
    assert proc.returncode == 130, output
    assert "interrupted; everything it started was stopped and removed" in output
    assert "Traceback" not in output
    assert _leftovers(proc, output, children) == [], output
