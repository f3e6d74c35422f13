"""#14 item 7 and #15 item 10: per-camera adapter settings, from the shell.

A camera carries its own adapter settings (``camgate camera add/set --setting key=value``),
validated by its adapter before anything is stored, the values of secret keys kept apart with
the credentials and never shown; ``camgate request --setting`` overrides them for one run only.
The edge merges adapter-wide < camera's < override and builds one adapter per distinct
camera-level settings, so two cameras of a vendor never share settings.

Real parts only: camgate's CLI as a process, GStreamer's RTSP server behind a TLS front (an
``rtsps`` camera with its own certificate), the ONVIF simulator reporting a port that is not the
reachable one (port forwarding), real SQLite files. Attackers: a careless embedder or operator
(a typo or a secret given as a setting must not be stored or shown), and a co-tenant reading the
store's plain columns or the command's output.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from camgate.errors import CameraProtocolError
from camgate.gate import Gate
from camgate.media import decode_jpeg
from camgate.models import Camera, ConsentTerms, GeoPoint, Owner, Waiver
from camgate.store import Store
from camgate.testing import run_cli
from camgate_onvif.testing.simulator import Quirks
from camgate_rtsp.testing.server import Mount, RtspTestServer

from tests.security._onvif import make_sim, rtsp_server
from tests.security._rtsp import TlsFront, gst_server, self_signed

__all__ = ["make_sim", "rtsp_server"]

HERE = ("32.3", "-90.18")
SECRET = "hunter2:pa ss/ü"  # a test credential that must never show


@pytest.fixture(scope="module")
def gst() -> Iterator[RtspTestServer]:
    """GStreamer's RTSP server with one camera path."""
    yield from gst_server(Mount("/cam1", gop_frames=15))


@pytest.fixture
def tls_camera(gst: RtspTestServer, tmp_path: Path) -> Iterator[tuple[TlsFront, str]]:
    """An ``rtsps`` camera with a self-signed certificate, and that certificate's file."""
    cert, key = self_signed(str(tmp_path))
    with TlsFront((gst.host, gst.port), cert, key) as front:
        yield front, cert


