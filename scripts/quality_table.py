"""Write the quality table of every shipped adapter into docs/adapters.md.

``uv run --locked python scripts/quality_table.py`` rewrites the part of docs/adapters.md between
the ``<!-- quality-table -->`` markers from each adapter's ``quality.toml`` (rtsp, onvif and the
template); ``--check`` exits 1 when the page is out of date. tests/integration/test_quality.py
fails when it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

from camgate.quality import FILE, markdown_table, parse_quality

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "adapters.md"
BEGIN, END = "<!-- quality-table -->", "<!-- /quality-table -->"
#: The shipped adapters' declarations, by adapter name.
DECLARATIONS = {
    "rtsp": ROOT / "plugins" / "rtsp" / "src" / "camgate_rtsp" / FILE,
    "onvif": ROOT / "plugins" / "onvif" / "src" / "camgate_onvif" / FILE,
    "ring": ROOT / "plugins" / "ring" / "src" / "camgate_ring" / FILE,
    "arlo": ROOT / "plugins" / "arlo" / "src" / "camgate_arlo" / FILE,
    "wyze": ROOT / "plugins" / "wyze" / "src" / "camgate_wyze" / FILE,
    "examplecam": ROOT / "plugins" / "_template" / "src" / "camgate_examplecam" / FILE,
}


def table() -> str:
    """The table as the declarations give it now."""
    return markdown_table(
        {
            name: parse_quality(path.read_text(encoding="utf-8"), name)
            for name, path in DECLARATIONS.items()
        }
    )


def rendered(page: str) -> str:
    """``page`` with the table between the markers replaced by :func:`table`."""
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str]) -> int:
    """Rewrite the page, or with ``--check`` say whether it is current."""
    page = PAGE.read_text(encoding="utf-8")
    new = rendered(page)
    if "--check" in argv:
        if new != page:
            print(f"{PAGE} is out of date: run python scripts/quality_table.py")
            return 1
        return 0
    PAGE.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
