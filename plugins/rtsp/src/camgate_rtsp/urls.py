"""Redaction of camera URLs for messages, logs and reprs (shared by the RTSP and ONVIF adapters)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact", "scrub_text"]

#: Parameter names that carry credentials or bearer secrets in vendors' URL forms
#: (``?user=admin&password=…``, ``;password=…``, ``/user=admin&password=…``, ``?token=…``,
#: ``?X-Amz-Signature=…``): any name containing one of these stems, case-insensitive.
_SECRET_STEMS = (
    "user",
    "usr",
    "login",
    "pass",
    "pwd",
    "pw",
    "token",
    "auth",
    "key",
    "sig",
    "secret",
    "cred",
    "session",
)
_NAME = r"[^=&;/?#\s]*(?:" + "|".join(_SECRET_STEMS) + r")[^=&;/?#\s]*"
#: ``name=value`` after the start or a separator; the value runs to the next ``&``, ``;`` or
#: ``#`` (a ``/`` or ``?`` does not end it: an unencoded password may hold one).
_SECRET_PARAM = re.compile(rf"(?i)(^|[?&;/#])({_NAME})=([^&;#]*)")
#: ``scheme://userinfo@`` anywhere in free text (FFmpeg's log lines, vendor replies).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#]*@")
#: An ``Authorization:`` header line (FFmpeg logs the requests it sends at trace level).
_AUTH_HEADER = re.compile(r"(?im)^([ \t]*(?:proxy-)?authorization[ \t]*:).*$")


def _params(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", text)


def redact(url: str) -> str:
    """``url`` without what may be a secret, safe for messages, logs and reprs.

    Drops the user and password (``user:password@``; everything up to the last ``@`` goes, so
    an unencoded ``/``, ``?``, ``#`` or ``@`` in a password cannot keep part of it — the cut is
    then shown as ``***@``) and the fragment, and
    replaces the value of every credential-looking parameter — in the query, as a ``;name=``
    path parameter or as a ``/name=value&…`` path segment (user, password, pwd, pass, token,
    auth, key, signature, session…, case-insensitive) — with ``***``. Never raises: text that
    is not a URL is scrubbed the same way.
    """
    scheme, sep, rest = _params(url).partition("://")  # parameters first: a value may hold "@"
    if not sep:
        return scheme
    marker = ""
    if "@" in rest:  # user:password@ — cut to the last "@", wherever it is
        before, _, rest = rest.rpartition("@")
        if any(c in before for c in "/?#"):  # "/", "?" or "#" in a password, or an "@" later on
            marker = "***@"
    rest = marker + rest
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    except ValueError:  # e.g. an unbalanced "[" in the host: keep the text, minus the fragment
        clean = f"{scheme}://{rest.split('#', 1)[0]}"
    return _params(clean)


def scrub_text(text: str) -> str:
    """Free text (a log line) with URL userinfo, credential parameters and the values of
    ``Authorization`` header lines replaced by ``***``."""
    text = _AUTH_HEADER.sub(r"\1 ***", text)
    text = _USERINFO.sub(r"\1***@", text)
    return _params(text)
