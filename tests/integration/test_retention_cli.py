"""Retention from the command line on a real flow: a snapshot and a clip from a real RTSP server
are registered with their expiry; an evidence hold keeps them; `camgate retention run` deletes
them once released, each deletion audited; the log verifies."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from camgate.testing import run_cli as camgate
from camgate_rtsp.testing.server import RtspTestServer

#: The owner keeps footage 4 seconds (the agency's default 30 days is longer, so this wins).
KEEP_DAYS = 4 / 86400


def test_cli_retention_with_a_hold(tmp_path: Path, rtsp_server: RtspTestServer) -> None:
    db = ["--db", str(tmp_path / "g.db")]
    out = tmp_path / "out"
    (tmp_path / "waiver.txt").write_text("I agree.\n")
    camgate(*db, "owner", "add", "--id", "alice", "--name", "Alice")
    camgate(*db, "waiver", "publish", "--version", "v1", "--file", str(tmp_path / "waiver.txt"))
    camgate(
        *db, "camera", "add", "--id", "door", "--owner", "alice", "--adapter", "rtsp",
        "--source", rtsp_server.url("/cam1"), "--lat", "32.3", "--lon", "-90.18",
    )  # fmt: skip
    camgate(
        *db, "enrol", "--owner", "alice", "--camera", "door", "--waiver", "v1",
        "--allow", "live,snapshot", "--retention-days", str(KEEP_DAYS),
    )  # fmt: skip
    incident = json.loads(
        camgate(
            *db, "incident", "report", "--kind", "robbery", "--lat", "32.3005", "--lon", "-90.18",
            "--radius", "200",
        ).stdout
    )["id"]  # fmt: skip
    ask = [*db, "request", "--incident", incident, "--camera", "door", "--by", "o7"]
    snap = json.loads(camgate(*ask, "--scope", "snapshot", "--out", str(out)).stdout)
    clip = json.loads(camgate(*ask, "--scope", "live", "--duration", "2", "--out", str(out)).stdout)
    files = {Path(snap["file"]), Path(clip["file"])}

    listed = json.loads(camgate(*db, "retention", "list").stdout)
    assert {a["kind"] for a in listed} == {"snapshot", "clip"}
    for art in listed:
        assert Path(art["path"]) in files and art["incident"] == incident
        assert art["sha256"] == hashlib.sha256(Path(art["path"]).read_bytes()).hexdigest()

    camgate(*db, "hold", "add", incident, "--reason", "case 77", "--by", "det-3")
    assert "case 77" in camgate(*db, "hold", "list").stdout
    deadline = time.monotonic() + 20
    while True:  # wait until both have expired: then the hold is what keeps them
        run = json.loads(camgate(*db, "retention", "run", "--json").stdout)
        if len(run["held"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(run["held"]) == 2 and run["deleted"] == []
    assert all(f.exists() for f in files)

    camgate(*db, "hold", "release", incident, "--reason", "case closed")
    dry = json.loads(camgate(*db, "retention", "run", "--dry-run", "--json").stdout)
    assert {Path(d["path"]) for d in dry["deleted"]} == files and all(f.exists() for f in files)
    text = camgate(*db, "retention", "run").stdout
    assert "deleted 2" in text
    assert not any(f.exists() for f in files)

    records = [json.loads(line) for line in camgate(*db, "audit", "export").stdout.splitlines()]
    kinds = [r["kind"] for r in records if r["type"] == "record"]
    assert kinds.count("artifact.registered") == 2 and kinds.count("retention.deleted") == 2
    assert (
        kinds.index("hold.placed") < kinds.index("hold.released") < kinds.index("retention.deleted")
    )
    assert "verified" in camgate(*db, "audit", "verify").stdout
