"""The Ring Partner API simulated on loopback, for tests and demos (never imported by the
adapter). :class:`RingSimulator` starts :mod:`camgate_ring.testing.server` as a process,
links an account (a token pair) and gives the adapter settings that reach it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from camgate.adapters import Secret, Simulator
from camgate.testing import until

__all__ = [
    "RING_HOSTS",
    "exported_clip_inside",
    "TICKET_PATH",
    "app_backend_settings",
    "until",
    "APP_CODE",
    "APP_PASSWORD",
    "APP_USER",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "SIGNING_KEY",
    "RingSimulator",
]

CLIENT_ID = "camgate-sim-client"
CLIENT_SECRET = "sim-client-secret-0f3a"  # noqa: S105 (the simulator's own)
#: The owner's app sign-in (the app backend) and the verification code the simulator "sends".
APP_USER = "owner@example.org"
APP_PASSWORD = "app-pa55word!"  # noqa: S105 (the simulator's own)
APP_CODE = "246810"
#: The partner's HMAC signing key the simulator signs its webhooks with.
SIGNING_KEY = "sim-hmac-signing-key-7c21"


#: Where the simulator hands out live-view tickets (the app's path on its own host).
TICKET_PATH = "/api/v1/clap/ticket/request/signalsocket"


async def exported_clip_inside(clip: Path, window: tuple[datetime, datetime]) -> None:
    """Check an exported clip: ffmpeg decodes ``clip`` without a word, and it holds pictures,
    every one's picture clock inside ``window`` (AssertionError otherwise)."""
    import av
    from camgate.testing import read_picture_clock

    decoded = await anyio.run_process(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-f", "null", "-"], check=True
    )
    assert decoded.stderr == b"", decoded.stderr
    with av.open(str(clip)) as container:
        pictured = [read_picture_clock(f) for f in container.decode(video=0)]
    assert pictured and all(c is not None and window[0] <= c <= window[1] for c in pictured)


async def app_backend_settings(sim: RingSimulator, account_path: Path) -> dict[str, Any]:
    """Sign the simulator's owner in on the app backend (password, Ring's 412, then the code),
    persist the account to ``account_path``, and return the adapter settings of that account
    (``backend = "app"``, every host the simulator's)."""
    from camgate_ring.app import AppAccountFile, TwoFactorRequired, app_login

    account = AppAccountFile(account_path)
    token_url = f"{sim.base}/oauth/token"
    hardware_id = account.load_or_create().hardware_id
    password = Secret(APP_PASSWORD)
    try:
        await app_login(
            token_url=token_url, username=APP_USER, password=password, hardware_id=hardware_id
        )
        raise AssertionError("the simulator signed the owner in without a code")
    except TwoFactorRequired:
        pass
    tokens = await app_login(
        token_url=token_url,
        username=APP_USER,
        password=password,
        hardware_id=hardware_id,
        code=Secret(APP_CODE),
    )
    account.save_tokens(tokens)
    return {
        "backend": "app",
        "app_account_file": str(account_path),
        "app_api_base_url": sim.base,
        "app_token_url": token_url,
        "app_ticket_url": sim.base + TICKET_PATH,
        "signalling_url": sim.signalling_url,
        "app_snapshot_url": f"{sim.base}/snapshots",
    }


#: Ring's hosts, which the TLS certificate names (clients that hard-code them resolve them to
#: the simulator).
RING_HOSTS = (
    "oauth.ring.com",
    "api.ring.com",
    "app.ring.com",
    "prd-api-us.prd.rings.solutions",
    "api.amazonvision.com",
)


def make_certificates(folder: Path, hosts: tuple[str, ...]) -> Path:
    """A test CA (``ca.pem``) and a server certificate it signed for ``hosts`` and 127.0.0.1
    (``leaf.pem``, ``leaf.key``) in ``folder``, made with the ``openssl`` command; the CA's
    path."""

    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the Ring simulator's TLS needs the openssl command")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=camgate Ring simulator CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    names = ",".join([*(f"DNS:{h}" for h in hosts), "IP:127.0.0.1"])
    (folder / "leaf.ext").write_text(
        f"subjectAltName={names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n",
        encoding="ascii",
    )
    run(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", f"/CN={hosts[0]}",
    )  # fmt: skip
    run(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext",
    )  # fmt: skip
    return folder / "ca.pem"


