from collections.abc import Sequence
from os import PathLike

_Moved = dict[str, tuple[str, int]]
# (count, first_link, last, first_links, snapshots, tail), or None: a doubt
_Found = (
    tuple[int, str, str, dict[str, str], list[tuple[int, str, _Moved, dict[str, bytes]]], _Moved]
    | None
)

def scan_sqlite(
    path: str | PathLike[str],
    after: int | None,
    until: int | None,
    lo: int,
    checkpoints: Sequence[int],
    /,
) -> _Found: ...
def scan_postgres(
    conninfo: str,
    after: int | None,
    until: int | None,
    lo: int,
    checkpoints: Sequence[int],
    /,
) -> _Found: ...
