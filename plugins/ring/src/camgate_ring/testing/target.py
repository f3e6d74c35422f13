"""The Ring conformance target: the simulator, its request log and WHEP sessions as the backdoor,
staged faults, and the addresses the adapter may reach (``endpoints``).

``RingTarget()`` judges the Partner backend (``camgate conformance ring``);
``RingTarget(backend="app")`` the app backend (``camgate conformance ring --target SIM:app``):
the same simulated devices by their app ids (``1001``, ``1002``…), an owner signed in with the
verification code, its live-view sessions (the signalling websocket's) and its media downloads
(snapshots, ``share/play`` and the signed recordings) as the backdoor, and the same faults
staged on the app API's host (for ``auth``, an account file holding an unknown refresh token).

It has the shape of core's ``camgate.targets.Target`` without importing the suite. Cameras are
devices ``SIM1`` and ``SIM2`` of a linked account; ``SIM3`` is offline and ``SIM4`` answers a
WHEP offer with 500. The suite's recorder proxies cameras by their source URL, and a Ring source
is a device id, so the adapter reaches the simulator directly: the target declares the API's
address and, for WebRTC, every ICE candidate address the simulator's peers offered (the UDP
destinations the adapter may send to), as ``endpoints``.

Faults, each with :data:`FAULT_SECRET` in its settings (which the suite watches for):

``auth``          a refresh token Ring does not know (the refresh is refused: the link is lost)
``rate-limited``  a loopback peer answering HTTP 429 with ``Retry-After: 30``
``server-error``  ``SIM4``: its WHEP endpoint answers 500
``timeout``       a loopback peer that accepts the connection and never answers
``not-protocol``  a loopback peer that answers in RTSP, not HTTP
``refused``       a loopback port nobody listens on
``offline``       ``SIM3``: 503 "Device is currently offline"
``drops``         a second simulator, killed after the first packet
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs
import httpx
from camgate.testing import fault_peer

from camgate_ring.app import AppAccount, AppAccountFile, new_hardware_id
from camgate_ring.partner import Tokens
from camgate_ring.testing import RingSimulator, app_backend_settings

__all__ = ["FAULT_SECRET", "RingBackdoor", "RingFault", "RingTarget", "VendorEvent"]

#: A secret in every fault's settings; an error that shows it leaks a secret.
FAULT_SECRET = "fault-refresh-t0ken/Zq"  # noqa: S105 (a test token, there to be caught)


@attrs.frozen
class VendorEvent:
    """A simulator event as the suite reads it: ``camera`` is the device it concerns."""

    at: float
    client: str
    kind: str
    camera: str | None
    media: bool


def _kind(entry: Mapping[str, Any]) -> tuple[str, bool]:
    path, method = entry["path"], entry["method"]
    if "/media/streaming/whep/" in path:
        return ("whep-offer", True) if method == "POST" else ("whep-delete", False)
    if "/media/" in path or path.startswith(("/snapshots/", "/recordings/")):
        return "media-download", True
    if path.endswith("/share/play"):
        return "media-download", True  # the signed URL of a recording
    return f"{method.lower()} {path}", False


def _ding_device(ding: str) -> str | None:
    """The app device of a simulated ding id (``<device id> * 100 + k``)."""
    return str(int(ding) // 100) if ding.isdigit() else None


def _device(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) > 3 and parts[1:3] == ["v1", "devices"]:
        return parts[3]
    if len(parts) > 3 and parts[1:3] in (["clients_api", "doorbots"], ["snapshots", "next"]):
        return parts[3]
    if len(parts) > 3 and parts[1:3] == ["clients_api", "dings"]:
        return _ding_device(parts[3])
    if len(parts) == 3 and parts[1] == "recordings":
        return _ding_device(parts[2].removesuffix(".mp4"))
    return None


class RingBackdoor:
    """The simulator's own log (requests, WHEP sessions), read without going through the
    adapter."""

    def __init__(self, sim: RingSimulator, backend: str = "partner") -> None:
        self.sim = sim
        self._http = httpx.Client(timeout=5.0, trust_env=False)
        #: Where the live sessions are: WHEP's, or the app's signalling ones.
        self._sessions = "/_sim/signalling" if backend == "app" else "/_sim/state"

    def _get(self, path: str) -> Any:
        response = self._http.get(self.sim.base + path)
        response.raise_for_status()
        return response.json()

    def events(self) -> list[VendorEvent]:
        """Every request (a WHEP offer or media download is a media request), the end
        (``closed``) of each plain request's connection (the simulator closes it once it
        answered) and of every WHEP peer connection, in time order."""
        found: list[VendorEvent] = []
        for i, entry in enumerate(self._get("/_sim/log")):
            kind, media = _kind(entry)
            client = entry.get("client") or f"request-{i}"
            device = _device(entry["path"])
            found.append(VendorEvent(entry["mono"], client, kind, device, media))
            if not entry.get("client") and entry.get("closed") is not None:
                # A plain request's connection closes once it is answered.
                found.append(VendorEvent(entry["closed"], client, "closed", device, False))
        for sid, session in self._get(self._sessions).items():
            if "mono" in session:  # an app live view: its offer went over the websocket
                found.append(
                    VendorEvent(session["mono"], sid, "live-view", session["device"], True)
                )
            if session.get("closed_at") is not None:
                found.append(
                    VendorEvent(session["closed_at"], sid, "closed", session["device"], False)
                )
        return sorted(found, key=lambda e: e.at)

    def open_clients(self) -> set[str]:
        """WHEP sessions whose peer connection is not closed, and plain requests not yet
        answered."""
        answering = {
            f"request-{i}"
            for i, entry in enumerate(self._get("/_sim/log"))
            if not entry.get("client") and entry.get("closed") is None
        }
        sessions = self._get(self._sessions).items()
        return answering | {sid for sid, s in sessions if s.get("closed_at") is None}

    def candidates(self) -> set[tuple[str, int]]:
        """Every ICE candidate address the simulator's peers offered."""
        return {
            (str(host), int(port))
            for s in self._get(self._sessions).values()
            for host, port in s.get("candidates", [])
        }

    def close(self) -> None:
        """Close the backdoor's HTTP connections."""
        self._http.close()