class RingSimulator(Simulator):
    """``devices`` simulated Ring cameras (line-powered unless listed in ``battery`` by index,
    with that percentage; online unless their index is in ``offline``; answering a WHEP offer
    with 500 when it is in ``broken``; serving an hour-old snapshot whatever is asked when in
    ``stale``; a battery camera's latest image is 10 minutes old, a line-powered one's new; the
    app's device list shows ``settings.live_view_disabled`` for those in ``live_view_disabled``).
    Entering starts the server and links the account; ``sources`` are the device ids and
    ``settings`` reach them (tokens persisted to a temporary token file).
    Ring ends live sessions after ``live_caps`` seconds (battery, line power; Ring's are 30 and
    60). With ``tls`` it also listens with TLS (``tls_port``) under a certificate for Ring's
    hosts (:data:`RING_HOSTS`) from a test CA (``ca_file``), made with ``openssl``.
    ``access_ttl_s`` is the access token's lifetime; the WHEP peer sends a keyframe every
    ``keyframe_interval`` seconds and the receiver joins ``join_delay`` seconds in (None: at a
    random point of the keyframe interval, drawn per session). The app's signalling socket ends a
    session that sent no ``ping`` for ``ping_timeout_s`` seconds (close code 6)."""

    def __init__(
        self,
        devices: int = 2,
        *,
        battery: dict[int, int] | None = None,
        offline: frozenset[int] = frozenset(),
        broken: frozenset[int] = frozenset(),
        stale: frozenset[int] = frozenset(),
        live_view_disabled: frozenset[int] = frozenset(),
        access_ttl_s: float = 3600.0,
        keyframe_interval: float = 2.0,
        join_delay: float | None = 0.5,
        tls: bool = False,
        live_caps: tuple[float, float] = (30.0, 60.0),
        ping_timeout_s: float = 10.0,
    ) -> None:
        self.config: dict[str, Any] = {
            "devices": [
                {
                    "id": f"ava1.ring.device.SIM{i}",
                    "name": f"Simulated Ring {i}",
                    "battery": (battery or {}).get(i, 255),
                    "online": i not in offline,
                    "broken": i in broken,
                    "stale_snapshot": i in stale,
                    "live_view_disabled": i in live_view_disabled,
                    "snapshot_age_s": 600.0 if i in (battery or {}) else 0.0,
                    "live_cap_s": live_caps[0] if i in (battery or {}) else live_caps[1],
                }
                for i in range(1, devices + 1)
            ],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "signing_key": SIGNING_KEY,
            "app": {"username": APP_USER, "password": APP_PASSWORD, "code": APP_CODE},
            "access_ttl_s": access_ttl_s,
            "keyframe_interval": keyframe_interval,
            "join_delay": join_delay,
            "ping_timeout_s": ping_timeout_s,
        }
        self.tls = tls
        self.tls_port = 0
        self.signalling_url = ""
        self.ca_file: Path | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[str] | None = None
        self.base = ""
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RingSimulator(base={self.base!r})"

    def __enter__(self) -> RingSimulator:
        self._dir = tempfile.TemporaryDirectory(prefix="ring-sim-")
        if self.tls:
            self.ca_file = make_certificates(Path(self._dir.name), RING_HOSTS)
            folder = Path(self._dir.name)
            self.config["tls"] = {"cert": str(folder / "leaf.pem"), "key": str(folder / "leaf.key")}
        config = Path(self._dir.name) / "config.json"
        config.write_text(json.dumps(self.config), encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "camgate_ring.testing.server", str(config)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError("the Ring simulator did not start")
        words = line.split()
        self.base = words[1]
        self.tls_port = int(words[2]) if len(words) > 2 else 0
        self.signalling_url = words[3] if len(words) > 3 else ""
        tokens = self.link()
        self.sources = [device["id"] for device in self.config["devices"]]
        self.settings = {
            "api_base_url": self.base,
            "token_url": f"{self.base}/oauth/token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "access_expires_at": time.time() + float(tokens["expires_in"]),
            "token_file": str(Path(self._dir.name) / "tokens.json"),
            "authorize_url": f"{self.base}/oauth/authorize",
        }
        return self

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.base + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def link(self) -> dict[str, Any]:
        """A new token pair for the account (what account linking gives the partner)."""
        result: dict[str, Any] = self._call("POST", "/_sim/link")
        return result

    def owner_decides(self, url: str, *, approve: bool = True) -> str:
        """What the owner's browser does with an authorisation ``url``: open the page, press
        approve (or deny), and return the redirect address Ring sends it to (not followed)."""
        page = httpx.get(url, timeout=10)
        page.raise_for_status()
        query = httpx.URL(url).query.decode()
        form = {k: v for k, v in httpx.QueryParams(query).items()}
        form["decision"] = "approve" if approve else "deny"
        answer = httpx.post(f"{self.base}/oauth/authorize", data=form, timeout=10)
        if answer.status_code != 302:
            raise RuntimeError(f"the authorisation page answered {answer.status_code}")
        return answer.headers["location"]

    def send_webhook(
        self,
        url: str,
        kind: str,
        device: str | None = None,
        *,
        sub_type: str | None = None,
        times: int = 1,
        age_s: float = 0.0,
        tamper: bool = False,
    ) -> list[int]:
        """Have Ring POST a signed delivery of ``kind`` (``motion_detected``…) about ``device``
        (None: the account) to ``url``, ``times`` times with one request id, ``age_s`` old,
        its signature broken with ``tamper``; the statuses the receiver answered."""
        order = {
            "url": url,
            "type": kind,
            "device": device,
            "sub_type": sub_type,
            "times": times,
            "age_s": age_s,
            "tamper": tamper,
        }
        result: list[int] = self._call("POST", "/_sim/webhook", order)
        return result

    def app_state(self) -> dict[str, Any]:
        """The app side: ``hardware_ids`` signed in, ``sessions`` created, ``codes_sent``
        (2FA codes within the last 10 minutes), ``started_ms`` (when the simulator started:
        its app history's events are ``started_ms - 600 s + k`` minutes, ``k`` 1 to 7, each
        recorded for 20 s)."""
        result: dict[str, Any] = self._call("GET", "/_sim/app")
        return result

    def signalling(self) -> dict[str, Any]:
        """The app's live-view sessions by id: device, ``activated``, ``pings``,
        ``closed_by_client`` (the code), ``closed_by_ring`` ([code, text]), the peer
        connection's ``state``, ``closed`` (and ``closed_at``, its ``time.monotonic()``),
        ``forced_keyframes``, ``sent``."""
        result: dict[str, Any] = self._call("GET", "/_sim/signalling")
        return result

    def log(self) -> list[dict[str, Any]]:
        """Every API request so far: method, path, status, bearer (bool), grant_type."""
        result: list[dict[str, Any]] = self._call("GET", "/_sim/log")
        return result

    def state(self) -> dict[str, Any]:
        """The WHEP sessions by id: device, deleted, the peer connection's state, ``sent``
        (access units sent), ``closed``."""
        result: dict[str, Any] = self._call("GET", "/_sim/state")
        return result

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the next call gets 401)."""
        self._call("POST", "/_sim/expire")

    def revoke_link(self, backend: str = "partner") -> None:
        """The owner withdraws camgate's link on Ring's side ("My Apps", or the app's sign-in
        ended): every token of ``backend`` is refused from now on — API calls 401, refreshes
        ``400 invalid_grant``. Live sessions already running go on until their cap."""
        self._call("POST", "/_sim/revoke", {"backend": backend})

    def app_faults(self, *replies: tuple[int, Any]) -> None:
        """The next app API requests (``/clients_api/…``) get these (status, JSON body) replies,
        in order: 504s, 404 ``{"errors": [7019]}`` asset errors…"""
        self._call("POST", "/_sim/app-faults", [{"status": s, "body": b} for s, b in replies])

    def rate_limit(self, count: int, retry_after: float) -> None:
        """The next ``count`` API requests get 429 with ``Retry-After: retry_after``."""
        self._call("POST", "/_sim/rate-limit", {"count": count, "retry_after": retry_after})

    def close(self) -> None:
        """Stop the server and remove its files. Idempotent."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