class Cli:
    """``camgate --db <file>`` with an owner, a waiver and an incident near HERE."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "g.db"
        self.out = tmp_path / "out"
        (tmp_path / "waiver.txt").write_text("I agree to share my camera with the RTCC.\n")
        self("owner", "add", "--id", "alice", "--name", "Alice")
        waiver = self.json(
            "waiver", "publish", "--version", "v1", "--file", f"{tmp_path}/waiver.txt"
        )
        self.waiver_sha = waiver["sha256"]
        incident = self.json(
            "incident", "report", "--kind", "robbery", "--lat", HERE[0], "--lon", HERE[1],
            "--radius", "200",
        )  # fmt: skip
        self.incident = incident["id"]

    def __call__(self, *args: str, check: bool = True) -> Any:
        return run_cli("--db", str(self.db), *args, check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def add(self, cam: str, adapter: str, source: str, *extra: str, check: bool = True) -> Any:
        """``camera add`` at HERE, then (when it worked) enrol it for live and snapshot."""
        added = self(
            "camera", "add", "--id", cam, "--owner", "alice", "--adapter", adapter,
            "--source", source, "--lat", HERE[0], "--lon", HERE[1], *extra, check=check,
        )  # fmt: skip
        if added.returncode == 0:
            self(
                "enrol", "--owner", "alice", "--camera", cam, "--waiver", "v1",
                "--waiver-sha256", self.waiver_sha, "--allow", "live,snapshot",
            )  # fmt: skip
        return added

    def request(self, cam: str, scope: str, *extra: str) -> Any:
        """``camgate request``; its process result (not checked)."""
        return self(
            "request", "--incident", self.incident, "--camera", cam, "--scope", scope,
            "--by", "officer-7", "--out", str(self.out), "--duration", "1", *extra, check=False,
        )  # fmt: skip


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_a_stored_ca_file_reaches_the_adapter_of_that_camera(
    tmp_path: Path, tls_camera: tuple[TlsFront, str]
) -> None:
    """The stored ``ca_file`` is what lets ``camgate request`` verify an rtsps camera's own
    certificate; a camera of the same adapter without it is refused on the certificate."""
    front, cert = tls_camera
    cli = Cli(tmp_path)
    added = json.loads(
        cli.add("door", "rtsp", front.url("/cam1"), "--setting", f"ca_file={cert}").stdout
    )
    assert added["settings"] == {"ca_file": cert} and added["secret"] == []
    cli.add("gate", "rtsp", front.url("/cam1"))
    got = cli.request("door", "snapshot")
    assert got.returncode == 0, got.stderr
    assert decode_jpeg(Path(json.loads(got.stdout)["file"]).read_bytes()) == (640, 360)
    refused = cli.request("gate", "snapshot")
    assert refused.returncode != 0 and "certificate" in refused.stderr
    shown = cli.json("camera", "show", "door")
    assert shown["settings"] == {"ca_file": cert} and shown["source"] == front.url("/cam1")


def test_request_setting_overrides_for_one_run_and_is_not_stored(
    tmp_path: Path, tls_camera: tuple[TlsFront, str]
) -> None:
    front, cert = tls_camera
    cli = Cli(tmp_path)
    cli.add("gate", "rtsp", front.url("/cam1"))
    got = cli.request("gate", "live", "--setting", f"ca_file={cert}", "--setting", "transport=tcp")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["duration_s"] > 0
    assert cli.json("camera", "show", "gate")["settings"] == {}
    assert _rows(cli.db, "SELECT * FROM camera_settings") == []
    # A bad override is refused before anything is asked: no request, no grant.
    bad = cli.request("gate", "snapshot", "--setting", "transport=carrier-pigeon")
    assert bad.returncode != 0 and "must be 'tcp' or 'udp'" in bad.stderr
    # one grant only: the override's run
    assert len(_rows(cli.db, "SELECT id FROM grants")) == 1


def test_onvif_camera_behind_port_forwarding_reached_with_a_stored_port_map(
    tmp_path: Path, make_sim: Any, rtsp_server: RtspTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device reports its stream on 8554 (its inner port); the router forwards the RTSP
    server's port. ``ports`` stored at ``camera add`` maps it, and a live clip is recorded."""
    sim = make_sim(quirks=Quirks(report_ports={"rtsp": 8554}))
    cli = Cli(tmp_path)
    monkeypatch.setenv("TEST_ONVIF_PASSWORD", sim.password)
    creds = ("--username", sim.username, "--password-env", "TEST_ONVIF_PASSWORD")
    ports = f'ports={{rtsp={{"8554"={rtsp_server.port}}}}}'
    cli.add("porch", "onvif", sim.sources[0], *creds, "--setting", ports)
    cli.add("unmapped", "onvif", sim.sources[0], *creds)
    got = cli.request("porch", "live")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["duration_s"] > 0
    refused = cli.request("unmapped", "live")
    assert refused.returncode != 0 and "ports.rtsp" in refused.stderr
    assert cli.json("camera", "show", "porch")["settings"] == {
        "ports": {"rtsp": {"8554": rtsp_server.port}}
    }
    everything = got.stdout + got.stderr + refused.stdout + refused.stderr
    assert sim.password not in everything


