"""Exports on disk (issue #12, items 6, 8, 12, 13): a full disk, a crash mid-export, file modes
and names built from ids — against the real `camgate` command, the GStreamer RTSP server and a
real full filesystem (a small tmpfs, mounted here; we run as root).

Attackers: bad luck (a full disk, a killed process) must not leave footage that looks exported
or that retention does not know about; a co-tenant on the host must not read footage; a
hostile or careless id must not place a file outside the folder the officer chose.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from camgate.testing import run_cli
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

FORMATS = ("mp4", "fmp4", "ts", "hls")


@pytest.fixture(scope="module")
def rtsp_server() -> Iterator[RtspTestServer]:
    """A real GStreamer RTSP server on loopback (1 Mbit/s H.264, a keyframe a second)."""
    with serving([Mount("/cam1", gop_frames=30)]) as server:
        yield server


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``camgate ARGS`` as a real process, not checked (``env`` added to a clean environment)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "camgate.cli", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=120,
    )


class World:
    """A gate (SQLite file) with one camera on the RTSP server, enrolled, and an incident."""

    def __init__(self, tmp: Path, server: RtspTestServer, camera: str = "door") -> None:
        self.db = ["--db", str(tmp / "g.db")]
        (tmp / "waiver.txt").write_text("I agree.\n")
        run_cli(*self.db, "owner", "add", "--id", "alice", "--name", "Alice")
        run_cli(*self.db, "waiver", "publish", "--version", "v1", "--file", str(tmp / "waiver.txt"))
        self.added = run_cli(
            *self.db, "camera", "add", "--id", camera, "--owner", "alice", "--adapter", "rtsp",
            "--source", server.url("/cam1"), "--lat", "32.3", "--lon", "-90.18", check=False,
        )  # fmt: skip
        self.camera = camera
        if self.added.returncode != 0:
            return
        run_cli(
            *self.db, "enrol", "--owner", "alice", "--camera", camera, "--waiver", "v1",
            "--allow", "live,snapshot",
        )  # fmt: skip
        self.incident = json.loads(
            run_cli(
                *self.db, "incident", "report", "--kind", "robbery", "--lat", "32.3005",
                "--lon", "-90.18", "--radius", "200",
            ).stdout
        )["id"]  # fmt: skip

    def request(self, *args: str) -> list[str]:
        """The argv of a ``camgate request`` for this camera."""
        return [
            *self.db, "request", "--incident", self.incident, "--camera", self.camera,
            "--by", "o7", *args,
        ]  # fmt: skip

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The audit records of ``kind``, from ``camgate audit export``."""
        lines = run_cli(*self.db, "audit", "export").stdout.splitlines()
        found = [json.loads(line) for line in lines]
        return [r for r in found if r.get("type") == "record" and r["kind"] == kind]

    def artifacts(self) -> list[dict[str, Any]]:
        """``camgate retention list``."""
        listed: list[dict[str, Any]] = json.loads(run_cli(*self.db, "retention", "list").stdout)
        return listed

    def copy(self, tmp: Path) -> World:
        """The same gate in another folder (its database files, key and audit seal copied):
        set up once. A copy without ``g.seal`` is a gate whose seal was deleted, which every
        read-only audit command rightly reports ``unpinned``."""
        folder = Path(self.db[1]).parent
        for part in [*folder.glob("g.db*"), folder / "g.key", folder / "g.seal"]:
            shutil.copy2(part, tmp / part.name)
        twin = copy.copy(self)
        twin.db = ["--db", str(tmp / "g.db")]
        return twin


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, rtsp_server: RtspTestServer) -> World:
    return World(tmp_path_factory.mktemp("template"), rtsp_server)


@pytest.fixture
def world(template: World, tmp_path: Path) -> World:
    return template.copy(tmp_path)


def _files(folder: Path) -> list[Path]:
    """Every file and folder under ``folder``."""
    return sorted(folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------------- a full disk (item 6)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs), unmounted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="camgate-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); see the RLIMIT test")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()


