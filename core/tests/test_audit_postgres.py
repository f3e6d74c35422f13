"""The PostgreSQL audit store's own promises, against a real server: selection by DSN (API, CLI,
environment), the DSN's password kept out of reprs, errors and logs, and clear errors for bad
input. (The log's behaviour itself is tested on both stores in test_audit*.py.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest
from camgate.audit import AUDIT_DSN_ENV, AuditLog
from camgate.audit.postgres import PostgresAuditBackend, redact_dsn
from camgate.cli import main
from camgate.errors import AuditError
from camgate.grants import GrantSigner
from camgate.store import Store

SECRET = "s3cr3t-Pa55w0rd"


def with_password(dsn: str) -> str:
    return dsn.replace("postgres@", f"postgres:{SECRET}@")  # trust auth ignores it; libpq sends


@pytest.fixture
def dsn(postgres: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(AUDIT_DSN_ENV, raising=False)
    return str(postgres.create_database())


def test_a_dsn_puts_the_log_in_postgresql_not_in_the_store(tmp_path: Path, dsn: str) -> None:
    store = Store(tmp_path / "s.db")
    log = AuditLog(store, dsn=dsn)
    assert isinstance(log.backend, PostgresAuditBackend)
    log.append("event", {"owner": "alice"})
    log.append("event", {"owner": "alice"})
    assert log.checkpoint() is not None
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (2,)
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "audit" not in tables or store.query("SELECT count(*) FROM audit") == [(0,)]
    assert log.verify().ok
    log.close()


def test_cli_audit_dsn_flag_and_environment_select_postgresql(
    tmp_path: Path, dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "c.db")
    log = AuditLog(Store(db), dsn=dsn)
    for i in range(5):
        log.append("event", {"n": i, "owner": "bob"})
    log.close()
    assert main(["--db", db, "--audit-dsn", dsn, "audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 5
    # No DSN: the store's own log, which is empty: never OK (nothing proves it was never longer).
    assert main(["--db", db, "audit", "verify", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 0 and out["status"] == "empty"
    monkeypatch.setenv(AUDIT_DSN_ENV, dsn)
    assert main(["--db", db, "audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 5


def test_the_password_never_shows(
    tmp_path: Path, dsn: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_dsn = with_password(dsn)
    signer = GrantSigner.generate()
    log = AuditLog(dsn=secret_dsn, signer=signer)
    log.append("event", {"owner": "alice"})
    assert SECRET not in repr(log.backend) and "alice" not in repr(log.backend)
    assert repr(log.backend).startswith("PostgresAuditBackend('postgresql://postgres@127.0.0.1:")
    # A store failure after opening: the table is gone.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit RENAME TO audit_moved")
    with pytest.raises(AuditError) as failed:
        log.append("event", {"owner": "alice"})
    assert "could not be written" in str(failed.value) and "audit" in str(failed.value)
    # Failures to connect: wrong port, missing database.
    port = secret_dsn.rsplit(":", 1)[1].split("/")[0]
    errors = [failed.value]
    for bad in (secret_dsn.replace(f":{port}/", ":1/"), secret_dsn.rsplit("/", 1)[0] + "/nope"):
        with pytest.raises(AuditError) as refused:
            AuditLog(dsn=bad, signer=signer)
        assert "cannot open the audit log in postgresql://postgres@127.0.0.1:" in str(refused.value)
        errors.append(refused.value)
    # The CLI prints the error; nothing of it carries the password.
    assert main(["--db", str(tmp_path / "x.db"), "--audit-dsn", bad, "audit", "verify"]) == 1
    printed = capsys.readouterr()
    assert "cannot open the audit log" in printed.err
    for err in errors:
        chain, cause = [], err
        while cause is not None:
            chain.append(f"{cause!s} {cause!r}")
            cause = cause.__cause__ or cause.__context__
        assert SECRET not in " ".join(chain)
    assert SECRET not in printed.out + printed.err + caplog.text


def test_bad_dsns_get_a_clear_error_that_does_not_echo_them() -> None:
    assert redact_dsn(f"postgresql://u:{SECRET}@h:5/db?sslmode=disable") == "postgresql://u@h:5/db"
    assert redact_dsn(f"host=h dbname=db password={SECRET}") == "postgresql://h/db"
    garbled = f"host=h password='{SECRET}"  # unterminated quote
    assert SECRET not in redact_dsn(garbled)
    with pytest.raises(AuditError) as failed:
        PostgresAuditBackend(garbled)
    assert SECRET not in str(failed.value) and "cannot open the audit log" in str(failed.value)


def test_two_logs_in_one_database_share_one_chain(dsn: str) -> None:
    signer = GrantSigner.generate()
    first = AuditLog(dsn=dsn, signer=signer)
    second = AuditLog(dsn=dsn, signer=signer)
    assert first.backend.log_id == second.backend.log_id
    a = first.append("event", {"owner": "alice"})
    b = second.append("event", {"owner": "alice"})
    assert (a.seq, b.seq) == (1, 2) and b.prev == a.hash and b.owners == {"alice": a.hash}
    first.close()
    second.close()


def test_a_hub_with_another_key_is_refused(dsn: str) -> None:
    first = AuditLog(dsn=dsn, signer=GrantSigner.generate())
    first.append("event", {"owner": "alice"})
    with pytest.raises(AuditError, match="must share the hub's key"):
        AuditLog(dsn=dsn, signer=GrantSigner.generate())
    reader = PostgresAuditBackend(dsn)  # no key: reading and verifying are fine
    assert AuditLog(backend=reader).verify(public_key=first.public_key).ok
    first.close()


def test_the_newest_installed_server_is_found_and_a_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from camgate.testing import pgserver

    monkeypatch.setattr(pgserver, "PG_ROOT", tmp_path / "postgresql")
    assert pgserver.find_postgres_bin() is None
    reason = pgserver.postgres_available()
    assert reason is not None and "scripts/setup.sh" in reason
    for version, tools in (("9", ("initdb", "pg_ctl")), ("13", ("initdb", "pg_ctl")), ("16", ())):
        binary = tmp_path / "postgresql" / version / "bin"
        binary.mkdir(parents=True)
        for tool in tools:
            (binary / tool).write_text("")
    assert pgserver.find_postgres_bin() == tmp_path / "postgresql" / "13" / "bin"  # 16 is empty
