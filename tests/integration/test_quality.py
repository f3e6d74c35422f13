"""Meta-tests of the adapters' quality declarations (camgate.quality, docs/adapters.md).

Each shipped adapter's ``quality.toml`` is held against the checklist (every rule named, none
unknown, no gating rule exempt), against the suite (every check a rule names exists, a rule is
gating exactly when certification needs its checks, every check belongs to a rule), against
what the adapter really ships (settings class, simulator, target, docs), and against the
suite's last report for the adapter when one is given (``CAMGATE_CONFORMANCE_REPORTS``, a
folder of ``<adapter>.json`` from ``camgate conformance ADAPTER --json``; the template's own
run is checked in test_template.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from camgate.plugins import PluginHost
from camgate.quality import (
    RULES,
    QualityDeclaration,
    RuleStatus,
    declaration_problems,
    load_quality,
    parse_quality,
    report_problems,
)
from camgate.testing import run_cli
from camgate_conformance.checks import CHECKS
from camgate_conformance.model import CERTIFYING_GROUPS

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "quality_table", ROOT / "scripts" / "quality_table.py"
)
assert _spec is not None and _spec.loader is not None
quality_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality_table)

HOST = PluginHost()
SHIPPED = sorted(quality_table.DECLARATIONS)
#: Where each shipped adapter documents its settings and errors.
DOCS = {
    "rtsp": "docs/rtsp.md",
    "onvif": "docs/onvif.md",
    "ring": "docs/ring.md",
    "arlo": "docs/arlo.md",
    "wyze": "docs/wyze.md",
    "examplecam": "plugins/_template/README.md",
}


def _declared(name: str) -> QualityDeclaration:
    return parse_quality(quality_table.DECLARATIONS[name].read_text(encoding="utf-8"), name)


def _all_done() -> QualityDeclaration:
    return QualityDeclaration("x", {r.id: RuleStatus("done") for r in RULES})


# ------------------------------------------------------------------ the checklist and the suite


def test_every_check_a_rule_names_exists_and_every_check_belongs_to_a_rule() -> None:
    suite = {c.id for c in CHECKS}
    named = [check for rule in RULES for check in rule.checks]
    assert set(named) - suite == set()
    assert len(named) == len(set(named)), "a check belongs to one rule"
    assert suite - set(named) == set(), "a new check needs a rule of the checklist"


def test_a_rule_is_gating_exactly_when_certification_needs_its_checks() -> None:
    groups = {c.id: c.group for c in CHECKS}
    for rule in RULES:
        if rule.checks:
            certifying = {groups[c] in CERTIFYING_GROUPS for c in rule.checks}
            assert certifying == {rule.gating}, rule.id
        else:
            assert not rule.gating, f"{rule.id}: a gating rule needs checks that prove it"


# ------------------------------------------------------------------ each shipped declaration


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_declaration_marks_every_rule_and_exempts_no_gating_one(name: str) -> None:
    assert declaration_problems(_declared(name)) == []


@pytest.mark.parametrize("name", SHIPPED)
def test_what_a_declaration_says_is_shipped_is(name: str) -> None:
    rules = _declared(name).rules
    if rules["documented"].status == "done":
        assert (ROOT / DOCS[name]).is_file()
    if name not in HOST.adapters():
        return  # the template is not installed here: test_template.py installs a copy
    if rules["settings-class"].status == "done":
        assert HOST.adapter(name).settings_class is not None
    if rules["simulator"].status == "done":
        assert HOST.has_simulator(name)
    if rules["conformance-target"].status == "done":
        assert HOST.has_conformance_target(name)


@pytest.mark.parametrize("name", sorted(HOST.adapters()))
def test_every_installed_adapter_is_shipped_with_a_declaration(name: str) -> None:
    found = load_quality(HOST.registrar(name), name)
    assert found == _declared(name)


@pytest.mark.parametrize("name", SHIPPED)
def test_declarations_hold_against_the_suites_last_report(name: str) -> None:
    folder = os.environ.get("CAMGATE_CONFORMANCE_REPORTS")
    report = Path(folder or ".") / f"{name}.json"
    if not folder or not report.is_file():
        pytest.skip(
            "no report given: set CAMGATE_CONFORMANCE_REPORTS to a folder of "
            "`camgate conformance ADAPTER --json ADAPTER.json` results"
        )
    assert report_problems(_declared(name), json.loads(report.read_text())) == []


def test_plugins_json_lists_simulator_target_and_declaration() -> None:
    listed = {a["name"]: a for a in json.loads(run_cli("plugins", "--json").stdout)}
    assert set(listed) >= {"rtsp", "onvif"}
    for name in ("rtsp", "onvif"):
        assert listed[name]["simulator"] is True
        assert listed[name]["conformance_target"] is True
        assert listed[name]["quality"] == _declared(name).to_json()
        assert listed[name]["quality_problems"] == []


def test_the_docs_table_is_the_declarations() -> None:
    page = quality_table.PAGE.read_text(encoding="utf-8")
    assert quality_table.BEGIN in page and quality_table.END in page
    assert quality_table.rendered(page) == page, "run: python scripts/quality_table.py"


# ------------------------------------------------------------------ the rules of the marks


def test_a_gating_rule_cannot_be_exempted_and_an_exemption_needs_a_reason() -> None:
    marks = _all_done().rules | {
        "no-secret-shown": RuleStatus("exempt", "we never have secrets"),
        "discovery": RuleStatus("exempt"),
    }
    problems = declaration_problems(QualityDeclaration("x", marks))
    assert problems == [
        "x: rule 'no-secret-shown' is gating and cannot be exempted",
        "x: rule 'discovery' is exempt without a reason",
    ]


def test_unknown_missing_and_misspelt_marks_are_named() -> None:
    marks = dict(_all_done().rules)
    del marks["simulator"]
    marks["fast"] = RuleStatus("done")
    marks["documented"] = RuleStatus("finished")
    problems = declaration_problems(QualityDeclaration("x", marks))
    assert "x: no rule 'fast'" in problems
    assert "x: rule 'simulator' not marked" in problems
    assert any("'documented' is 'finished'" in p for p in problems)


def _report(**statuses: str) -> dict[str, Any]:
    checks = [{"id": c.id, "status": "passed", "reason": ""} for c in CHECKS]
    for check in checks:
        check["status"] = statuses.get(check["id"].replace(".", "_").replace("-", "_"), "passed")
    return {"adapter": "x", "checks": checks}


def test_a_done_rule_whose_check_failed_is_a_false_declaration() -> None:
    declared = _all_done()
    assert report_problems(declared, _report()) == []
    assert report_problems(declared, _report(media_clips="failed")) == [
        "x: rule 'decodable-media' is done, but media.clips failed"
    ]
    assert report_problems(declared, _report(robustness_drops="not run")) == [
        "x: rule 'errors-mapped' is done, but robustness.drops did not run"
    ]
    # A non-gating check not run (no discovery to time) and a rule still to do are no lie.
    assert report_problems(declared, _report(budget_discovery="not run")) == []
    todo = QualityDeclaration("x", declared.rules | {"decodable-media": RuleStatus("todo")})
    assert report_problems(todo, _report(media_clips="failed")) == []
    assert report_problems(declared, {"adapter": "y", "checks": []}) == [
        "x: the report is for adapter 'y'"
    ]


def test_a_file_that_is_not_a_declaration_is_a_validation_error() -> None:
    from camgate.errors import ValidationError

    for text in ("rules = 3", "[rules]\nx = 3", "not toml ="):
        with pytest.raises(ValidationError, match="quality.toml"):
            parse_quality(text, "x")
