"""camgate-wyze: the camgate adapter for Wyze cameras (docs/wyze.md). Importing it registers
nothing: the ``wyze`` entry point (:mod:`camgate_wyze.plugin`) does."""

from camgate_wyze.adapter import WyzeAdapter
from camgate_wyze.client import WyzeClient
from camgate_wyze.settings import NAME, WyzeSettings

__all__ = ["NAME", "WyzeAdapter", "WyzeClient", "WyzeSettings"]
