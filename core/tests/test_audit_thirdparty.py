"""The third-party procedure in docs/audit.md verifies an export with the standard library only
(an export from either store: SQLite, or a real PostgreSQL server)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from camgate.audit import AuditLog
from camgate.store import Store
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    code = next(b for b in blocks if b.startswith('"""verify_audit.py'))
    path = tmp_path / "verify_audit.py"
    path.write_text(code)
    return path


@pytest.fixture
def export(tmp_path: Path, audit_store: str) -> tuple[list[str], str]:
    log = AuditLog(Store(tmp_path / "a.db"), checkpoint_every=7)
    for i in range(30):
        log.append("event", {"n": i, "owner": ["alice", "bob"][i % 2], "text": "ü ✓"})
    log.checkpoint()
    assert log.public_key is not None
    return list(log.export_jsonl()), log.public_key.hex()


def run(script: Path, lines: list[str], key: str, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "export.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    # -I -S: isolated, no site-packages: nothing but the standard library is importable.
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(path), key],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_an_untouched_export_verifies(
    script: Path, export: tuple[list[str], str], tmp_path: Path
) -> None:
    code, out = run(script, *export, tmp_path)
    assert code == 0, out
    assert out.startswith("OK: 30 records")


def _edit(lines: list[str], seq: int, field: str, value: object) -> list[str]:
    out = []
    for line in lines:
        item = json.loads(line)
        if item.get("type") == "record" and item["seq"] == seq:
            item[field] = value
        out.append(json.dumps(item))
    return out


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "checkpoint", "other-key"])
def test_a_tampered_export_fails(
    script: Path, export: tuple[list[str], str], tmp_path: Path, tamper: str
) -> None:
    lines, key = export
    if tamper == "edit":
        lines = _edit(lines, 5, "body", {"n": 5})
    elif tamper == "delete":
        lines = [x for x in lines if '"seq": 9,' not in x or '"checkpoint"' in x]
    elif tamper == "reorder":
        lines[3], lines[4] = lines[4], lines[3]
    elif tamper == "checkpoint":
        i = next(i for i, x in enumerate(lines) if '"checkpoint"' in x)
        item = json.loads(lines[i])
        item["payload"]["at"] = "2000-01-01T00:00:00+00:00"
        lines[i] = json.dumps(item)
    else:
        key = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    code, out = run(script, lines, key, tmp_path)
    assert code == 1 and out.startswith("FAILED"), out


def test_the_pure_python_ed25519_agrees_with_cryptography(script: Path) -> None:
    namespace: dict[str, object] = {}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    verify = namespace["ed25519_verify"]
    assert callable(verify)
    for n in range(5):
        key = Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes_raw()
        message = f"camgate-audit-checkpoint-v1\n{n}".encode()
        sig = key.sign(message)
        assert verify(pub, message, sig)
        assert not verify(pub, message + b"x", sig)
        assert not verify(pub, message, sig[:-1] + bytes([sig[-1] ^ 1]))
