"""The C extension (the rest of the metadata is in pyproject.toml).

Needs a C compiler and the headers of SQLite and OpenSSL (Debian: gcc, libsqlite3-dev,
libssl-dev; scripts/setup.sh installs them).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "camgate_native._verify",
            sources=["src/camgate_native/_verify.c"],
            libraries=["sqlite3", "crypto"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
