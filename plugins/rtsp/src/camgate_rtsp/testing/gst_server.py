#!/usr/bin/env python3
"""Loopback RTSP test server built on GStreamer's gst-rtsp-server.

This is a standalone script for the *system* Python (the one that has PyGObject,
``python3-gi``). It imports only the standard library and ``gi``; it must not
import camgate. ``camgate_rtsp.testing.server`` launches it; it can also be run by
hand::

    /usr/bin/python3 gst_server.py --host 127.0.0.1 --port 0 \\
        --config '{"mounts": [{"path": "/cam1"}]}'

``--config -`` reads the JSON from the first line of stdin instead (this keeps
credentials out of the process's argv); the server then also exits when stdin
reaches end-of-file, so it does not outlive the process that launched it.

``--check`` verifies that PyGObject, the GStreamer / GstRtspServer typelibs and
the elements needed for H.264 video are present. It prints ``OK`` and exits 0,
or prints a one-line reason with an install hint and exits 1.

Config JSON: ``{"mounts": [mount, ...]}``, each mount an object with keys:

=============== ========= ====================================================
key             default   meaning
=============== ========= ====================================================
path            required  mount point, starts with "/" (e.g. "/cam1")
width           640       video width
height          360       video height
fps             30        frames per second
gop_frames      30        keyframe interval in frames (exact: scenecut is off)
pattern         "smpte"   videotestsrc pattern nick ("ball", "snow", ...)
bitrate_kbps    1000      x264 target bitrate
video           true      serve an H.264 stream (pt 96, "pay0")
audio           false     serve an audio stream (after the video one)
audio_codec     "aac"     "aac" (mpeg4-generic, pt 97) or "pcma" (G.711, pt 8)
username        null      with password: this mount requires RTSP auth (digest, or basic
                          when the top-level "auth" key is "basic")
password        null      (never printed)
maskable        false     draw privacy masks (``MASK`` command) on the picture before encoding
launch          null      a whole gst-launch description (payloaders ``pay0``, ``pay1``...)
                          used instead of the one built from the keys above
picture_clock   false     burn each picture's capture time (wall clock, ms) into its bottom
                          quarter: camgate.testing's picture clock (``read_picture_clock``)
=============== ========= ====================================================

Protocol with the launcher: once the server is listening and every mount's
encoder is running, exactly one line ``READY <port>`` is printed on stdout.
Then, for every client, one line per event::

    EVENT <monotonic seconds> <client number> <kind> <path or -> [<Range header>]

``kind`` is ``connect``, ``options``, ``describe``, ``setup``, ``play``, ``teardown`` or
``closed`` (the connection is gone). The time is ``time.monotonic()`` of this process (the
system-wide CLOCK_MONOTONIC on Linux, so the launcher can compare it with its own). This is
the server's own view of what clients asked for: the conformance suite's backdoor.
With ``--config -``, later stdin lines are commands: ``KEY <path>`` makes that
mount's encoder emit a keyframe at once (answered ``KEY <path> ok`` or
``KEY <path> unknown`` on stdout); ``MASK <path> <json>`` replaces the privacy masks a
``maskable`` mount draws on its picture (``[{"points": [[x, y], ...], "rgb": [r, g, b]}, ...]``,
x and y fractions of the picture, origin top left; answered ``MASK <path> ok|unknown|bad``).
SIGTERM / SIGINT stop the server with exit status 0. A setup failure prints one
line ``gst_server: error: ...`` on stderr and exits with status 2; a
pipeline error while running is reported the same way with exit status 1.

Continuous encoding: every mount's factory is shared, and right after the
server is attached the script constructs each mount's media itself, prepares
it, completes its streams' sender parts (the sinks a client's SETUP would
otherwise create) and sets it PLAYING with no transport. That internal prepare
reference is never released, so the pipeline keeps encoding between clients:
all clients of a mount share one continuously running encoder, and a client
joins wherever the encoder happens to be in its GOP. The factory's media key
is the mount path alone (not port or query), so every client URL for a mount
finds that one media.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any, NoReturn

PROG = "gst_server"

DEFAULTS: dict[str, Any] = {
    "width": 640,
    "height": 360,
    "fps": 30,
    "gop_frames": 30,
    "pattern": "smpte",
    "bitrate_kbps": 1000,
    "video": True,
    "audio": False,
    "audio_codec": "aac",
    "username": None,
    "password": None,
    "maskable": False,
    "launch": None,
    "picture_clock": False,
}
_INT_KEYS = ("width", "height", "fps", "gop_frames", "bitrate_kbps")
_BOOL_KEYS = ("video", "audio", "maskable", "picture_clock")
_AUDIO_CODECS = ("aac", "pcma")

# element -> package that provides it (Debian names), for install hints
_ELEMENT_PACKAGES = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "audiotestsrc": "gstreamer1.0-plugins-base",
    "audioconvert": "gstreamer1.0-plugins-base",
    "audioresample": "gstreamer1.0-plugins-base",
    "timeoverlay": "gstreamer1.0-plugins-base",
    "rsvgoverlay": "gstreamer1.0-plugins-bad",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "h264parse": "gstreamer1.0-plugins-bad",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "voaacenc": "gstreamer1.0-plugins-bad",
    "avenc_aac": "gstreamer1.0-libav",
    "aacparse": "gstreamer1.0-plugins-good",
    "rtpmp4gpay": "gstreamer1.0-plugins-good",
    "alawenc": "gstreamer1.0-plugins-good",
    "rtppcmapay": "gstreamer1.0-plugins-good",
    "rtpbin": "gstreamer1.0-plugins-good",
}
_VIDEO_ELEMENTS = ("videotestsrc", "x264enc", "h264parse", "rtph264pay", "rtpbin")


class SetupError(Exception):
    """A configuration or environment problem; the message is one line."""


def _fail(message: str, status: int = 2) -> NoReturn:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(status)


_EVENT_LOCK = threading.Lock()


def _event(client: int, kind: str, path: str | None, extra: str = "") -> None:
    """Print one client event line (see the module docstring); safe from any thread."""
    line = f"EVENT {time.monotonic():.6f} {client} {kind} {path or '-'}"
    if extra:
        line += " " + " ".join(extra.split())
    with _EVENT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _log(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- gi


def _load_gi() -> tuple[Any, Any, Any, Any]:
    """Import Gst, GstRtsp, GstRtspServer and GLib, or raise SetupError."""
    try:
        import gi
    except ImportError:
        raise SetupError(
            f"PyGObject (gi) is not importable by {sys.executable}: install python3-gi"
        ) from None
    for namespace, package in (
        ("Gst", "gir1.2-gstreamer-1.0"),
        ("GstRtsp", "gir1.2-gst-plugins-base-1.0"),
        ("GstRtspServer", "gir1.2-gst-rtsp-server-1.0"),
    ):
        try:
            gi.require_version(namespace, "1.0")
        except ValueError:
            raise SetupError(
                f"GObject typelib {namespace}-1.0 not found: install {package}"
            ) from None
    try:
        from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
    except ImportError as exc:
        raise SetupError(
            f"cannot load GStreamer RTSP server bindings ({exc}): "
            "install gir1.2-gst-rtsp-server-1.0 and libgstrtspserver-1.0-0"
        ) from None
    ok, _argv = Gst.init_check(None)
    if not ok:
        raise SetupError("GStreamer failed to initialise (Gst.init_check returned False)")
    return Gst, GstRtsp, GstRtspServer, GLib


def _require_elements(Gst: Any, names: tuple[str, ...] | list[str]) -> None:
    for name in names:
        if Gst.ElementFactory.find(name) is None:
            package = _ELEMENT_PACKAGES.get(name, "the GStreamer plugin package providing it")
            raise SetupError(f"GStreamer element '{name}' not found: install {package}")


def _aac_encoder(Gst: Any) -> str:
    for name in ("voaacenc", "avenc_aac"):
        if Gst.ElementFactory.find(name) is not None:
            return name
    raise SetupError(
        "no AAC encoder element (voaacenc or avenc_aac): "
        "install gstreamer1.0-plugins-bad or gstreamer1.0-libav"
    )


def _pattern_nicks(Gst: Any) -> set[str]:
    element = Gst.ElementFactory.make("videotestsrc", None)
    if element is None:
        raise SetupError("cannot create videotestsrc: install gstreamer1.0-plugins-base")
    pspec = element.find_property("pattern")
    return {value.value_nick for value in pspec.enum_class.__enum_values__.values()}


# ----------------------------------------------------------------------- config


def parse_config(text: str) -> tuple[list[dict[str, Any]], str]:
    """Parse and validate the config JSON; return the mounts (defaults applied) and the auth
    method (``"digest"``, the default, or ``"basic"``) used by every protected mount."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SetupError(f"config is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("mounts"), list):
        raise SetupError('config must be a JSON object {"mounts": [...]}')
    extra = set(data) - {"mounts", "auth"}
    if extra:
        raise SetupError(f"unknown config keys: {sorted(extra)}")
    if not data["mounts"]:
        raise SetupError("config has no mounts")
    auth_method = data.get("auth", "digest")
    if auth_method not in ("digest", "basic"):
        raise SetupError(f"auth must be 'digest' or 'basic', got {auth_method!r}")

    mounts: list[dict[str, Any]] = []
    seen_paths: set[str] = set()
    passwords: dict[str, str] = {}
    for index, raw in enumerate(data["mounts"]):
        where = f"mounts[{index}]"
        if not isinstance(raw, dict):
            raise SetupError(f"{where} must be an object")
        unknown = set(raw) - set(DEFAULTS) - {"path"}
        if unknown:
            raise SetupError(f"{where}: unknown keys {sorted(unknown)}")
        mount = dict(DEFAULTS)
        mount.update(raw)
        path = mount.get("path")
        if not isinstance(path, str) or not path.startswith("/") or len(path) < 2:
            raise SetupError(f'{where}: "path" must be a string like "/cam1"')
        if any(c.isspace() or c in "?#" for c in path):
            raise SetupError(f"{where}: path {path!r} contains whitespace, '?' or '#'")
        if path.endswith("/") or "//" in path:
            raise SetupError(f"{where}: path {path!r} has an empty segment")
        if path in seen_paths:
            raise SetupError(f"{where}: duplicate path {path!r}")
        seen_paths.add(path)
        where = f"mount {path}"
        for key in _INT_KEYS:
            value = mount[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise SetupError(f'{where}: "{key}" must be a positive integer, got {value!r}')
        if mount["width"] % 2 or mount["height"] % 2:
            raise SetupError(f"{where}: width and height must be even for I420 H.264")
        for key in _BOOL_KEYS:
            if not isinstance(mount[key], bool):
                raise SetupError(f'{where}: "{key}" must be true or false')
        if not (mount["video"] or mount["audio"]):
            raise SetupError(f"{where}: at least one of video / audio must be true")
        if mount["audio_codec"] not in _AUDIO_CODECS:
            raise SetupError(f'{where}: "audio_codec" must be one of {list(_AUDIO_CODECS)}')
        if mount["launch"] is not None and not isinstance(mount["launch"], str):
            raise SetupError(f'{where}: "launch" must be a gst-launch description or null')
        if not isinstance(mount["pattern"], str):
            raise SetupError(f'{where}: "pattern" must be a string')
        username, password = mount["username"], mount["password"]
        for key, value in (("username", username), ("password", password)):
            if value is not None and (not isinstance(value, str) or not value):
                raise SetupError(f'{where}: "{key}" must be a non-empty string or null')
        if (username is None) != (password is None):
            raise SetupError(f"{where}: username and password must be given together")
        if username is not None:
            if ":" in username:
                raise SetupError(f"{where}: username must not contain ':'")
            if passwords.setdefault(username, password) != password:
                raise SetupError(
                    f"{where}: username {username!r} is used with different passwords "
                    "on different mounts (digest auth keys credentials by username)"
                )
        mounts.append(mount)
    return mounts, auth_method


def _svg_overlay(Gst: Any, name: str) -> str:
    """An ``rsvgoverlay`` called ``name`` over the I420 picture (converted there and back)."""
    _require_elements(Gst, ("rsvgoverlay", "videoconvert"))
    return (
        f"videoconvert ! rsvgoverlay name={name} fit-to-frame=true ! videoconvert ! "
        "video/x-raw,format=I420 ! "
    )


def build_launch(Gst: Any, mount: dict[str, Any], patterns: set[str]) -> str:
    """Return the gst-launch description (in parentheses) for one mount."""
    parts: list[str] = []
    pay_index = 0
    _require_elements(Gst, ("rtpbin",))
    if mount["launch"]:
        parts.append(mount["launch"])
    if mount["video"] and not mount["launch"]:
        _require_elements(Gst, _VIDEO_ELEMENTS)
        if mount["pattern"] not in patterns:
            raise SetupError(
                f"mount {mount['path']}: unknown videotestsrc pattern {mount['pattern']!r}; "
                f"choose one of {sorted(patterns)}"
            )
        gop = mount["gop_frames"]
        overlay = ""
        if Gst.ElementFactory.find("timeoverlay") is not None:
            overlay = (
                "timeoverlay time-mode=running-time halignment=left valignment=top "
                'font-desc="Sans 18" ! '
            )
        # Privacy masks drawn into the picture, as a camera does (SVG polygons, set at run
        # time by the MASK command; an empty SVG draws nothing); then the picture clock, drawn
        # by a probe just before its overlay (see picture_clock_svg), so no mask hides it.
        masks = _svg_overlay(Gst, "mask") if mount["maskable"] else ""
        clock = _svg_overlay(Gst, "clock") if mount["picture_clock"] else ""
        parts.append(
            f"videotestsrc is-live=true pattern={mount['pattern']} ! "
            f"video/x-raw,format=I420,width={mount['width']},height={mount['height']},"
            f"framerate={mount['fps']}/1 ! "
            f"{overlay}{masks}{clock}"
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast "
            f"key-int-max={gop} bitrate={mount['bitrate_kbps']} "
            "byte-stream=true option-string=scenecut=0 ! "
            "video/x-h264,stream-format=byte-stream,alignment=au ! "
            # SPS/PPS before every IDR come from x264 (in-band) / h264parse; an
            # rtph264pay config-interval=-1 would insert a second copy in front of
            # every IDR *slice*, which makes FFmpeg split each keyframe in two.
            "h264parse config-interval=-1 ! "
            f"rtph264pay config-interval=0 pt=96 name=pay{pay_index}"
        )
        pay_index += 1
    if mount["audio"] and not mount["launch"]:
        _require_elements(Gst, ("audiotestsrc", "audioconvert", "audioresample"))
        source = "audiotestsrc is-live=true wave=sine freq=440 volume=0.2"
        if mount["audio_codec"] == "pcma":
            _require_elements(Gst, ("alawenc", "rtppcmapay"))
            parts.append(
                f"{source} samplesperbuffer=160 ! audioconvert ! audioresample ! "
                "audio/x-raw,rate=8000,channels=1 ! alawenc ! "
                f"rtppcmapay pt=8 name=pay{pay_index}"
            )
        else:
            encoder = _aac_encoder(Gst)
            _require_elements(Gst, ("aacparse", "rtpmp4gpay"))
            parts.append(
                f"{source} samplesperbuffer=1024 ! audioconvert ! audioresample ! "
                "audio/x-raw,rate=48000,channels=1 ! "
                f"{encoder} bitrate=64000 ! aacparse ! "
                f"rtpmp4gpay pt=97 name=pay{pay_index}"
            )
        pay_index += 1
    description = "( " + "  ".join(parts) + " )"
    try:
        Gst.parse_launch_full(description, None, Gst.ParseFlags.FATAL_ERRORS)
    except Exception as exc:  # GLib.Error
        raise SetupError(f"mount {mount['path']}: bad pipeline: {exc}") from None
    return description


# ----------------------------------------------------------------------- picture clock

# The layout and code of camgate.testing's picture clock (this script cannot import camgate):
# 64 blocks, 4 rows of 16 along the bottom quarter; marker 0xA5, 48 bits of Unix milliseconds,
# a checksum byte. Bright blocks are ones. conformance's tests decode it with camgate's reader.
_CLOCK_ROWS, _CLOCK_COLUMNS, _CLOCK_MARKER = 4, 16, 0xA5


def picture_clock_svg(width: int, height: int, taken_at: float) -> str:
    """An SVG of ``width`` x ``height`` drawing ``taken_at`` (Unix seconds) as the picture
    clock, for an ``rsvgoverlay``."""
    millis = round(taken_at * 1000) & ((1 << 48) - 1)
    checksum = sum(millis.to_bytes(6, "little")) & 0xFF
    code = _CLOCK_MARKER | millis << 8 | checksum << 56
    block_h, block_w = height // (4 * _CLOCK_ROWS), width // _CLOCK_COLUMNS
    top = height - _CLOCK_ROWS * block_h
    rects = []
    for bit in range(_CLOCK_ROWS * _CLOCK_COLUMNS):
        row, col = divmod(bit, _CLOCK_COLUMNS)
        fill = "#fff" if code >> bit & 1 else "#000"
        rects.append(
            f'<rect x="{col * block_w}" y="{top + row * block_h}" width="{block_w}" '
            f'height="{block_h}" fill="{fill}"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" shape-rendering="crispEdges">{"".join(rects)}</svg>'
    )


# ----------------------------------------------------------------------- server


class Server:
    """The GstRtspServer, its mounts and their always-running media."""

    def __init__(
        self, host: str, port: int, mounts: list[dict[str, Any]], auth_method: str = "digest"
    ) -> None:
        self.Gst, self.GstRtsp, self.GstRtspServer, self.GLib = _load_gi()
        self.host = host
        self.port = port
        self.mounts = mounts
        self.auth_method = auth_method
        self.loop = self.GLib.MainLoop()
        self.exit_status = 0
        self.shutting_down = False
        self.started = False
        self.medias: list[tuple[str, Any]] = []
        self._errors: dict[str, str] = {}
        self._errors_lock = threading.Lock()

        patterns = _pattern_nicks(self.Gst) if any(m["video"] for m in mounts) else set()
        self.launches = {m["path"]: build_launch(self.Gst, m, patterns) for m in mounts}

    # -- construction

    def _factory_class(self) -> Any:
        GstRtspServer = self.GstRtspServer

        class PathKeyedFactory(GstRtspServer.RTSPMediaFactory):
            """Shared factory whose media cache key is the URL path only."""

            def do_gen_key(self, url: Any) -> str:
                return url.abspath

        return PathKeyedFactory

    def build(self) -> None:
        GstRtsp, GstRtspServer = self.GstRtsp, self.GstRtspServer
        server = GstRtspServer.RTSPServer()
        server.set_address(self.host)
        server.set_service(str(self.port))
        # one thread per client connection (the default of 1 serialises all clients)
        server.get_thread_pool().set_max_threads(-1)

        role_key = GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE
        perm_access = GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS
        perm_construct = GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT

        cred_roles: dict[tuple[str, str], str] = {}
        for mount in self.mounts:
            if mount["username"] is not None:
                key = (mount["username"], mount["password"])
                cred_roles.setdefault(key, f"user{len(cred_roles)}")
        if cred_roles:
            auth = GstRtspServer.RTSPAuth()
            basic = self.auth_method == "basic"
            auth.set_supported_methods(
                GstRtsp.RTSPAuthMethod.BASIC if basic else GstRtsp.RTSPAuthMethod.DIGEST
            )
            anonymous = GstRtspServer.RTSPToken()
            anonymous.set_string(role_key, "anonymous")
            auth.set_default_token(anonymous)
            for (username, password), role in cred_roles.items():
                token = GstRtspServer.RTSPToken()
                token.set_string(role_key, role)
                if basic:
                    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(username, password), token)
                else:
                    auth.add_digest(username, password, token)
            server.set_auth(auth)

        factory_class = self._factory_class()
        mount_points = server.get_mount_points()
        self.factories: dict[str, Any] = {}
        for mount in self.mounts:
            factory = factory_class()
            factory.set_launch(self.launches[mount["path"]])
            factory.set_shared(True)
            factory.set_suspend_mode(GstRtspServer.RTSPSuspendMode.NONE)
            factory.set_eos_shutdown(False)
            # Clients such as ffmpeg send "Range: npt=0.000-" with PLAY. videotestsrc
            # claims to be seekable, so gst-rtsp-server would honour that with a
            # flushing seek that restarts the shared encoder (new GOP, running time
            # back to 0) under every client. Publishing clock *and offset* (RFC 7273)
            # makes gst-rtsp-server treat the media as not seekable, so PLAY ranges
            # are ignored.
            factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
            if cred_roles:
                # Everyone may *see* every mount (gst-rtsp-server answers 404 when the
                # access check fails), but only allowed roles may *use* it: a failed
                # construct check answers 401 with a digest challenge.
                if mount["username"] is not None:
                    users = [cred_roles[(mount["username"], mount["password"])]]
                else:
                    users = ["anonymous", *cred_roles.values()]
                permissions = GstRtspServer.RTSPPermissions()
                for role in ["anonymous", *cred_roles.values()]:
                    permissions.add_permission_for_role(role, perm_access, True)
                    permissions.add_permission_for_role(role, perm_construct, role in users)
                factory.set_permissions(permissions)
            mount_points.add_factory(mount["path"], factory)
            self.factories[mount["path"]] = factory
        server.connect("client-connected", self._on_client)
        self._clients = 0
        self.server = server

    def _on_client(self, _server: Any, client: Any) -> None:
        """Report the client's requests and its disconnection as EVENT lines."""
        GstRtsp = self.GstRtsp
        self._clients += 1
        number = self._clients
        _event(number, "connect", None)

        def on_request(kind: str) -> Any:
            def handler(_client: Any, ctx: Any) -> None:
                path = ctx.uri.abspath if ctx.uri is not None else None
                extra = ""
                if kind == "play" and ctx.request is not None:
                    result, value = ctx.request.get_header(GstRtsp.RTSPHeaderField.RANGE, 0)
                    if result == GstRtsp.RTSPResult.OK and value:
                        extra = value
                _event(number, kind, path, extra)

            return handler

        for kind in ("options", "describe", "setup", "play", "teardown"):
            client.connect(f"{kind}-request", on_request(kind))
        client.connect("closed", lambda _client: _event(number, "closed", None))

    def attach(self) -> int:
        if not self.server.attach(None):
            raise SetupError(
                f"cannot listen on {self.host}:{self.port} (address in use or invalid)"
            )
        port = self.server.get_bound_port()
        if port <= 0:
            raise SetupError(f"cannot listen on {self.host}:{self.port}")
        return port

    def _bus_sync_handler(self, path: str) -> Any:
        Gst = self.Gst

        def on_message(_bus: Any, message: Any) -> Any:
            if message.type == Gst.MessageType.ERROR:
                error, _debug = message.parse_error()
                source = message.src.get_name() if message.src is not None else "?"
                text = f"mount {path}: pipeline error from {source}: {error.message}"
                with self._errors_lock:
                    first = path not in self._errors
                    self._errors.setdefault(path, text)
                if first and self.started and not self.shutting_down:
                    self.GLib.idle_add(self._runtime_error, text)
            return Gst.BusSyncReply.PASS

        return on_message

    def _runtime_error(self, text: str) -> bool:
        if not self.shutting_down:
            _log(f"error: {text}")
            self.exit_status = 1
            self.loop.quit()
        return False

    def start_media(self, port: int) -> None:
        """Construct, prepare and start every mount's shared media (see module doc)."""
        Gst, GstRtsp, GstRtspServer = self.Gst, self.GstRtsp, self.GstRtspServer
        pool = self.server.get_thread_pool()
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        for mount in self.mounts:
            path = mount["path"]
            factory = self.factories[path]
            result, url = GstRtsp.RTSPUrl.parse(f"rtsp://{url_host}:{port}{path}")
            if result != GstRtsp.RTSPResult.OK:
                raise SetupError(f"mount {path}: cannot build URL for the internal prepare")
            media = factory.construct(url)
            if media is None:
                raise SetupError(f"mount {path}: factory could not construct the media")
            pipeline = media.get_element().get_parent()
            if pipeline is not None:
                bus = pipeline.get_bus()
                bus.enable_sync_message_emission()
                bus.connect("sync-message", self._bus_sync_handler(path))
            media.connect("unprepared", self._on_unprepared, path)
            if mount["picture_clock"]:
                self._burn_clock(media, mount)
            thread = pool.get_thread(
                GstRtspServer.RTSPThreadType.MEDIA, GstRtspServer.RTSPContext()
            )
            if thread is None:
                raise SetupError(f"mount {path}: no media thread available")
            if not media.prepare(thread):
                with self._errors_lock:
                    detail = self._errors.get(path, "")
                raise SetupError(f"mount {path}: pipeline failed to start. {detail}".strip())
            # A client's SETUP normally creates the stream's sinks; do it now so the
            # pipeline can run (and be PLAYING) before any client arrives.
            for index in range(media.n_streams()):
                stream = media.get_stream(index)
                _res, transport = GstRtsp.RTSPTransport.new()
                transport.trans = GstRtsp.RTSPTransMode.RTP
                transport.profile = GstRtsp.RTSPProfile.AVP
                transport.lower_transport = GstRtsp.RTSPLowerTrans.TCP
                if not stream.complete_stream(transport):
                    raise SetupError(f"mount {path}: cannot complete stream {index}")
            if not media.set_state(Gst.State.PLAYING, []):
                raise SetupError(f"mount {path}: cannot set the media PLAYING")
            self.medias.append((path, media))
        # wait (briefly) for each pipeline to reach PLAYING so READY means "encoding"
        for path, media in self.medias:
            pipeline = media.get_element().get_parent()
            ret, _state, _pending = pipeline.get_state(5 * Gst.SECOND)
            with self._errors_lock:
                detail = self._errors.get(path)
            if detail or ret == Gst.StateChangeReturn.FAILURE:
                raise SetupError(detail or f"mount {path}: pipeline failed to reach PLAYING")
        self.started = True

    def _burn_clock(self, media: Any, mount: dict[str, Any]) -> None:
        """Before each picture reaches the ``clock`` overlay, give it the time now."""
        Gst = self.Gst
        overlay = media.get_element().get_by_name("clock")
        width, height = mount["width"], mount["height"]

        def on_buffer(_pad: Any, _info: Any) -> Any:
            # The moment the picture is made. Not its running time: on a loaded machine a live
            # source falls behind and its timestamps with it (seconds), though the picture
            # is new; a camera's clock says when it took the picture, which is now.
            overlay.set_property("data", picture_clock_svg(width, height, time.time()))
            return Gst.PadProbeReturn.OK

        overlay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_buffer)

    def _on_unprepared(self, _media: Any, path: str) -> None:
        if not self.shutting_down:
            _log(f"warning: mount {path}: media was unprepared; encoder continuity lost")

    # -- running

    def quit(self, *_args: Any) -> bool:
        self.loop.quit()
        return False

    def watch_stdin_eof(self) -> None:
        GLib = self.GLib

        pending = bytearray()

        def on_stdin(fd: int, _condition: Any) -> bool:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                self.loop.quit()
                return False
            pending.extend(data)
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                self.command(line.decode("utf-8", "replace").strip())
            return True

        GLib.io_add_watch(
            0,
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
            on_stdin,
        )

    def command(self, line: str) -> None:
        """Run one control command from stdin: ``KEY <path>`` makes that mount's encoder emit a
        keyframe now (a force-key-unit event sent upstream into x264enc, as an ONVIF
        SetSynchronizationPoint asks a camera to). Replies ``KEY <path> ok|unknown`` on stdout."""
        verb, _, path = line.partition(" ")
        if verb == "MASK":
            self.set_masks(*path.partition(" ")[::2])
            return
        if verb != "KEY":
            if line:
                _log(f"warning: unknown command {line[:40]!r}")
            return
        Gst = self.Gst
        for mount_path, media in self.medias:
            if mount_path != path:
                continue
            encoder = media.get_element().get_by_name("enc")
            if encoder is not None:
                event = Gst.Event.new_custom(
                    Gst.EventType.CUSTOM_UPSTREAM,
                    Gst.Structure.new_from_string(
                        "GstForceKeyUnit, all-headers=(boolean)true, count=(uint)0"
                    ),
                )
                encoder.get_static_pad("src").send_event(event)
                print(f"KEY {path} ok", flush=True)
                return
        print(f"KEY {path} unknown", flush=True)

    def set_masks(self, path: str, text: str) -> None:
        """``MASK <path> <json>``: draw these polygons on the mount's picture from now on."""
        mount = next((m for m in self.mounts if m["path"] == path), None)
        overlay = None
        for mount_path, media in self.medias:
            if mount_path == path:
                overlay = media.get_element().get_by_name("mask")
        if mount is None or overlay is None:
            print(f"MASK {path} unknown", flush=True)
            return
        width, height = mount["width"], mount["height"]
        try:
            shapes = []
            for mask in json.loads(text):
                points = " ".join(
                    f"{float(x) * width:.1f},{float(y) * height:.1f}" for x, y in mask["points"]
                )
                r, g, b = (max(0, min(255, int(c))) for c in mask.get("rgb", (0, 0, 0)))
                shapes.append(f'<polygon points="{points}" fill="rgb({r},{g},{b})"/>')
        except (ValueError, TypeError, KeyError):
            print(f"MASK {path} bad", flush=True)
            return
        overlay.set_property(
            "data",
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(shapes)}</svg>',
        )
        print(f"MASK {path} ok", flush=True)

    def shutdown(self) -> None:
        self.shutting_down = True
        for _path, media in self.medias:
            element = media.get_element()
            pipeline = element.get_parent() if element is not None else None
            if pipeline is not None:
                pipeline.set_state(self.Gst.State.NULL)


