"""camgate's compiled parts, optional: camgate runs without them, only slower.

:func:`scan_sqlite` checks one range of a SQLite audit log in C with the GIL released; see
:mod:`camgate.audit.fastverify`, which uses it when this package is installed.
"""

from camgate_native._verify import scan_sqlite

__all__ = ["scan_sqlite"]
