"""Fuzz targets of the audit area (hypothesis, bounded): PostgreSQL DSNs and audit exports.

- DSNs: random passwords in random DSN shapes (URL userinfo, ``?password=``, key=value quoted
  and not) reach camgate's PostgreSQL store; whatever fails, the error text (and its cause and
  context, which loggers walk) holds no 4-character run of the password as written or decoded.
- Exports: a real export, mutated (lines dropped, duplicated, swapped, fields rewritten, bytes
  flipped or cut), goes through the export verifier (``camgate.report.verify_export``, which
  ``camgate report --export`` uses): only a camgate error or a verdict comes out, never another
  exception, and a verdict of OK only for content the hub signed (a prefix of the original).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from camgate.audit import AuditLog, AuditRecord
from camgate.audit.postgres import PostgresAuditBackend, redact_dsn
from camgate.errors import AuditError, CamgateError
from camgate.report import verify_export
from camgate.store import Store
from camgate.testing import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------------- DSN passwords

# Characters camgate's and libpq's own words never contain (non-ASCII letters and a few
# punctuation marks): a 4-character window of the password holding one of them that shows up
# in an error can only have come from the password. Everything else in the DSN is lowercase
# ASCII, so the property is sound.
MARKERS = "ΩЖλßø%\\&#?"
PASSWORD_CHARS = MARKERS + "QXZ'\"=@/: +"


def _windows(text: str) -> set[str]:
    return {
        text[i : i + 4] for i in range(len(text) - 3) if any(c in MARKERS for c in text[i : i + 4])
    }


def _shape(kind: int, password: str) -> str:
    host, port = "127.0.0.1", 1  # nothing listens on port 1: refused at once
    return [
        f"postgresql://camgate:{password}@{host}:{port}/audit",
        f"postgres://camgate:{password}@{host}:{port}/audit?sslmode=disable",
        f"postgresql://camgate@{host}:{port}/audit?password={password}",
        f"postgresql://{host}:{port}/audit?user=camgate&password={password}&application_name=x",
        f"host={host} port={port} user=camgate password={password} dbname=audit",
        f"host={host} port={port} password='{password}' dbname=audit",
        f"password = {password} host={host} port={port}",
        f"postgresql://camgate:{urllib.parse.quote(password)}@{host}:{port}/audit",
    ][kind]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    password=st.text(alphabet=PASSWORD_CHARS, min_size=4, max_size=24),
    kind=st.integers(0, 7),
)
def test_no_part_of_a_dsn_password_reaches_an_error(password: str, kind: int) -> None:
    dsn = _shape(kind, password)
    secret = _windows(password) | _windows(urllib.parse.unquote(password))
    try:
        backend = PostgresAuditBackend(dsn)
    except AuditError as exc:
        text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    else:  # pragma: no cover - nothing listens on port 1
        backend.close()
        pytest.fail("connected to port 1?")
    text += " " + redact_dsn(dsn)
    leaked = [w for w in secret if w in text]
    assert not leaked, (dsn, text, leaked)


# ---------------------------------------------------------------------- audit exports


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    path = tmp_path_factory.mktemp("fuzz") / "a.db"
    log = AuditLog(Store(path), checkpoint_every=4, dsn=None)
    for i in range(14):
        log.append("event", {"n": i, "owner": ["alice", "bob"][i % 2], "text": "ü ✓"})
    log.checkpoint()
    assert log.public_key is not None
    lines = list(log.export_jsonl())
    log.close()
    return lines, log.public_key.hex()


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=70),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, lines: list[str]) -> list[str]:
    out = list(lines)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "field", "payload", "bytes", "cut"]))
        i = draw(st.integers(0, len(out) - 1)) if out else 0
        if not out:
            break
        if op == "drop":
            del out[i]
        elif op == "dup":
            out.insert(i, out[i])
        elif op == "swap":
            j = draw(st.integers(0, len(out) - 1))
            out[i], out[j] = out[j], out[i]
        elif op in ("field", "payload"):
            try:
                item = json.loads(out[i])
            except ValueError:
                continue
            target = item.get("payload", item) if op == "payload" else item
            if isinstance(target, dict) and target:
                key = draw(st.sampled_from(sorted(target)))
                target[key] = draw(_VALUES)
            out[i] = json.dumps(item)
        elif op == "bytes":
            raw = out[i].encode("utf-8", "surrogateescape")
            at = draw(st.integers(0, max(0, len(raw) - 1)))
            junk = draw(st.binary(min_size=1, max_size=4))
            out[i] = (raw[:at] + junk + raw[at + 1 :]).decode("utf-8", "surrogateescape")
        else:
            out = out[: i + 1]
            out[-1] = out[-1][: draw(st.integers(0, len(out[-1])))]
    return out


def _records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines if '"type": "record"' in x]


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_export_gives_a_camgate_error_or_a_true_verdict(
    original: tuple[list[str], str], data: st.DataObject
) -> None:
    lines, key = original
    bad = data.draw(mutated(lines))
    try:
        records, result = verify_export(bad, bytes.fromhex(key))
    except CamgateError:
        return
    if not result.ok:
        assert result.status in {"broken", "truncated", "key", "empty", "unsigned"}
        return
    # OK: every record is the hub's own, in order, from the start (an export cut short
    # verifies up to what it holds: keep a checkpoint to compare, docs/audit.md).
    want = [AuditRecord(**{k: v for k, v in r.items() if k != "type"}) for r in _records(lines)]
    assert records == want[: len(records)], "a changed export verified"


def test_mutated_exports_through_the_cli_are_errors_not_tracebacks(
    original: tuple[list[str], str], tmp_path: Path
) -> None:
    lines, key = original
    cases = {
        "not utf-8": b"\xff\xfe" + "\n".join(lines).encode(),
        "a checkpoint without payload": "\n".join([*lines[:3], '{"type": "checkpoint"}']).encode(),
        "nested": ("[" * 100_000 + "]" * 100_000).encode(),
        "no checkpoint": "\n".join(x for x in lines if "checkpoint" not in x).encode(),
        "seq as text": "\n".join(lines).replace('"seq": 3,', '"seq": "3",').encode(),
    }
    for name, content in cases.items():
        path = tmp_path / "bad.jsonl"
        path.write_bytes(content)
        done = run_cli(
            "report", "--period", "2026", "--out", str(tmp_path / "r"),
            "--export", str(path), "--key", key, check=False,
        )  # fmt: skip
        assert done.returncode == 1, (name, done.stdout)
        assert "Traceback" not in done.stderr and done.stderr.startswith("camgate: "), (
            name,
            done.stderr,
        )


# ---------------------------------------------------------------------- witnesses (F2)


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLog, list[str]]:
    """A read-only log and what an owner could hold of it: its export's checkpoint lines."""
    path = tmp_path_factory.mktemp("witness") / "a.db"
    log = AuditLog(Store(path), checkpoint_every=4)
    for i in range(10):
        log.append("event", {"n": i, "owner": "alice"})
    lines = list(log.export_jsonl())
    log.close()
    return AuditLog(Store(path, read_only=True), read_only=True), lines


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_witness_is_a_camgate_error_or_a_true_verdict(
    witnessed: tuple[AuditLog, list[str]], data: st.DataObject
) -> None:
    """Whatever an owner's notice or printout holds (mutated lines, wrapped as a notice, a
    webhook body or a bare list), ``read_witnesses`` and verification against it give a
    camgate error or a verdict; ``verified`` only when every witness is the hub's own."""
    from camgate.audit.seal import read_witnesses

    log, lines = witnessed
    own = {json.dumps(json.loads(x), sort_keys=True) for x in lines if '"checkpoint"' in x}
    bad = data.draw(mutated([x for x in lines if '"checkpoint"' in x]))
    items = []
    for line in bad:
        try:
            items.append(json.loads(line))
        except ValueError:
            items.append(line)
    wrap = data.draw(st.sampled_from(["lines", "notice", "webhook", "list"]))
    text = {
        "lines": "\n".join(bad),
        "notice": json.dumps({"id": "ntc-1", "witness": items[0] if items else None}),
        "webhook": json.dumps({"notices": [{"witness": w} for w in items]}),
        "list": json.dumps(items),
    }[wrap]
    try:
        found = read_witnesses(text)
        result = log.verify(known=found, workers=1)
    except CamgateError:
        return
    if result.status == "verified":
        assert all(json.dumps(c.to_json(), sort_keys=True) in own for c in found)
    else:
        assert result.status in {"broken", "truncated", "key", "consistent"}, result


def test_witnesses_that_are_not_json_are_errors_not_tracebacks(
    witnessed: tuple[AuditLog, list[str]], tmp_path: Path
) -> None:
    """What ``verify --witness`` may be given by mistake: each is one camgate error line."""
    path = tmp_path / "w.json"
    cases = {
        "not utf-8": b"\xff\xfe{}",
        "nested": ("[" * 100_000 + "]" * 100_000).encode(),
        "nested lines": ("x\n" + "[" * 100_000).encode(),
        "seq as text": b'{"payload": {"seq": "3"}, "signature": "00"}',
        "empty": b"",
    }
    db = witnessed[0].key_path.with_suffix(".db")  # type: ignore[union-attr]
    for name, content in cases.items():
        path.write_bytes(content)
        done = run_cli("--db", str(db), "audit", "verify", "--witness", str(path), check=False)
        assert done.returncode == 1, (name, done.stdout)
        assert "Traceback" not in done.stderr and done.stderr.startswith("camgate: "), (
            name,
            done.stderr,
        )
