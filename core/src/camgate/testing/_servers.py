"""What the throwaway servers for tests (:mod:`~camgate.testing.pgserver`,
:mod:`~camgate.testing.natsserver`) share: a free loopback port, and the rule for a server that
cannot run here."""

from __future__ import annotations

import os
import socket
import unittest

__all__ = ["free_port", "require"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the server binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require(reason: str | None, skip_var: str, what: str) -> None:
    """Nothing when ``reason`` is None (the server can run); else ``unittest.SkipTest`` (pytest
    skips) when ``$skip_var`` is ``1``, and otherwise RuntimeError saying why: the tests that
    need the server fail rather than pass unseen."""
    if reason is None:
        return
    if os.environ.get(skip_var) == "1":
        raise unittest.SkipTest(f"{what} tests skipped ({skip_var}=1): {reason}")
    raise RuntimeError(f"{reason}; set {skip_var}=1 to skip the {what} tests")