@attrs.define
class RingFault:
    """One staged fault (see the module docstring)."""

    source: str
    settings: Mapping[str, Any]
    secret: str = FAULT_SECRET
    within_s: float = 3.0
    sim: RingSimulator | None = None
    endpoints: set[tuple[str, int]] = attrs.field(factory=set)
    backend: str = "partner"

    @property
    def mid_stream(self) -> bool:
        """True for ``drops``: the fault happens when :meth:`trigger` is called."""
        return self.sim is not None

    def trigger(self) -> None:
        """Kill the fault's own simulator (``drops``), noting first where its peer was (the
        target's ``endpoints``); a no-op for the others."""
        if self.sim is not None and self.sim.process is not None:
            backdoor = RingBackdoor(self.sim, self.backend)
            try:
                self.endpoints |= backdoor.candidates()
            finally:
                backdoor.close()
            self.sim.process.kill()


def _peer_settings(port: int) -> dict[str, Any]:
    """Settings whose API and token URL are a loopback fault peer, with a valid-looking access
    token (no refresh needed first)."""
    base = f"http://127.0.0.1:{port}"
    return {
        "api_base_url": base,
        "token_url": f"{base}/oauth/token",
        "client_id": "fault-client",
        "client_secret": "fault-client-secret",
        "access_token": FAULT_SECRET,
        "refresh_token": FAULT_SECRET + "-r",
        "access_expires_at": time.time() + 3600,
        "request_timeout_s": 1.5,
        "connect_timeout_s": 2.0,
    }


