"""The main job (`camgate demo`) and the CLI, as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from camgate.media import decode_jpeg
from camgate_rtsp.testing.server import RtspTestServer

ENV = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}


def camgate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "camgate.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or ENV,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"camgate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def ffprobe(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration:stream=codec_name,nb_read_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_demo_does_what_the_issue_asks(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    run = camgate("demo", "--out", str(out))
    assert "audit chain" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["granted"] == ["cam-alice"]
    assert [d["camera"] for d in summary["denied"]] == ["cam-bob"]
    assert any("does not allow live access" in r for r in summary["denied"][0]["reasons"])
    assert summary["audit_ok"] is True
    files = [Path(f) for f in summary["files"]]
    assert all(f.exists() for f in files)
    jpeg = out / "cam-alice-snapshot.jpg"
    assert decode_jpeg(jpeg.read_bytes()) == (640, 360)
    info = ffprobe(out / "cam-alice-clip.mp4")
    assert abs(float(info["format"]["duration"]) - 5.0) <= 0.5  # type: ignore[index]
    assert int(info["streams"][0]["nb_read_frames"]) >= 140  # type: ignore[index]
    assert not list(out.glob("cam-bob*")), "nothing may be written for the refused camera"
    # the audit trail verifies from the CLI too, and a second run starts clean
    assert "verified" in camgate("--db", str(out / "camgate.db"), "audit", "verify").stdout
    camgate("demo", "--out", str(out))
    again = json.loads((out / "summary.json").read_text())
    assert again["audit_records"] == summary["audit_records"]


def test_demo_on_simulated_ring_cameras(tmp_path: Path) -> None:
    """``--vendor ring``: the same story on the Ring simulator (WHEP live from an aiortc peer,
    snapshots from the Partner API), Alice's files decodable, nothing from Bob."""
    out = tmp_path / "ring-out"
    run = camgate("demo", "--vendor", "ring", "--out", str(out))
    assert "ring simulator up: ava1.ring.device.SIM1" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["vendor"] == "ring"
    assert summary["granted"] == ["cam-alice"]
    assert [d["camera"] for d in summary["denied"]] == ["cam-bob"]
    assert summary["audit_ok"] is True
    assert decode_jpeg((out / "cam-alice-snapshot.jpg").read_bytes()) == (320, 240)
    info = ffprobe(out / "cam-alice-clip.mp4")
    assert abs(float(info["format"]["duration"]) - 5.0) <= 0.5  # type: ignore[index]
    assert int(info["streams"][0]["nb_read_frames"]) >= 60  # type: ignore[index]  # 15 fps
    assert not list(out.glob("cam-bob*"))


def test_demo_for_a_vendor_without_a_simulator_is_a_clear_error(tmp_path: Path) -> None:
    result = camgate("demo", "--vendor", "nosuch", "--out", str(tmp_path / "x"), check=False)
    assert result.returncode != 0
    assert "nosuch" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_flow_from_enrolment_to_revocation(tmp_path: Path, rtsp_server: RtspTestServer) -> None:
    db = ["--db", str(tmp_path / "g.db")]
    (tmp_path / "waiver.txt").write_text("I agree to share my camera with the RTCC.\n")
    env = ENV | {"CAM_PASSWORD": "pa:ss w@rd/ü"}
    camgate(*db, "owner", "add", "--id", "alice", "--name", "Alice")
    waiver = json.loads(
        camgate(
            *db, "waiver", "publish", "--version", "v1", "--file", str(tmp_path / "waiver.txt")
        ).stdout
    )
    camgate(
        *db,
        "camera",
        "add",
        "--id",
        "door",
        "--owner",
        "alice",
        "--adapter",
        "rtsp",
        "--source",
        rtsp_server.url("/secure"),
        "--lat",
        "32.3",
        "--lon",
        "-90.18",
        "--username",
        "officer",
        "--password-env",
        "CAM_PASSWORD",
        env=env,
    )
    camgate(
        *db,
        "enrol",
        "--owner",
        "alice",
        "--camera",
        "door",
        "--waiver",
        "v1",
        "--waiver-sha256",
        waiver["sha256"],
        "--allow",
        "live,snapshot",
    )
    incident = json.loads(
        camgate(
            *db,
            "incident",
            "report",
            "--kind",
            "robbery",
            "--lat",
            "32.3005",
            "--lon",
            "-90.18",
            "--radius",
            "200",
        ).stdout
    )
    got = json.loads(
        camgate(
            *db,
            "request",
            "--incident",
            incident["id"],
            "--camera",
            "door",
            "--scope",
            "snapshot",
            "--by",
            "officer-7",
            "--out",
            str(tmp_path),
        ).stdout
    )
    assert got["granted"] and decode_jpeg(Path(got["file"]).read_bytes()) == (640, 360)
    got = json.loads(
        camgate(
            *db,
            "request",
            "--incident",
            incident["id"],
            "--camera",
            "door",
            "--scope",
            "live",
            "--by",
            "officer-7",
            "--duration",
            "2",
            "--out",
            str(tmp_path),
        ).stdout
    )
    assert abs(float(ffprobe(Path(got["file"]))["format"]["duration"]) - 2) <= 0.5  # type: ignore[index]
    revoked = json.loads(camgate(*db, "consent", "revoke", "--owner", "alice").stdout)
    assert revoked == {"owner": "alice", "revoked": ["door"]}
    refused = camgate(
        *db,
        "request",
        "--incident",
        incident["id"],
        "--camera",
        "door",
        "--scope",
        "snapshot",
        "--by",
        "officer-7",
        check=False,
    )
    assert refused.returncode == 3
    assert "core.opt-in: the owner revoked consent" in refused.stderr
    export = camgate(*db, "audit", "export").stdout.splitlines()
    request_id = [json.loads(line) for line in export if '"decision"' in line][-1]
    explain = camgate(*db, "consent", "explain", request_id["body"]["request"]["id"]).stdout
    assert "refused" in explain and "core.opt-in" in explain
    everything = "\n".join([camgate(*db, "audit", "export").stdout, explain])
    assert "pa:ss" not in everything and "w@rd" not in everything


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "camera",
                "add",
                "--id",
                "c",
                "--owner",
                "nobody",
                "--adapter",
                "rtsp",
                "--source",
                "rtsp://h/x",
                "--lat",
                "0",
                "--lon",
                "0",
            ],
            "no owner 'nobody'",
        ),
        (
            ["incident", "report", "--kind", "k", "--lat", "91", "--lon", "0", "--radius", "5"],
            "lat=91.0",
        ),
        (
            ["incident", "report", "--kind", "k", "--lat", "1", "--lon", "0", "--radius", "-5"],
            "radius_m=-5.0",
        ),
        (
            ["enrol", "--owner", "x", "--camera", "c", "--waiver", "nope"],
            "no waiver version 'nope'",
        ),
        (["consent", "explain", "req_missing"], "no decision on request 'req_missing'"),
    ],
)
def test_cli_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = camgate("--db", str(tmp_path / "g.db"), *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
