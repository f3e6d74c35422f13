"""An adapter's quality declaration: the checklist of docs/adapters.md, rule by rule.

Each adapter package carries ``quality.toml`` beside its plugin module (Home Assistant's
integration quality scale is the model)::

    [rules]
    no-media-before-grant = "done"
    discovery = { status = "exempt", reason = "cameras are addressed by URL" }

Every rule of :data:`RULES` is named once, as ``done``, ``todo`` or ``exempt`` (with a reason).
A *gating* rule — one whose checks certification needs — is never ``exempt``. A rule lists the
conformance checks that prove it (by id; core does not import the suite): a ``done`` rule whose
check failed in the suite's report for that adapter is a false declaration
(:func:`report_problems`). ``camgate plugins --json`` shows each adapter's declaration.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs

from camgate.errors import ValidationError

__all__ = [
    "FILE",
    "RULES",
    "STATUSES",
    "QualityDeclaration",
    "Rule",
    "RuleStatus",
    "declaration_problems",
    "load_quality",
    "markdown_table",
    "parse_quality",
    "report_problems",
]

#: The declaration's file name, in the adapter's top-level package.
FILE = "quality.toml"
#: What a rule may be marked.
STATUSES = ("done", "todo", "exempt")


@attrs.frozen
class Rule:
    """One rule of the checklist: ``asks`` what the adapter must do; ``checks`` are the
    conformance checks that prove it (none for rules a reviewer reads); ``gating`` rules can
    never be exempted."""

    id: str
    gating: bool
    asks: str
    checks: tuple[str, ...] = ()


_FAULTS = ("auth", "rate-limited", "server-error", "timeout", "not-protocol", "refused")

#: The checklist, in the order docs/adapters.md gives it.
RULES: tuple[Rule, ...] = (
    Rule(
        "no-media-before-grant",
        True,
        "Ask the camera for no media before the edge calls with a verified grant (not at "
        "discovery, not for a denied, expired, forged, replayed or mismatched grant).",
        (
            "gating.no-media-before-grant",
            "gating.denied-gets-nothing",
            "gating.expired-gets-nothing",
            "gating.forged-gets-nothing",
            "gating.replayed-gets-nothing",
            "gating.wrong-camera-gets-nothing",
            "gating.wrong-scope-gets-nothing",
        ),
    ),
    Rule(
        "close-on-aclose",
        True,
        "aclose() returns once the camera connection is closed; nothing reconnects.",
        ("gating.revocation-closes",),
    ),
    Rule(
        "no-idle-connection",
        True,
        "Keep no connection open between accesses unless the factory declares an edge cache.",
        ("gating.no-idle-connection",),
    ),
    Rule(
        "fresh-snapshots",
        True,
        "Fetch every snapshot from the camera after its grant; never serve a cached picture.",
        ("gating.snapshot-fresh-and-closed",),
    ),
    Rule(
        "recorded-window",
        True,
        "Request and return recorded footage only inside the grant's window.",
        ("gating.recorded-window",),
    ),
    Rule(
        "audio-only-when-granted",
        True,
        "Ask the camera for audio only for a grant with audio.",
        ("gating.no-audio-without-grant",),
    ),
    Rule(
        "egress-only-to-camera",
        True,
        "Connect to nothing but the camera's own addresses (no proxies from the environment, "
        "no redirects to another host).",
        ("gating.egress-only-to-target",),
    ),
    Rule(
        "errors-mapped",
        True,
        "Map every vendor failure to camgate's AdapterError tree (CameraAuthError for refused "
        "credentials), within the time limit: never a hang, never a foreign exception.",
        tuple(f"robustness.{f}" for f in (*_FAULTS, "offline", "drops")),
    ),
    Rule(
        "no-secret-shown",
        True,
        "Show no credential in an error, repr or log record, in any encoding.",
        ("robustness.no-secret-in-errors",),
    ),
    Rule(
        "no-resource-leak",
        True,
        "Leave no thread, file descriptor or task behind when a stream or snapshot ends.",
        ("robustness.no-resource-leak",),
    ),
    Rule(
        "never-outside-grant",
        True,
        "Under any sequence of grants, revocations and expiries, serve media only inside a "
        "live grant.",
        ("stateful.never-outside-grant",),
    ),
    Rule(
        "decodable-media",
        True,
        "Emit packets a consumer decodes (H.264 or H.265 video; AAC or G.711 audio) with an "
        "honest StreamInfo, so every clip format can be written.",
        ("media.stream-info", "media.clips"),
    ),
    Rule(
        "latency-budgets",
        False,
        "Declare LatencyBudgets and meet them (p95) within camgate's ceilings.",
        (
            "budget.snapshot",
            "budget.first-frame-cold",
            "budget.first-frame-warm",
            "budget.revocation",
        ),
    ),
    Rule(
        "discovery",
        False,
        "discover() lists the cameras the settings reach, without asking for media.",
        ("budget.discovery",),
    ),
    Rule(
        "settings-class",
        False,
        "Declare a settings class: unknown keys refused, secret fields marked SECRET.",
    ),
    Rule(
        "simulator",
        False,
        "Ship a simulator that really serves the vendor's protocol on loopback "
        "(AdapterFactory.simulator).",
    ),
    Rule(
        "conformance-target",
        False,
        "Ship a conformance target with a backdoor (the simulator's own log) that stages every "
        "fault (AdapterFactory.conformance_target).",
    ),
    Rule(
        "documented",
        False,
        "Document the settings, the errors and the vendor's quirks (a docs page or README).",
    ),
)
_BY_ID = {rule.id: rule for rule in RULES}


@attrs.frozen
class RuleStatus:
    """How an adapter marks one rule: ``status`` (``done``, ``todo``, ``exempt``) and why."""

    status: str
    reason: str = ""


@attrs.frozen
class QualityDeclaration:
    """An adapter's marks, rule id → :class:`RuleStatus`, as its ``quality.toml`` gives them."""

    adapter: str
    rules: dict[str, RuleStatus]

    def to_json(self) -> dict[str, Any]:
        """``{rule: {"status", "reason"?}}`` in checklist order, unknown rules last."""
        order = [r.id for r in RULES if r.id in self.rules]
        order += sorted(set(self.rules) - set(order))
        out: dict[str, Any] = {}
        for rule in order:
            mark = self.rules[rule]
            out[rule] = {"status": mark.status} | ({"reason": mark.reason} if mark.reason else {})
        return out


