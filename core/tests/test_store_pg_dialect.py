"""The dialect layer, by property: the same writes through ``Store`` leave SQLite and
PostgreSQL in the same state, in the same order (``INSERT OR REPLACE`` moves a row to the end
on both; ``INSERT OR IGNORE`` keeps the first; conditional updates report the same counts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from camgate.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

IDS = st.sampled_from(["z1", "z2", "z3", "z4"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), IDS, st.integers(0, 9)),
        st.tuples(st.just("delete"), IDS, st.just(0)),
        st.tuples(st.just("ask"), IDS, st.integers(0, 2)),
        st.tuples(st.just("meta"), IDS, st.integers(0, 9)),
    ),
    max_size=25,
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, postgres: Any) -> Iterator[list[Store]]:
    home = tmp_path_factory.mktemp("dialect")
    pair = [Store(home / "s.db"), Store(postgres.create_database(), home=home)]
    yield pair
    for store in pair:
        store.close()


def _apply(store: Store, ops: list[tuple[str, str, int]]) -> list[Any]:
    with store.transaction() as db:
        for table in ("privacy_zones", "zone_asks", "meta"):
            db.execute(f"DELETE FROM {table}")  # our names
    said: list[Any] = []
    for op, key, n in ops:
        if op == "put":
            store.put_privacy_zone(key, {"id": key, "n": n})
        elif op == "delete":
            said.append(store.delete_privacy_zone(key))
        elif op == "ask":
            said.append(store.mark_zone_asked(key, f"cam{n}", "2026-01-01T00:00:00+00:00"))
        else:
            store.set_meta(key, str(n))
    return [
        said,
        store.privacy_zones(),
        store.query("SELECT zone_id, camera_id FROM zone_asks ORDER BY rowid"),
        store.query("SELECT key, value FROM meta ORDER BY rowid"),
    ]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_the_same_writes_leave_both_engines_alike(
    stores: list[Store], ops: list[tuple[str, str, int]]
) -> None:
    sqlite, postgres = stores
    assert _apply(sqlite, ops) == _apply(postgres, ops)