def _fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_fails_the_clip_clearly_and_leaves_nothing(
    world: World, small_disk: Path, fmt: str
) -> None:
    out = small_disk / "out"
    done = cli(*world.request("--scope", "live", "--duration", "4", "--format", fmt,
                              "--out", str(out)))  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no space left" in done.stderr.lower()
    assert str(out / ".door-") in done.stderr and "Traceback" not in done.stderr
    assert _files(out) == []  # nothing at the final name, nothing partial
    assert world.records("clip.exported") == []
    (failed,) = world.records("clip.failed")
    assert failed["body"]["exported"] is False and failed["body"]["format"] == fmt
    assert "no space left" in failed["body"]["error"]
    assert failed["body"]["path"].startswith(str(out))
    arts = world.artifacts()
    assert arts and all(a["state"] == "deleted" for a in arts)
    (deleted,) = world.records("retention.deleted")
    assert deleted["body"]["reason"] == failed["body"]["error"]


def test_a_full_disk_fails_the_snapshot_clearly_and_leaves_nothing(
    world: World, small_disk: Path
) -> None:
    out = small_disk / "out"
    out.mkdir()
    _fill(small_disk)
    done = cli(*world.request("--scope", "snapshot", "--out", str(out)))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no space left" in done.stderr.lower() and ".jpg" in done.stderr
    assert "Traceback" not in done.stderr
    assert _files(out) == []
    assert all(a["state"] == "deleted" for a in world.artifacts())


def test_a_file_size_limit_fails_the_clip_clearly(world: World, tmp_path: Path) -> None:
    """The same through RLIMIT_FSIZE (no mount needed): the writer gets EFBIG, not a signal.
    The limit is above the gate's database (twice its largest file, WAL included), below
    12 s of 1 Mbit/s video."""
    out = tmp_path / "out"
    db = max(p.stat().st_size for p in tmp_path.glob("g.db*"))
    size = max(256 * 1024, 2 * db)
    assert size < 1024 * 1024

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    base = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "camgate.cli",
         *world.request("--scope", "live", "--duration", "12", "--format", "ts",
                        "--out", str(out))],
        capture_output=True, text=True, env=base, timeout=120, preexec_fn=limit,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "file too large" in done.stderr and "Traceback" not in done.stderr
    assert _files(out) == []
    assert world.records("clip.exported") == []


# ---------------------------------------------------------------------- a crash (item 8)


