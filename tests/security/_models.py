"""Helpers for the model attack tests: a real store file with an owner, a camera and an incident,
and the CLI run as a real process against it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.testing import run_cli

CENTRE = GeoPoint(32.2988, -90.1848)


def make_store(path: Path, *, scopes: tuple[str, ...] = ("snapshot",)) -> str:
    """A store at ``path`` with owner alice, camera a1 enrolled (pre-authorised) and an open
    incident; returns the incident's id."""
    gate = Gate.open(path)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(Camera("a1", "rtsp", "rtsp://127.0.0.1:9/a1", "alice", CENTRE))
        gate.enrol(
            "alice",
            ["a1"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=list(scopes)),
        )
        return gate.report_incident("shooting", CENTRE, 500.0).id
    finally:
        gate.store.close()


def cli(db: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``camgate --db DB ARGS`` as a real process (never raises on a non-zero exit)."""
    return run_cli("--db", str(db), *args, check=False, timeout=timeout)


def assert_clean_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """The command failed with camgate's one-line message (no traceback) naming ``words``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("camgate: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
