"""docs/api.md states the policy table the code enforces, and names every route."""

from __future__ import annotations

import re
from pathlib import Path

from camgate_server import resources_consent
from camgate_server.app import router
from camgate_server.policy import POLICY, Action, Role

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_documented_policy_table_is_the_code() -> None:
    text = API_MD.read_text()
    header = re.search(r"^\| action \| (.+) \|$", text, re.M)
    assert header is not None
    roles = [Role(r.strip()) for r in header[1].split("|")]
    documented: dict[Role, set[Action]] = {r: set() for r in roles}
    rows = re.findall(r"^\| `([a-z:]+)` \| (.+) \|$", text, re.M)
    assert {Action(a) for a, _ in rows} == set(Action)
    for action, cells in rows:
        for role, cell in zip(roles, cells.split("|"), strict=True):
            if cell.strip() == "yes":
                documented[role].add(Action(action))
    assert documented == {r: set(POLICY[r]) for r in Role}


def test_every_route_is_documented() -> None:
    text = API_MD.read_text()
    for route in [*router.routes, *resources_consent.router.routes]:
        path = getattr(route, "path", "")
        assert re.sub(r"\{[a-z_]+\}", "{id}", path) in re.sub(r"\{[a-z_]+\}", "{id}", text), path
