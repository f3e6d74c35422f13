"""Meta-tests: the named vocabularies are documented, and the code uses them.

- every end reason, grant problem and audit kind carries its meaning (and a kind its fields);
- docs/audit.md and docs/hooks.md show exactly what ``camgate.vocab`` defines;
- no package of the workspace writes one of these words as a bare string literal.

A new audit kind (a survey record, a partial clip, a stream gap…) goes into
``camgate.vocab.AuditKind`` as ``NAME = ("kind.text", "when it is written", ("field", ...))``,
then ``uv run --locked python tests/meta/vocab_docs.py --write`` regenerates the docs.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from camgate.vocab import AuditKind, EndReason, GrantProblem

ROOT = Path(__file__).resolve().parents[2]
ADD_KIND = (
    'add it to camgate.vocab.AuditKind as NAME = ("kind.text", "when it is written", '
    '("field", ...)) and run: uv run --locked python tests/meta/vocab_docs.py --write'
)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vocab_docs = _load("vocab_docs")
literals = _load("literals")


@pytest.mark.parametrize("member", [*EndReason, *GrantProblem, *AuditKind], ids=repr)
def test_every_value_says_what_it_means(member: EndReason | GrantProblem | AuditKind) -> None:
    doc = member.doc
    assert len(doc) >= 30 and doc[0].isupper() and doc.rstrip().endswith((".", ")")), (
        f"{member!r}: say in a sentence what it means (at least 30 characters)"
    )
    assert member == member.value and str(member) == member.value  # the member is its text


@pytest.mark.parametrize("kind", list(AuditKind), ids=str)
def test_every_audit_kind_lists_its_fields(kind: AuditKind) -> None:
    assert kind.fields, f"{kind}: list the top-level fields of its body"
    assert len(set(kind.fields)) == len(kind.fields), f"{kind}: a field is listed twice"
    assert all(f.isidentifier() for f in kind.fields), kind.fields


def test_every_grant_problem_ends_a_stream_with_the_same_word() -> None:
    for problem in GrantProblem:
        assert problem.end_reason.value == problem.value


def test_the_docs_show_every_value_and_nothing_else() -> None:
    problems = vocab_docs.drift()
    assert not problems, "; ".join(problems) + f"; run {vocab_docs.COMMAND}"
    audit = (ROOT / "docs" / "audit.md").read_text()
    hooks = (ROOT / "docs" / "hooks.md").read_text()
    for kind in AuditKind:
        assert f"| `{kind}` |" in audit, f"docs/audit.md does not list {kind}: {ADD_KIND}"
    for reason in EndReason:
        assert f"- `{reason}`: " in hooks, f"docs/hooks.md does not list end reason {reason}"


def test_a_hand_edit_between_the_markers_is_seen() -> None:
    text = (ROOT / "docs" / "audit.md").read_text()
    edited = text.replace("| `access.end` |", "| `access.ended` |")
    assert vocab_docs.current(edited, "audit-kinds") != vocab_docs.audit_kinds()
    assert vocab_docs.current(text, "audit-kinds") == vocab_docs.audit_kinds()


def _sources() -> list[Path]:
    trees = [ROOT / "core" / "src", ROOT / "conformance" / "src", ROOT / "native" / "src"]
    trees += [p / "src" for p in (ROOT / "plugins").iterdir() if (p / "src").is_dir()]
    found = [f for tree in trees if tree.is_dir() for f in tree.rglob("*.py")]
    return sorted(f for f in found if f != ROOT / "core" / "src" / "camgate" / "vocab.py")


def test_no_code_writes_a_vocabulary_word_as_a_string() -> None:
    found = sorted(
        {
            f"{path.relative_to(ROOT)}:{line}: {what}"
            for path in _sources()
            for line, what in literals.findings(path.read_text(), str(path))
        }
    )
    assert not found, (
        "use the camgate.vocab enums (a new audit kind: " + ADD_KIND + "):\n" + "\n".join(found)
    )


# The literals the code held before the enums (edge.py, gate.py): the scan must find each.
OLD = textwrap.dedent(
    """
    class GuardedStream:
        async def __anext__(self):
            ended = self._end_reason not in (None, "completed")
            await self._end("expired" if expired else "completed")
            if problem is None and masks:
                problem = "masks-changed"
            if problem == "revoked":
                self.trip()
            self._end_reason = "revoked" if self.revoked else reason

    class Edge:
        def grant_problem(self, camera, grant, now):
            if consent is None:
                return "revoked"
            return "incident-closed"

        async def _finish_unopened(self, grant, camera, exc):
            reason = "expired" if isinstance(exc, TimeoutError) else "error"
            await self._audit("access.end", {"reason": reason})

        async def snapshot(self):
            await self._audit(AuditKind.ACCESS_END, {"reason": "completed", "packets": 1})
            self.host.access_ended(grant, camera, "completed", 1, 2)

    class Gate:
        async def set_masks(self):
            await self.edge.end_camera_streams(camera.id, "masks-changed")
            self.audit.append("survey", {"incident": incident.id})
            self._audited("decision", prepare, at)
            if kind == "consent.enrolled":
                pass
            if record.kind == "survey":
                pass
    """
)


def test_the_scan_finds_every_kind_of_literal() -> None:
    lines = {line for line, _what in literals.findings(OLD)}
    expected = {
        i
        for i, text in enumerate(OLD.splitlines(), 1)
        if '"' in text and ("(" in text or "=" in text or "return" in text)
    }
    assert lines == expected, sorted(expected - lines)


def test_the_scan_leaves_other_words_alone() -> None:
    fine = textwrap.dedent(
        """
        incident = attrs.evolve(incident, status="closed")
        body = {"request": request.id, "decision": decision.to_json()}
        decision = Decision.from_json(body["decision"])
        if pending.outcome == "revoked":
            pass
        entries = [entry | {"reason": "expired"} for entry in todo]
        subprocess.run(["ffprobe", "-v", "error"])
        def survey(self, requested_by: str = "survey"):
            request = Request(camera_id="survey")
        __all__ = ["Sighting", "survey"]
        """
    )
    assert list(literals.findings(fine)) == []
