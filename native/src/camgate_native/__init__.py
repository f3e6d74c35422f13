"""camgate's compiled parts, optional: camgate runs without them, only slower.

:func:`scan_sqlite` and :func:`scan_postgres` check one range of an audit log (a SQLite file,
a PostgreSQL database) in C with the GIL released; see :mod:`camgate.audit.fastverify`, which
uses them when this package is installed.
"""

from camgate_native._verify import scan_postgres, scan_sqlite

__all__ = ["scan_postgres", "scan_sqlite"]
