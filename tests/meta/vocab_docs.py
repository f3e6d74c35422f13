"""The generated parts of docs/audit.md (every audit kind) and docs/hooks.md (every end reason).

Both are rendered from ``camgate.vocab``, between marker comments in the Markdown files::

    uv run --locked python tests/meta/vocab_docs.py --write   # rewrite the marked sections
    uv run --locked python tests/meta/vocab_docs.py           # check: exit 1 when they drift

``tests/meta/test_vocab.py`` runs the check, so a value added to an enum without its docs (or
docs edited by hand between the markers) fails the tests.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from camgate.vocab import AuditKind, EndReason

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "uv run --locked python tests/meta/vocab_docs.py --write"


def _code(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def audit_kinds() -> str:
    """docs/audit.md's table: one row per :class:`AuditKind`, in definition order."""
    rows = [
        "| kind | written when | body fields |",
        "|---|---|---|",
        *(f"| `{k.value}` | {k.doc.replace('``', '`')} | {_code(k.fields)} |" for k in AuditKind),
    ]
    return "\n".join(rows)


def end_reasons() -> str:
    """docs/hooks.md's list: one item per :class:`EndReason`, in definition order."""
    return "\n".join(f"- `{r.value}`: {r.doc.replace('``', '`')}" for r in EndReason)


#: Each generated section: (file under docs/, marker name, renderer).
SECTIONS: list[tuple[str, str, Callable[[], str]]] = [
    ("audit.md", "audit-kinds", audit_kinds),
    ("hooks.md", "end-reasons", end_reasons),
]


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} .*?-->\n)(.*?)(<!-- end: {name} -->)", re.DOTALL)


def current(text: str, name: str) -> str | None:
    """The section ``name`` as it stands in ``text`` (None when its markers are missing)."""
    found = _pattern(name).search(text)
    return None if found is None else found.group(2).rstrip("\n")


def replaced(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` replaced by ``body``."""
    return _pattern(name).sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)


def drift() -> list[str]:
    """What differs between the docs and the enums: one line per stale or missing section."""
    problems = []
    for doc, name, render in SECTIONS:
        text = (ROOT / "docs" / doc).read_text()
        have = current(text, name)
        if have is None:
            problems.append(f"docs/{doc} has no '<!-- generated: {name} -->' section")
        elif have != render():
            problems.append(f"docs/{doc}: the {name} section differs from camgate.vocab")
    return problems


def main(argv: list[str]) -> int:
    """``--write`` rewrites the sections; without it, print the drift and exit 1 if any."""
    if "--write" in argv:
        for doc, name, render in SECTIONS:
            path = ROOT / "docs" / doc
            text = path.read_text()
            if current(text, name) is None:
                print(f"docs/{doc}: add the markers for {name} first", file=sys.stderr)
                return 1
            path.write_text(replaced(text, name, render()))
        return 0
    problems = drift()
    for line in problems:
        print(f"{line}; run {COMMAND}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
