from collections.abc import Sequence
from os import PathLike

_Moved = dict[str, tuple[str, int]]

def scan_sqlite(
    path: str | PathLike[str],
    after: int | None,
    until: int | None,
    lo: int,
    checkpoints: Sequence[int],
    /,
) -> (
    tuple[int, str, str, dict[str, str], list[tuple[int, str, _Moved, dict[str, bytes]]], _Moved]
    | None
): ...
