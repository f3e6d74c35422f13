"""Fuzz targets for the RTSP adapter's parsers of untrusted input (issue #12).

* camera source URLs and settings (``rtsp_url``, ``RtspSettings.from_mapping``): only camgate's
  own errors, never the password in one;
* ``redact``: never raises, never shows a password it was given, nor any query, ``;``
  parameter, fragment or ``name=value`` path segment whatever its name (review F8);
* the guard's :class:`ReplyScanner`, which reads what a camera sends on the control connection:
  random bytes and structured replies in random chunks give bytes, CameraProtocolError or
  CameraAuthError (a Basic challenge alone), never another exception or a hang; and what it
  lets through is framed the same way by a port of FFmpeg's ``ff_rtsp_read_reply``, during the
  handshake and while streaming — in particular no ``3xx`` reaches FFmpeg unless the guard's
  policy rewrote its ``Location``, and no Basic challenge reaches it at all.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any
from urllib.parse import quote

import pytest
from camgate.adapters import Credentials
from camgate.errors import CameraAuthError, CameraProtocolError, CamgateError
from camgate_rtsp.adapter import RtspSettings, redact, rtsp_url
from camgate_rtsp.guard import ReplyScanner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ URLs and settings

url_chars = st.characters(codec="utf-8", exclude_categories=("Cs",))
hosts = st.one_of(
    st.sampled_from(
        ["10.0.0.2", "cam.example", "[::1]", "[fe80::1%25eth0]", "", "[::1", "h:99999"]
    ),
    st.text(url_chars, max_size=20),
)
paths = st.text(url_chars, max_size=40)
passwords = st.text(url_chars, min_size=8, max_size=24).filter(lambda p: p.strip() == p)
users = st.text(url_chars, min_size=1, max_size=12)


def _leaks(password: str, text: str, url_without: str) -> bool:
    """True if ``text`` shows ``password`` (raw or percent-encoded) where the URL without the
    credentials would not already show that same text."""
    return any(form in text and form not in url_without for form in (password, quote(password)))


@FAST
@given(
    scheme=st.sampled_from(["rtsp", "rtsps", "http", "RTSP", ""]),
    host=hosts,
    path=paths,
    user=users,
    password=passwords,
)
def test_rtsp_url_gives_a_url_or_a_validation_error(
    scheme: str, host: str, path: str, user: str, password: str
) -> None:
    source = f"{scheme}://{host}{path}"
    try:
        shown = redact(rtsp_url(source, Credentials(user, password)))
    except CamgateError as exc:
        shown = str(exc)
    assert not _leaks(password, shown, source)


@FAST
@given(source=st.text(url_chars, max_size=80), password=passwords)
@example(source="", password="/0000000")  # a ";password=" value holding a "/" (F8)
def test_a_source_with_credentials_in_it_is_never_shown_with_them(
    source: str, password: str
) -> None:
    for template in (
        "rtsp://admin:{p}@{s}",
        "rtsp://{s}?user=admin&password={p}",
        "rtsp://{s};password={p}",
        "rtsp://{s}/user=admin&password={p}&channel=1",
        "rtsp://{s}?token={p}",
    ):
        # A URL carries a password percent-encoded; the raw form is tried where it can be
        # told apart (no "&", ";" or "#" in it, which would end a parameter's value).
        raw = not any(c in password for c in "&;#")
        for pw in (quote(password, safe=""), *([password] if raw else [])):
            url = template.format(s=source, p=pw)
            try:
                shown = rtsp_url(url, None) and ""
            except CamgateError as exc:
                shown = str(exc)
            assert pw not in shown + redact(url) or pw in source


@FAST
@given(st.text(max_size=200))
def test_redact_never_raises(text: str) -> None:
    assert isinstance(redact(text), str)


@FAST
@given(
    host=st.sampled_from(["10.0.0.2", "cam.example:8554", "[::1]:554", "[::1", ""]),
    path=st.text(url_chars, max_size=30),
    name=st.text(url_chars, max_size=8),
    secret=st.text(url_chars, min_size=6, max_size=20),
    form=st.sampled_from(["?{n}={s}", ";{n}={s}", "#{s}", "/{n}={s}", "?a=1&{n}={s}", "?{s}"]),
    userinfo=st.booleans(),
)
@example("cam", "/live", "p", "pw-SECRET10", "?u=admin&{n}={s}", False)
@example("cam", "/live", "pa%73sword", "pw-SECRET11", "?{n}={s}", False)
@example("cam", "/live", "p", "pw@x/SECRET", "?{n}={s}", False)
@example("cam", "/live", "p", "x/pw-SECRET", ";{n}={s}", False)
def test_redact_shows_no_parameter_whatever_its_name(
    host: str, path: str, name: str, secret: str, form: str, userinfo: bool
) -> None:
    """Review F8: no blocklist — a value in the query, a ``;`` parameter, the fragment, a
    ``name=value`` path segment or the user info is never shown, whatever its name."""
    path = "/" + path.lstrip("/")
    url = f"rtsp://{'admin:' + secret + '@' if userinfo else ''}{host}{path}"
    url += form.format(n=name, s=secret)
    shown = redact(url)
    # What is shown is the URL's own scheme, host and path (a secret equal to a piece of them
    # is not a leak: it was never hidden).
    visible = f"rtsp://{host}{path}"
    assert secret not in shown or secret in visible, (url, shown)


setting_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "transport",
                "connect_timeout_s",
                "read_timeout_s",
                "fast_start",
                "buffer_packets",
                "close_wait_s",
                "credentials",
                "ca_file",
                "timeout",
            ]
        ),
        setting_values,
        max_size=4,
    )
)
def test_settings_are_valid_or_a_validation_error(mapping: dict[str, Any]) -> None:
    try:
        s = RtspSettings.from_mapping(mapping)
    except CamgateError:
        return
    options = s.open_options()  # every accepted setting can be handed to FFmpeg
    assert all(isinstance(v, str) for v in options.values())
    for value in (s.connect_timeout_s, s.read_timeout_s, s.close_wait_s):
        assert math.isfinite(value) and value > 0


# ------------------------------------------------------------------ the guard's reply scanner


def _get_word(line: bytes) -> tuple[bytes, bytes]:
    """FFmpeg's get_word: skip spaces/tabs, then copy up to the next one."""
    line = line.lstrip(b" \t")
    m = re.match(rb"[^ \t]*", line)
    assert m is not None
    return m.group(0), line[m.end() :]


