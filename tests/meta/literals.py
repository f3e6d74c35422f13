"""Find end reasons, grant problems and audit kinds written as bare strings in source code.

Used by ``tests/meta/test_vocab.py`` on camgate's packages. Dotted audit kinds are distinctive
(``access.end``) and flagged wherever they appear as a string, except as a dict key or a
subscript (``body["decision"]`` names a field, not a kind); the plain-word kinds (``decision``,
``survey``) only where they act as a kind (compared with or given to a name about a kind); a
string literal as the kind of an
audit write (``audit.append("x", ...)``) is flagged whatever it says, so a new kind cannot be
born as a literal. End reasons are ordinary words (``closed``, ``error``), so they are flagged
only where they act as a reason or a problem: an argument of a function that ends an access, a
comparison with or assignment to a name about a reason or problem, a return of
``grant_problem``, the ``reason`` of an ``access.end`` body; the hyphenated ones anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from camgate.vocab import AuditKind, EndReason, GrantProblem

KINDS = {k.value for k in AuditKind}
#: Kinds that are also ordinary words: flagged only where they act as a kind.
PLAIN_KINDS = {k for k in KINDS if "." not in k}
WORDS = {r.value for r in EndReason} | {p.value for p in GrantProblem}
#: Functions whose string arguments are end reasons.
ENDERS = {"_end", "end_camera_streams", "access_ended", "_access_ended", "_finish_unopened"}
#: Methods whose first argument is an audit record's kind.
WRITERS = {"append", "append_with", "entry", "_audit", "_audited", "has_record", "add_intent"}
#: Parts of a name that say it holds a reason or a problem.
HINTS = ("reason", "problem")


def _name(node: ast.AST) -> str:
    """The dotted source of a name or attribute chain (``self._edge.audit``), else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _callee(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else _name(call.func)


def _is_audit_write(call: ast.Call) -> bool:
    """``…audit.append(KIND, …)``, ``self._audit(KIND, …)``, ``self._audited(KIND, …)``."""
    callee = _callee(call)
    if callee in ("_audit", "_audited", "add_intent"):
        return True
    owner = _name(call.func.value) if isinstance(call.func, ast.Attribute) else ""
    return callee in WRITERS and owner.split(".")[-1] in ("audit", "log", "_audit")


def _kind_role(holder: ast.AST, parent: ast.AST | None) -> bool:
    """The literal is compared with, assigned to or passed as something named for a kind."""
    if isinstance(parent, ast.Compare):
        return any("kind" in _name(n).lower() for n in (parent.left, *parent.comparators))
    if isinstance(parent, ast.Assign | ast.AnnAssign):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        return any("kind" in _name(t).lower() for t in targets)
    if isinstance(parent, ast.keyword):
        return "kind" in (parent.arg or "")
    return False


def _hinted(node: ast.AST) -> bool:
    return any(h in _name(node).lower() for h in HINTS)


def findings(source: str, filename: str = "<source>") -> Iterator[tuple[int, str]]:
    """``(line, what)`` for each vocabulary word written as a literal in ``source``."""
    tree = ast.parse(source, filename)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_audit_write(node) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, f"audit kind {first.value!r} written as a string"
                continue
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        value, parent = node.value, parents.get(node)
        # Climb through conditional expressions and collections to the node that gives the
        # literal its role.
        holder: ast.AST = node
        while isinstance(parent, ast.IfExp | ast.BoolOp | ast.Tuple | ast.List | ast.Set):
            holder, parent = parent, parents.get(parent)
        is_key = isinstance(parent, ast.Dict) and holder in parent.keys
        is_index = isinstance(parent, ast.Subscript) and holder is parent.slice
        plain_word = value in PLAIN_KINDS and not _kind_role(holder, parent)
        if value in KINDS and not is_key and not is_index and not plain_word:
            yield node.lineno, f"audit kind {value!r} as a string: use camgate.vocab.AuditKind"
            continue
        if value not in WORDS or is_key or is_index:
            continue
        why = _reason_role(value, holder, parent, parents)
        if why:
            yield node.lineno, f"{why} {value!r} as a string: use camgate.vocab.EndReason"


def _reason_role(
    value: str, holder: ast.AST, parent: ast.AST | None, parents: dict[ast.AST, ast.AST]
) -> str:
    """Which role makes this word an end reason or grant problem here ('' for none)."""
    if "-" in value:
        return "end reason"
    if isinstance(parent, ast.Call) and _callee(parent) in ENDERS:
        return "end reason"
    if isinstance(parent, ast.Compare) and any(
        _hinted(side) for side in [parent.left, *parent.comparators]
    ):
        return "reason or problem compared"
    if isinstance(parent, ast.Assign | ast.AnnAssign):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        if any(_hinted(t) for t in targets):
            return "reason or problem assigned"
    if isinstance(parent, ast.Return):
        scope = parents.get(parent)
        while scope is not None and not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            scope = parents.get(scope)
        if scope is not None and "problem" in scope.name:
            return "grant problem returned"
    if isinstance(parent, ast.Dict):
        key = parent.keys[parent.values.index(holder)] if holder in parent.values else None
        call = parents.get(parent)
        if (
            isinstance(key, ast.Constant)
            and key.value == "reason"
            and isinstance(call, ast.Call)
            and call.args
            and (
                _name(call.args[0]).endswith("ACCESS_END")
                or getattr(call.args[0], "value", None) == AuditKind.ACCESS_END
            )
        ):
            return "access.end reason"
    return ""