def sign_in(sim: RingSimulator, path: Path) -> dict[str, Any]:
    """:func:`~camgate_ring.testing.app_backend_settings` from synchronous code (on a thread of
    its own, so it works whether or not an event loop runs here)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, app_backend_settings, sim, path).result()


def _app_account(path: Path, access: str, refresh: str, expires_at: float) -> str:
    """Write an app account file holding these tokens; its path."""
    AppAccountFile(path).save(AppAccount(new_hardware_id(), Tokens(access, refresh, expires_at)))
    return str(path)


class RingTarget:
    """Two cameras of a simulated linked Ring account, with the simulator's log as the
    backdoor; ``backend`` ``"partner"`` (the default) or ``"app"`` (module docstring)."""

    #: Snapshots carry the picture clock of their capture: the suite reads their time from it.
    snapshot_clock = True

    def __init__(self, backend: str = "partner") -> None:
        self.backend = backend
        self.description = (
            "simulated Ring app API on loopback (request log and signalling sessions)"
            if backend == "app"
            else "simulated Ring Partner API on loopback (request log and WHEP sessions)"
        )
        self.sim = RingSimulator(devices=4, offline=frozenset({3}), broken=frozenset({4}))
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None
        self.backdoor: RingBackdoor | None = None
        self._api: tuple[str, int] | None = None
        self._staged: set[tuple[str, int]] = set()  # fault peers and the drops simulator
        self._folder: Path | None = None  # the app backend's account files

    def __enter__(self) -> RingTarget:
        self.sim.__enter__()
        parts = urlsplit(self.sim.base)
        self._api = (parts.hostname or "127.0.0.1", parts.port or 80)
        if self.backend == "app":
            self._folder = Path(tempfile.mkdtemp(prefix="ring-target-"))
            self.sources = [str(1000 + i) for i in range(1, 5)][:2]
            app = sign_in(self.sim, self._folder / "account.json")
            self.settings = {**app, "read_timeout_s": 3.0}
            socket_url = urlsplit(self.sim.signalling_url)
            self._staged.add((socket_url.hostname or "127.0.0.1", socket_url.port or 80))
        else:
            self.sources = self.sim.sources[:2]
            self.settings = {**self.sim.settings, "read_timeout_s": 3.0}
        self.backdoor = RingBackdoor(self.sim, self.backend)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoints(self) -> set[tuple[str, int]]:
        """Where the adapter may connect or send: the API, every ICE candidate the simulator's
        WebRTC peers offered in their answers, and the peers of the faults staged so far (a
        Ring source is a device id, not an address, so the suite cannot tell them itself)."""
        found = ({self._api} if self._api else set()) | self._staged
        if self.backdoor is not None and self.sim.process is not None:
            found |= self.backdoor.candidates()
        return found

    @property
    def recorded_span(self) -> tuple[datetime, datetime]:
        """Footage the simulated devices hold (every picture carries its capture time): the
        last ten minutes up to a moment ago; on the app backend, the recording of one event
        (the fourth of the app's history: 20 s, six minutes before the simulator started)."""
        if self.backend == "app":
            started = datetime.fromtimestamp(self.sim.app_state()["started_ms"] / 1000, UTC)
            event = started - timedelta(seconds=600 - 4 * 60)
            return event + timedelta(seconds=1), event + timedelta(seconds=19)
        now = datetime.now(UTC)
        return now - timedelta(minutes=10), now - timedelta(seconds=5)

    def close(self) -> None:
        """Stop the simulator."""
        if self.backdoor is not None:
            self.backdoor.close()
            self.backdoor = None
        self.sim.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _app_source(self, index: int) -> str:
        """The app id of the simulator's device ``index`` (0-based)."""
        return str(1001 + index)

    def fault(self, name: str) -> AbstractContextManager[RingFault] | None:
        """Stage ``name`` (see the module docstring); None for a fault not staged."""
        stages: dict[str, Callable[[], Iterator[RingFault]]] = {
            "auth": self._auth,
            "rate-limited": lambda: self._peer("http-429"),
            "server-error": lambda: self._device(3),
            "timeout": lambda: self._peer("silent", within_s=4.0),
            "not-protocol": lambda: self._peer("rtsp-500", within_s=4.0),
            "refused": self._refused,
            "offline": lambda: self._device(2),
            "drops": self._drops,
        }
        stage = stages.get(name)
        return None if stage is None else contextlib.contextmanager(stage)()

    def _device(self, index: int) -> Iterator[RingFault]:
        """A camera of the target's account that fails on its own (offline, broken)."""
        settings = dict(self.sim.settings)
        # The secret watched for is the account's client secret (always in the settings).
        if self.backend == "app":
            settings = {**self.settings, "client_secret": FAULT_SECRET}
            yield RingFault(self._app_source(index), settings, backend="app")
            return
        yield RingFault(self.sim.sources[index], settings, secret=str(settings["client_secret"]))

    def _auth(self) -> Iterator[RingFault]:
        if self.backend == "app":
            assert self._folder is not None
            account = _app_account(self._folder / "auth.json", "", FAULT_SECRET, 0.0)
            settings = {**self.settings, "app_account_file": account, "client_secret": FAULT_SECRET}
            yield RingFault(self._app_source(0), settings, backend="app")
            return
        settings = {
            **self.sim.settings,
            "access_token": "",
            "refresh_token": FAULT_SECRET,
            "access_expires_at": 0.0,
            "token_file": None,
        }
        yield RingFault(self.sim.sources[0], settings)

    def _peer(self, mode: str, within_s: float = 3.0) -> Iterator[RingFault]:
        with fault_peer(mode) as port:
            self._staged.add(("127.0.0.1", port))
            yield self._peer_fault(port, within_s)

    def _peer_fault(self, port: int, within_s: float = 3.0) -> RingFault:
        """The fault whose API host is the loopback ``port`` (on the target's backend)."""
        if self.backend != "app":
            return RingFault("ava1.ring.device.FAULT", _peer_settings(port), within_s=within_s)
        assert self._folder is not None
        base = f"http://127.0.0.1:{port}"
        account = _app_account(
            self._folder / f"peer-{port}.json",
            FAULT_SECRET,
            FAULT_SECRET + "-r",
            time.time() + 3600,
        )
        settings = {
            **self.settings,
            "app_account_file": account,
            "app_api_base_url": base,
            "app_token_url": f"{base}/oauth/token",
            "app_ticket_url": f"{base}/ticket",
            "app_snapshot_url": f"{base}/snapshots",
            "request_timeout_s": 1.5,
            "connect_timeout_s": 2.0,
        }
        return RingFault("1001", settings, within_s=within_s, backend="app")

    def _refused(self) -> Iterator[RingFault]:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        self._staged.add(("127.0.0.1", port))
        yield self._peer_fault(port)

    def _drops(self) -> Iterator[RingFault]:
        with RingSimulator(devices=1) as sim:
            parts = urlsplit(sim.base)
            self._staged.add((parts.hostname or "127.0.0.1", parts.port or 80))
            settings = {**sim.settings, "read_timeout_s": 2.0}
            source = sim.sources[0]
            if self.backend == "app":
                assert self._folder is not None
                app = sign_in(sim, self._folder / "drops.json")
                settings = {**app, "read_timeout_s": 2.0, "client_secret": FAULT_SECRET}
                socket_url = urlsplit(sim.signalling_url)
                self._staged.add((socket_url.hostname or "127.0.0.1", socket_url.port or 80))
                source = "1001"
            fault = RingFault(
                source,
                settings,
                secret=str(settings["client_secret"]),
                within_s=4.0,
                sim=sim,
                endpoints=self._staged,
                backend=self.backend,
            )
            yield fault