def _c_int(text: bytes) -> int:
    """atoi / strtol(…, 10): leading C whitespace, a sign, digits."""
    m = re.match(rb"[ \t\n\v\f\r]*([+-]?[0-9]*)", text)
    digits = m.group(1) if m else b""
    try:
        return int(digits)
    except ValueError:
        return 0


def ffmpeg_replies(data: bytes, *, streaming: bool = False) -> list[tuple[int, bytes]]:
    """(status, Location) of each complete reply, as ``ff_rtsp_read_reply`` frames ``data``
    (skipping interleaved packets, answering requests, reading Content-Length bodies).

    During the handshake FFmpeg skips a whole interleaved packet (``ff_rtsp_skip_packet``);
    once ``streaming``, ``ff_rtsp_tcp_read_packet`` reads it instead and, for one shorter than
    8 bytes, skips only its 4-byte prefix and reads the payload as RTSP text
    (``if (len > buf_size || len < 8) goto redo;``), starting a new message."""
    pos, out = 0, []
    while True:
        status, location, length, count, request = 0, b"", 0, 0, False
        while True:
            line = bytearray()
            while True:
                if pos >= len(data):
                    return out
                ch = data[pos]
                pos += 1
                if ch == 0x0A:
                    break
                if ch == 0x24 and not line:  # "$" first on a line: skip a packet
                    if pos + 3 > len(data):
                        return out
                    size = int.from_bytes(data[pos + 1 : pos + 3], "big")
                    pos += 3 if streaming and size < 8 else 3 + size
                    if streaming:  # the reply read so far is dropped; a new one starts
                        status, location, length, count, request = 0, b"", 0, 0, False
                elif ch != 0x0D and len(line) < 4095:
                    line.append(ch)
            text = bytes(line).split(b"\0")[0]
            if not text:
                break
            if count == 0:
                word, rest = _get_word(text)
                if word.startswith(b"RTSP/"):
                    status = _c_int(_get_word(rest)[0])
                else:
                    request = True
            elif text[:9].lower() == b"location:":
                location = text[9:].lstrip(b" \t")
            elif text[:15].lower() == b"content-length:":
                length = _c_int(text[15:])
            count += 1
        if count and not request:  # a reply, complete once its header is
            out.append((status, location))
        if length > 0:
            if pos + length > len(data):
                return out
            pos += length


