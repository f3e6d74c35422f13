"""The owner portal and the operator console: HTML pages the server serves itself."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the pages' routes and static files to ``app`` (none yet)."""
