"""The C extension (the rest of the metadata is in pyproject.toml).

Needs a C compiler and the headers of SQLite, OpenSSL and libpq (Debian: gcc, libsqlite3-dev,
libssl-dev, libpq-dev; scripts/setup.sh installs them).
"""

import shutil
import subprocess

from setuptools import Extension, setup


def libpq_include() -> list[str]:
    """Where libpq-fe.h is: ``pg_config --includedir`` (libpq-dev ships it), else Debian's."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--includedir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return [out.stdout.strip()]
    return ["/usr/include/postgresql"]


setup(
    ext_modules=[
        Extension(
            "camgate_native._verify",
            sources=["src/camgate_native/_verify.c"],
            include_dirs=libpq_include(),
            libraries=["sqlite3", "crypto", "pq"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