GUARD = "rtsp://127.0.0.1:1/ok"


class Policy:
    """Follows a redirect to ``/same`` (rewritten to GUARD), refuses any other."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, location: str) -> str:
        self.asked.append(location)
        if location.endswith("/same"):
            return GUARD
        raise CameraProtocolError(f"refused {redact(location)!r}")


def _scan(chunks: list[bytes], source: str | None = None) -> tuple[bytes, ReplyScanner, Policy]:
    policy = Policy()
    scanner = ReplyScanner(policy, source=source)
    out = b"".join(scanner.feed(chunk) for chunk in chunks)
    return out, scanner, policy


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _check(data: bytes, cuts: list[int]) -> None:
    try:
        out, scanner, policy = _scan(_chunked(data, cuts))
    except (CameraProtocolError, CameraAuthError):
        return
    # No Basic challenge reaches FFmpeg over plain rtsp (review F4), in any message.
    for line in out.replace(b"\r", b"").split(b"\n"):
        value = line.partition(b":")[2].lstrip(b" \t")
        if line[:17].lower() == b"www-authenticate:":
            assert value[:6].lower() != b"basic ", out
    seen = ffmpeg_replies(out)
    # FFmpeg frames what it receives as the scanner did, reply for reply, whether it reads
    # during the handshake or while streaming...
    assert [s for s, _ in seen] == scanner.statuses
    assert [s for s, _ in ffmpeg_replies(out, streaming=True)] == scanner.statuses
    # ...and the same as the camera's own bytes: nothing was hidden in a body or a frame.
    assert [s for s, _ in ffmpeg_replies(data)][: len(seen)] == scanner.statuses
    for status, location in seen:
        if 300 <= status < 400:  # only a redirect the policy rewrote reaches FFmpeg
            assert location == GUARD.encode(), (status, location)
    assert len(policy.asked) == sum(300 <= s < 400 for s in scanner.statuses)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6))
def test_random_bytes_give_bytes_or_a_protocol_error(data: bytes, cuts: list[int]) -> None:
    _check(data, cuts)


status_lines = st.one_of(
    st.sampled_from([b"RTSP/1.0 200 OK", b"RTSP/1.0 401 Unauthorized", b"RTSP/1.0 302 Found"]),
    st.sampled_from([b"RTSP/1.0 200 OK", b"RTSP/1.0 454 Session Not Found"]),
    st.builds(
        lambda v, c, r: f"{v} {c} {r}".encode(),
        st.sampled_from(
            ["RTSP/1.0", "RTSP/2.0", " RTSP/1.0", "RTSP/1.0\t", "rtsp/1.0", "HTTP/1.1"]
        ),
        st.one_of(
            st.integers(100, 599).map(str),
            st.sampled_from(["0302", "302x", "+302", " 302", "3O2", "", "30"]),
        ),
        st.sampled_from(["OK", "Found", "Moved", ""]),
    ),
    st.sampled_from([b"SET_PARAMETER rtsp://x/ RTSP/1.0", b"REDIRECT * RTSP/1.0", b"GARBAGE"]),
)
header_lines = st.one_of(
    st.sampled_from([b"CSeq: 2", b"Session: 12345678;timeout=60", b"Public: OPTIONS, DESCRIBE"]),
    st.sampled_from(
        [
            b"CSeq: 2",
            b"Location: rtsp://10.9.9.9:554/other",
            b"Location: rtsp://cam/same",
            b"location:rtsp://cam/same",
            b"Location: ",
            b"Content-Length: 4",
            b"Content-Length:  4 ",
            b"Content-Length: -1",
            b"Content-Length: +4",
            b"Content-Length: 4x",
            b"content-length: 4",
            b"CONTENT-LENGTH:0",
            b"Content-Length: 60",
            b" Content-Length: 4",
            b"Content-Length : 4",
            b"Transport: RTP/AVP;unicast;client_port=5000-5001;source=6.6.6.6",
            b"$\x00\x00\x02ab",
            b"$\x00\x00\x06",
            b"\r$\x00\x00\x30",
            b"X-Junk: \x00",
            b'WWW-Authenticate: Basic realm="x"',
            b'www-authenticate:basic realm="x"',
            b'WWW-Authenticate: Digest realm="x", nonce="1"',
        ]
    ),
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),
)
eols = st.sampled_from([b"\r\n", b"\n", b"\r\r\n"])


#: A redirect hidden where a parser that frames differently from FFmpeg would not look.
SMUGGLED = b"RTSP/1.0 302 Found\r\nLocation: rtsp://10.9.9.9/x\r\n\r\n"


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A reply or request as a camera might send it, with a Content-Length that may or may not
    be spelt so that FFmpeg reads it, and a body that may hide another reply."""
    eol = draw(eols)
    body = draw(st.one_of(st.binary(max_size=8), st.just(SMUGGLED)))
    headers = draw(st.lists(header_lines, max_size=4))
    for _ in range(draw(st.integers(0, 2))):  # none, one, or one too many
        name = draw(
            st.sampled_from(
                [b"Content-Length:", b"content-length:", b" Content-Length:", b"Content-Length :"]
            )
        )
        spelling = draw(st.sampled_from([b" %d", b"%d", b"\t%d ", b"+%d", b"-%d", b"0%d", b"%dx"]))
        length = draw(st.sampled_from([len(body), len(body) // 2, 0]))
        headers.insert(draw(st.integers(0, len(headers))), name + spelling % length)
    head = eol.join([draw(status_lines), *headers])
    frame = draw(
        st.sampled_from(
            [b"", b"$\x00\x00\x08RTSP/1.0", b"$\x00\x00\x04RTSP", b"$\x01\x00\x00", b"\r\n"]
        )
    )
    return frame + head + eol + eol + body


@settings(max_examples=500, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=4), st.lists(st.integers(0, 400), max_size=6))
# Framing differences that would hide a redirect in a body or a frame, tried every run:
@example([b"RTSP/1.0 200 OK\r\n Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED], [])
@example(
    [
        b"RTSP/1.0 200 OK\r\nContent-Length: %d\r\nContent-Length: 0\r\n\r\n" % len(SMUGGLED)
        + SMUGGLED
    ],
    [],
)
@example([b"RTSP/1.0 200 OK\r\nContent-Length: +%d\r\n\r\n" % len(SMUGGLED) + SMUGGLED], [])
@example([b"RTSP/1.0 200 OK\r\n$\x00\x00\x02\r\n\r\nCSeq: 1\r\n\r\n" + SMUGGLED], [])
@example([b"RTSP/1.0 200 OK\r\nX: 1\x00\r\nContent-Length: 0\r\n\r\n" + SMUGGLED], [5])
# A frame shorter than 8 bytes: streaming FFmpeg reads its payload as text, so "RTSP/1." and
# the next frame's prefix make a status line, and the "frame" after it a 302 (review F7).
@example(
    [b"$\x00\x00\x07RTSP/1.$\x01\x20\x20 302 Found\r\nLocation: " + b"rtsp://10.9.9.9/x\r\n\r\n"],
    [],
)
def test_structured_replies_are_framed_as_ffmpeg_frames_them(
    parts: list[bytes], cuts: list[int]
) -> None:
    _check(b"".join(parts), cuts)


def test_a_redirect_elsewhere_is_refused_and_its_own_address_rewritten() -> None:
    elsewhere = b"RTSP/1.0 302 Found\r\nCSeq: 3\r\nLocation: rtsp://10.9.9.9/x\r\n\r\n"
    with pytest.raises(CameraProtocolError, match=r"10\.9\.9\.9"):
        _scan([elsewhere])
    same = b"RTSP/1.0 301 Moved\r\nLocation: rtsp://cam/same\r\nCSeq: 3\r\n\r\n"
    out, _, policy = _scan([same[:20], same[20:]])
    assert policy.asked == ["rtsp://cam/same"]
    assert ffmpeg_replies(out) == [(301, GUARD.encode())]


def test_interleaved_media_passes_unchanged_in_any_chunking() -> None:
    payloads = (b"x" * 1400, b"RTSP/1.0", b"\x80" * 12)
    frames = b"".join(b"$\x00" + len(p).to_bytes(2, "big") + p for p in payloads)
    reply = b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 3\r\n\r\nabc"
    data = frames + reply + frames
    for size in (1, 3, 7, 1500, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        out, scanner, _ = _scan(chunks)
        assert out == data and scanner.statuses == [200]


def test_udp_transport_is_pinned_to_the_camera() -> None:
    reply = (
        b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n"
        b"Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=7000-7001;source=6.6.6.6"
        b"\r\n\r\n"
    )
    out, _, _ = _scan([reply], source="10.0.0.2")
    transport = [line for line in out.split(b"\r\n") if line.startswith(b"Transport:")]
    assert transport == [
        b"Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=7000-7001;source=10.0.0.2"
    ]


@pytest.mark.parametrize("size", [0, 1, 7])
def test_an_interleaved_frame_shorter_than_8_bytes_ends_the_connection(size: int) -> None:
    # Streaming FFmpeg would read its payload as RTSP text, the scanner would skip it (F7).
    frame = b"$\x00" + size.to_bytes(2, "big") + b"RTSP/1.0"[:size]
    for chunks in ([frame], [frame[:2], frame[2:]], [frame[:4]]):
        with pytest.raises(CameraProtocolError, match="interleaved frame"):
            _scan(chunks)
    out, _, _ = _scan([b"$\x00\x00\x08RTSP/1.0"])  # 8 bytes: a frame either way
    assert out == b"$\x00\x00\x08RTSP/1.0"


_SDP = b"v=0\r\ns=cam\r\nm=audio 0 RTP/AVP 97\r\na=control:trackID=1\r\n"
_DESCRIBE = (
    b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n\r\n" + _SDP
)


@FAST
@given(st.lists(st.integers(min_value=1, max_value=len(_DESCRIBE)), max_size=12))
def test_the_sdp_media_are_read_whatever_the_chunking(cuts: list[int]) -> None:
    """The scanner notes an SDP's media types (how the adapter tells an audio-only camera's
    "no video" from other failures) however the reply is split, and passes the bytes on as
    they came."""
    scanner = ReplyScanner(lambda location: location)
    bounds = [0, *sorted(set(cuts)), len(_DESCRIBE)]
    out = b"".join(scanner.feed(_DESCRIBE[a:b]) for a, b in itertools.pairwise(bounds))
    assert out == _DESCRIBE
    assert scanner.sdp_media == frozenset({"audio"})
