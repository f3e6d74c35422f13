"""Build CHANGELOG.md from the fragments in ``changes/``.

Each change that users, integrators or operators would notice adds one small file to
``changes/``, named ``<slug>.<kind>.md`` (``kind``: added, changed, fixed, security, removed,
deprecated), holding one or a few lines of Markdown: what changed and what to do about it. Its
``slug`` is the issue number (``16.added.md``) or a short name (``quality-toml.added.md``);
two fragments may share a slug with different kinds.

``python scripts/changelog.py --check`` fails on a fragment with a bad name or no text (a
test runs it); ``--draft`` prints the next section; ``--release VERSION`` writes it at the top
of CHANGELOG.md (under the introduction, dated today) and deletes the fragments it used.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANGES = ROOT / "changes"
CHANGELOG = ROOT / "CHANGELOG.md"
#: The kinds of change, in the order a section lists them, with their headings.
KINDS = {
    "security": "Security",
    "added": "Added",
    "changed": "Changed",
    "deprecated": "Deprecated",
    "removed": "Removed",
    "fixed": "Fixed",
}
_NAME = re.compile(r"^(?P<slug>[a-z0-9][a-z0-9-]*)\.(?P<kind>[a-z]+)\.md$")
#: Where a new release section goes: before the first existing one.
_FIRST_RELEASE = re.compile(r"^## ", re.M)


def fragments() -> list[tuple[str, str, Path]]:
    """Every fragment as (kind, slug, path), sorted by kind order then slug."""
    found = []
    for path in CHANGES.glob("*.md"):
        if path.name == "README.md":
            continue
        match = _NAME.match(path.name)
        kind = match.group("kind") if match else ""
        found.append((kind, match.group("slug") if match else path.name, path))
    order = list(KINDS)
    return sorted(found, key=lambda f: (order.index(f[0]) if f[0] in order else -1, f[1]))


def problems() -> list[str]:
    """What is wrong with the fragments: names not ``<slug>.<kind>.md``, unknown kinds, empty."""
    found = []
    for kind, _slug, path in fragments():
        if kind not in KINDS:
            found.append(f"{path.name}: not <slug>.<kind>.md with kind one of {', '.join(KINDS)}")
        elif not path.read_text(encoding="utf-8").strip():
            found.append(f"{path.name}: empty")
    return found


def section(version: str, date: datetime.date) -> str:
    """The release section the fragments make."""
    lines = [f"## {version} — {date.isoformat()}", ""]
    by_kind: dict[str, list[str]] = {}
    for kind, slug, path in fragments():
        text = " ".join(path.read_text(encoding="utf-8").split())
        issue = f" (#{slug})" if slug.isdigit() else ""
        by_kind.setdefault(kind, []).append(f"- {text}{issue}")
    for kind, heading in KINDS.items():
        if kind in by_kind:
            lines += [f"### {heading}", "", *by_kind[kind], ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Check, draft or release (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="fail on a malformed fragment")
    group.add_argument("--draft", metavar="VERSION", help="print the next section")
    group.add_argument("--release", metavar="VERSION", help="write it and remove the fragments")
    args = parser.parse_args(argv)
    bad = problems()
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    if args.check:
        return 0
    today = datetime.datetime.now(datetime.UTC).date()
    text = section(args.draft or args.release, today)
    if args.draft:
        print(text)
        return 0
    if not fragments():
        print("no fragments in changes/: nothing to release", file=sys.stderr)
        return 1
    log = CHANGELOG.read_text(encoding="utf-8")
    first = _FIRST_RELEASE.search(log)
    at = first.start() if first else len(log)
    CHANGELOG.write_text(log[:at] + text + "\n" + log[at:], encoding="utf-8")
    for _kind, _slug, path in fragments():
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