def _check() -> int:
    try:
        Gst, _GstRtsp, _GstRtspServer, _GLib = _load_gi()
        _require_elements(Gst, _VIDEO_ELEMENTS)
    except SetupError as exc:
        print(str(exc), flush=True)
        return 1
    print("OK", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Loopback GStreamer RTSP test server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument(
        "--config", help='JSON {"mounts": [...]}, or "-" to read one line from stdin'
    )
    parser.add_argument("--check", action="store_true", help="only check that GStreamer is usable")
    args = parser.parse_args(argv)

    if args.check:
        return _check()
    if args.config is None:
        _fail("--config is required")
    if not 0 <= args.port <= 65535:
        _fail(f"--port must be in 0..65535, got {args.port}")

    from_stdin = args.config == "-"
    text = sys.stdin.readline() if from_stdin else args.config
    try:
        mounts, auth_method = parse_config(text)
        server = Server(args.host, args.port, mounts, auth_method)
        server.build()
    except SetupError as exc:
        _fail(str(exc))

    GLib = server.GLib
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, server.quit)
    if from_stdin:
        server.watch_stdin_eof()

    try:
        port = server.attach()
        server.start_media(port)
    except SetupError as exc:
        server.shutting_down = True
        _fail(str(exc))

    print(f"READY {port}", flush=True)
    try:
        server.loop.run()
    finally:
        # Do not let a stuck pipeline keep the process alive on shutdown.
        watchdog = threading.Timer(3.0, os._exit, args=(server.exit_status,))
        watchdog.daemon = True
        watchdog.start()
        server.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # gst-rtsp-server threads may still be around; skip interpreter teardown.
    os._exit(server.exit_status)


if __name__ == "__main__":
    sys.exit(main())