def _clip_child(
    world: World, fmt: str, out: Path, seconds: int, output: int
) -> subprocess.Popen[bytes]:
    """A ``camgate request`` recording a live clip into ``out``, started, not waited for."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    argv = world.request(
        "--scope", "live", "--duration", str(seconds), "--format", fmt, "--out", str(out)
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "camgate.cli", *argv], env=base, stdout=output, stderr=output
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_sigkill_mid_export_leaves_nothing_retention_does_not_remove(
    world: World, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "out"
    child = _clip_child(world, fmt, out, 60, subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(p.is_file() and p.stat().st_size > 0 for p in _files(out)):
            assert child.poll() is None, "the export ended before it could be killed"
            assert time.monotonic() < deadline, "no byte written within 60 s"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = _files(out)
    assert left, "the crash left nothing: the test did not kill mid-export"
    assert all(p.relative_to(out).parts[0].startswith(".") for p in left), left  # no final name
    assert world.records("clip.exported") == []

    run = json.loads(run_cli(*world.db, "retention", "run", "--json").stdout)
    assert _files(out) == []  # every byte the crash left is gone
    (gone,) = run["deleted"]
    assert gone["reason"] == "incomplete" and gone["found"] == "present"
    assert [r["body"]["reason"] for r in world.records("retention.deleted")] == ["incomplete"]
    assert "verified" in run_cli(*world.db, "audit", "verify").stdout


# ---------------------------------------------------------------------- modes (item 12)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("fmt", FORMATS)
def test_clips_snapshots_and_folders_are_private(world: World, tmp_path: Path, fmt: str) -> None:
    chosen = tmp_path / "chosen"
    chosen.mkdir(mode=0o755)
    chosen.chmod(0o755)
    out = chosen / "new" / "deeper"
    with _umask(0):  # the most permissive umask: modes must not depend on it
        clip = cli(*world.request("--scope", "live", "--duration", "1", "--format", fmt,
                                  "--out", str(out)))  # fmt: skip
        snap = cli(*world.request("--scope", "snapshot", "--out", str(out)))
    assert clip.returncode == 0 and snap.returncode == 0, clip.stderr + snap.stderr
    written = [Path(json.loads(clip.stdout)["file"]), Path(json.loads(snap.stdout)["file"])]
    files = [p for p in _files(chosen) if p.is_file()]
    assert len(files) >= 2 and set(written) <= set(_files(chosen))
    assert {oct(_mode(p)) for p in files} == {"0o600"}
    assert _mode(out) == _mode(out.parent) == 0o700  # folders camgate made
    if fmt == "hls":
        assert _mode(written[0]) == 0o700
    assert _mode(chosen) == 0o755  # the user's own folder is left as it was


def test_an_agency_can_choose_the_mode(world: World, tmp_path: Path) -> None:
    out = tmp_path / "shared" / "hls"
    env = {"CAMGATE_FILE_MODE": "0640"}
    with _umask(0o077):  # stricter than asked: the setting still wins
        done = cli(*world.request("--scope", "live", "--duration", "1", "--format", "hls",
                                  "--out", str(out)), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = Path(json.loads(done.stdout)["file"])
    assert {_mode(p) for p in folder.iterdir()} == {0o640}
    assert _mode(folder) == _mode(out) == 0o750
    bad = cli(*world.request("--scope", "snapshot", "--out", str(out)),
              env={"CAMGATE_FILE_MODE": "0777"})  # fmt: skip
    assert bad.returncode == 1 and "CAMGATE_FILE_MODE" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_reports_are_private(world: World, tmp_path: Path) -> None:
    out = tmp_path / "report"
    with _umask(0):
        run_cli(*world.db, "report", "--period", time.strftime("%Y"), "--out", str(out))
    assert {_mode(p) for p in out.iterdir()} == {0o600}
    assert _mode(out) == 0o700


# ---------------------------------------------------------------------- names (item 13)


@pytest.mark.parametrize("camera", ["../../escaped", "{tmp}/abs-escaped", "a/../../b"])
def test_an_id_cannot_place_a_file_outside_out(
    tmp_path: Path, rtsp_server: RtspTestServer, camera: str
) -> None:
    camera = camera.format(tmp=tmp_path)  # an absolute id
    work = tmp_path / "W"
    (work / "out").mkdir(parents=True)
    world = World(tmp_path, rtsp_server, camera=camera)
    if world.added.returncode != 0:  # the model refuses such an id: nothing to write at all
        assert "camgate:" in world.added.stderr and "Traceback" not in world.added.stderr
        return
    before = set(_files(tmp_path))
    done = cli(*world.request("--scope", "snapshot", "--out", str(work / "out")))
    assert done.returncode == 0, done.stderr
    path = Path(json.loads(done.stdout)["file"])
    assert path.parent == work / "out" and path.is_file()
    new = set(_files(tmp_path)) - before
    assert {p for p in new if p.is_file() and not p.name.startswith("g.db")} == {path}


# ---------------------------------------------------------------------- a co-tenant swaps (F5)


DECOY = b"co-tenant decoy\n"


def _swap_mid_export(out: Path, cotenant: Path, child: subprocess.Popen[bytes]) -> Path:
    """Play the co-tenant who can write ``out``: once camgate's partial export holds bytes,
    rename it away (to ``out/.stash``) and put a symlink to a folder (or file) of their own in
    its place, holding a decoy. Returns the partial's name."""
    deadline = time.monotonic() + 60
    while True:
        assert child.poll() is None, "the export ended before the swap"
        assert time.monotonic() < deadline, "no byte written within 60 s"
        partials = [p for p in _files(out) if p.name.endswith(".partial")]
        if partials:
            partial = partials[0]
            files = list(partial.iterdir()) if partial.is_dir() else [partial]
            if any(p.stat().st_size > 0 for p in files):
                break
        time.sleep(0.02)
    os.rename(partial, out / ".stash")
    if files[0] is partial:
        (cotenant / "decoy.ts").write_bytes(DECOY)
        os.symlink(cotenant / "decoy.ts", partial)
    else:
        (cotenant / "segment00000.ts").write_bytes(DECOY)
        os.symlink(cotenant, partial)
    return partial