def test_an_invalid_setting_is_refused_at_camera_add_and_nothing_is_stored(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    source = "rtsp://127.0.0.1:8554/cam1"
    for setting, error in [
        ("transport=smoke", "rtsp setting transport='smoke': must be 'tcp' or 'udp'"),
        ("trasnport=udp", "rtsp settings: unknown keys ['trasnport']"),
        ("read_timeout_s=-1", "rtsp setting read_timeout_s"),
        ("ca_file=7", "rtsp setting ca_file: must be a path to a PEM file"),
    ]:
        refused = cli.add("door", "rtsp", source, "--setting", setting, check=False)
        assert refused.returncode != 0 and error in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    refused = cli.add("porch", "onvif", "http://127.0.0.1:1/onvif/device_service", "--setting",
                      "ports={rtsp={x=1}}", check=False)  # fmt: skip
    assert refused.returncode != 0 and "onvif setting ports.rtsp" in refused.stderr
    assert _rows(cli.db, "SELECT id FROM cameras") == []
    assert _rows(cli.db, "SELECT * FROM camera_settings") == []
    # set: a bad change leaves the stored settings as they were
    cli.add("door", "rtsp", source, "--setting", "transport=udp")
    bad = cli("camera", "set", "door", "--setting", "connect_timeout_s=0", check=False)
    assert bad.returncode != 0 and "connect_timeout_s" in bad.stderr
    assert cli.json("camera", "show", "door")["settings"] == {"transport": "udp"}
    changed = cli.json("camera", "set", "door", "--setting", "read_timeout_s=9", "--unset",
                       "transport")  # fmt: skip
    assert changed == {"settings": {"read_timeout_s": 9}, "secret": []}


def test_a_secret_setting_is_kept_with_the_credentials_and_never_shown(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    creds = f'credentials={{door={{username="officer",password="{SECRET}"}}}}'
    added = cli.add("door", "rtsp", "rtsp://127.0.0.1:8554/cam1", "--setting", creds,
                    "--setting", "transport=udp")  # fmt: skip
    shown = cli("camera", "show", "door")
    listed = cli("camera", "list")
    changed = cli("camera", "set", "door", "--setting", "read_timeout_s=3")
    outputs = [added, shown, listed, changed]
    for out in outputs:
        assert SECRET not in out.stdout + out.stderr and "hunter2" not in out.stdout
    assert json.loads(shown.stdout)["secret"] == ["credentials"]
    assert json.loads(shown.stdout)["settings"] == {"transport": "udp"}
    assert "hunter2" not in str(_rows(cli.db, "SELECT * FROM camera_settings"))
    assert "hunter2" not in str(_rows(cli.db, "SELECT * FROM cameras"))
    assert "hunter2" in str(_rows(cli.db, "SELECT * FROM edge_secret_settings"))  # kept, apart
    # a bad secret is refused without being repeated
    bad = cli("camera", "set", "door", "--setting", f'credentials={{door="{SECRET}"}}', check=False)
    assert bad.returncode != 0 and "needs a username and a password" in bad.stderr
    assert SECRET not in bad.stderr
    # The camera moves to another device: its secret settings go with its credentials.
    cli.add("door", "rtsp", "rtsp://127.0.0.1:8554/other")
    assert _rows(cli.db, "SELECT * FROM edge_secret_settings") == []
    assert cli.json("camera", "show", "door")["secret"] == []


def test_a_store_made_before_camera_settings_opens_and_takes_them(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:  # the file as an older camgate left it
        conn.execute("DROP TABLE camera_settings")
        conn.execute("DROP TABLE edge_secret_settings")
        conn.execute("DROP TABLE schema_version")  # made before versioned migrations, too
    run_cli("--db", str(db), "owner", "add", "--id", "alice", "--name", "Alice")
    run_cli(
        "--db", str(db), "camera", "add", "--id", "door", "--owner", "alice", "--adapter",
        "rtsp", "--source", "rtsp://127.0.0.1:8554/cam1", "--lat", "1", "--lon", "1",
        "--setting", "transport=udp",
    )  # fmt: skip
    shown = json.loads(run_cli("--db", str(db), "camera", "show", "door").stdout)
    assert shown["settings"] == {"transport": "udp"}


@pytest.mark.anyio
async def test_two_cameras_of_one_adapter_get_their_own_settings(
    tmp_path: Path, tls_camera: tuple[TlsFront, str]
) -> None:
    """In one gate (one edge, its adapters cached): the camera with the CA streams, the one
    without is refused on the certificate, whichever is opened first."""
    front, cert = tls_camera
    async with Gate.open(tmp_path / "g.db") as gate:
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        here = GeoPoint(32.3, -90.18)
        for cam, settings in [("plain", None), ("trusted", {"ca_file": cert})]:
            camera = Camera(cam, "rtsp", front.url("/cam1"), "alice", here)
            gate.add_camera(camera, settings=settings)
        gate.enrol(
            "alice", ["plain", "trusted"], waiver_version="w1", waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["snapshot"]),
        )  # fmt: skip
        incident = gate.report_incident("burglary", here, radius_m=300)
        for cam in ["plain", "trusted", "plain"]:
            signed = await gate.request_access(incident.id, cam, "snapshot", requested_by="o-7")
            if cam == "plain":
                with pytest.raises(CameraProtocolError, match="certificate"):
                    await gate.edge.snapshot(cam, signed)
            else:
                snap = await gate.edge.snapshot(cam, signed)
                assert decode_jpeg(snap.jpeg) == (640, 360)