def parse_quality(text: str, adapter: str) -> QualityDeclaration:
    """Read a ``quality.toml``; ValidationError when it is not TOML with a ``[rules]`` table
    of ``"status"`` strings or ``{status, reason}`` tables. Whether the marks are allowed is
    :func:`declaration_problems`' question."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{adapter} {FILE}: not valid TOML: {exc}") from None
    table = data.get("rules")
    if not isinstance(table, dict):
        raise ValidationError(f"{adapter} {FILE}: needs a [rules] table")
    rules: dict[str, RuleStatus] = {}
    for rule, mark in table.items():
        if isinstance(mark, str):
            rules[rule] = RuleStatus(mark)
        elif isinstance(mark, dict) and isinstance(mark.get("status"), str):
            rules[rule] = RuleStatus(mark["status"], str(mark.get("reason", "")))
        else:
            raise ValidationError(
                f"{adapter} {FILE}: rule {rule!r} must be a status or {{status, reason}}"
            )
    return QualityDeclaration(adapter, rules)


def declaration_problems(declaration: QualityDeclaration) -> list[str]:
    """What is wrong with the marks themselves: a rule named that does not exist, a rule not
    named, a status that is not one of :data:`STATUSES`, an exemption without a reason, a
    gating rule exempted."""
    name = declaration.adapter
    problems = [f"{name}: no rule {rule!r}" for rule in declaration.rules if rule not in _BY_ID]
    problems += [
        f"{name}: rule {r.id!r} not marked" for r in RULES if r.id not in declaration.rules
    ]
    for rule, mark in declaration.rules.items():
        if mark.status not in STATUSES:
            problems.append(f"{name}: rule {rule!r} is {mark.status!r}, not one of {STATUSES}")
        elif mark.status == "exempt":
            if rule in _BY_ID and _BY_ID[rule].gating:
                problems.append(f"{name}: rule {rule!r} is gating and cannot be exempted")
            if not mark.reason.strip():
                problems.append(f"{name}: rule {rule!r} is exempt without a reason")
    return problems


def report_problems(declaration: QualityDeclaration, report: Mapping[str, Any]) -> list[str]:
    """Where the suite's report for the adapter (``camgate conformance --json``) contradicts the
    declaration: a ``done`` rule one of whose checks failed (or erred), or — for a gating rule
    — was not run. A check skipped because the adapter does not declare the capability it
    needs does not count against a rule."""
    name = declaration.adapter
    if report.get("adapter") != name:
        return [f"{name}: the report is for adapter {report.get('adapter')!r}"]
    results = {c["id"]: c for c in report.get("checks", [])}
    problems: list[str] = []
    for rule in RULES:
        mark = declaration.rules.get(rule.id)
        if mark is None or mark.status != "done":
            continue
        for check in rule.checks:
            result = results.get(check)
            status = None if result is None else result.get("status")
            if status in ("failed", "error"):
                problems.append(f"{name}: rule {rule.id!r} is done, but {check} {status}")
            elif rule.gating and status in ("not run", None):
                problems.append(f"{name}: rule {rule.id!r} is done, but {check} did not run")
    return problems


def load_quality(plugin: object, adapter: str) -> QualityDeclaration | None:
    """The declaration in the top-level package of ``plugin`` (the module that registered
    ``adapter``), or None when it carries none. ValidationError when it cannot be read."""
    module = getattr(plugin, "__name__", None)
    if not isinstance(module, str) or not module:
        return None
    package = module.split(".")[0]
    try:
        resource = importlib.resources.files(package) / FILE
        if not resource.is_file():
            return None
        text = resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, TypeError, OSError):
        return None
    return parse_quality(text, adapter)


def markdown_table(declarations: Mapping[str, QualityDeclaration | None]) -> str:
    """The checklist as a Markdown table, one column per adapter (``declarations`` by name):
    each cell ``done``, ``todo`` or ``exempt`` (the reason in a line below), ``?`` if not
    marked."""
    names = sorted(declarations)
    lines = [
        "| rule | gating | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    reasons: list[str] = []
    for rule in RULES:
        cells = []
        for name in names:
            declared = declarations[name]
            mark = None if declared is None else declared.rules.get(rule.id)
            cells.append("?" if mark is None else mark.status)
            if mark is not None and mark.status == "exempt":
                reasons.append(f"- `{name}` is exempt from `{rule.id}`: {mark.reason}")
        gating = "yes" if rule.gating else ""
        lines.append(f"| `{rule.id}` | {gating} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, *(["", *reasons] if reasons else [])]) + "\n"