@pytest.mark.parametrize("fmt", ["hls", "ts"])
def test_a_swapped_partial_fails_the_export_and_leaves_no_footage(
    world: World, tmp_path: Path, fmt: str
) -> None:
    """F5: the partial output renamed away and replaced by a symlink mid-export. camgate keeps
    writing into its own file or folder (through the descriptor it opened), sees before the
    rename that the partial name is no longer it, fails clearly, and removes what it wrote;
    nothing is registered with the co-tenant's hash, and after ``retention run`` none of
    camgate's bytes survive anywhere."""
    out, cotenant = tmp_path / "out", tmp_path / "cotenant"
    out.mkdir()
    cotenant.mkdir()
    child = _clip_child(world, fmt, out, 5, subprocess.PIPE)
    try:
        partial = _swap_mid_export(out, cotenant, child)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = (stdout + stderr).decode()
    assert child.returncode == 1, text
    assert "was replaced" in text and str(partial) in text and "Traceback" not in text
    assert world.records("clip.exported") == []
    (failed,) = world.records("clip.failed")
    assert "was replaced" in failed["body"]["error"]
    assert not any(p.name.startswith("door-") for p in out.iterdir())  # no final name
    assert all(a["state"] == "deleted" for a in world.artifacts())

    run_cli(*world.db, "retention", "run", "--json")
    left = {p: p.read_bytes() for p in [*_files(out), *_files(cotenant)] if p.is_file()}
    assert all(data in (b"", DECOY) for data in left.values()), sorted(left)
    assert not any(p.is_symlink() for p in _files(out) if not p.name.endswith(".partial"))
    assert "verified" in run_cli(*world.db, "audit", "verify").stdout


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_an_output_folder_others_can_write_is_refused(
    world: World, tmp_path: Path, mode: int
) -> None:
    """F5: in a folder others can write (no sticky bit) a co-tenant could move finished footage
    out of retention's reach: camgate refuses it, clearly, before the first byte."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    done = cli(*world.request("--scope", "snapshot", "--out", str(shared / "out")))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{shared} can be written by others" in done.stderr and "sticky" in done.stderr
    assert "Traceback" not in done.stderr
    assert _files(shared / "out") == []

    shared.chmod(mode | 0o1000)  # sticky, like /tmp: only the owner may rename an entry
    done = cli(*world.request("--scope", "snapshot", "--out", str(shared / "out")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.suffix for p in _files(shared / "out")] == [".jpg"]


def test_retention_never_follows_a_symlink_at_the_final_name(tmp_path: Path) -> None:
    """F5: a clip's final name replaced by a symlink to someone's file: retention removes the
    symlink (and camgate's own bytes under the partial name) and never deletes or hashes what
    the symlink points to."""
    from datetime import UTC, datetime, timedelta

    import anyio
    from camgate import Camera, Gate, GeoPoint, Owner
    from camgate.retention import Export

    gate = Gate.open(tmp_path / "g.db")
    try:
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera("cam-a", "rtsp", "rtsp://127.0.0.1:9/a", "alice", GeoPoint(32.3, -90.18))
        )
        out, other = tmp_path / "out", tmp_path / "theirs.ts"
        other.write_bytes(DECOY)
        export = Export(gate.retention, out / "clip.ts", "clip", camera_id="cam-a")
        export.write(b"FOOTAGE " * 1000)
        art = export.commit()
        assert art is not None and art.size == 8000
        (out / "clip.ts").unlink()
        (out / "clip.ts").symlink_to(other)
        run = gate.retention.run(now=datetime.now(UTC) + timedelta(days=3650))
        (gone,) = run.deleted
        assert gone["found"] == "present" and "sha256_found" not in gone
        assert not (out / "clip.ts").is_symlink() and _files(out) == []
        assert other.read_bytes() == DECOY
    finally:
        anyio.run(gate.aclose)
