"""Redaction of camera URLs for messages, logs and reprs (shared by the RTSP and ONVIF adapters)."""

from __future__ import annotations

import re

from camgate.models import redact_address

__all__ = ["redact", "scrub_text"]

#: Parameter names that carry credentials or bearer secrets in vendors' URL forms
#: (``?user=admin&password=…``, ``;password=…``, ``/user=admin&password=…``, ``?token=…``,
#: ``?X-Amz-Signature=…``): any name containing one of these stems, case-insensitive. Only a
#: second layer for free text that is not a ``scheme://`` URL: URLs are shown by :func:`redact`,
#: which keeps no parameter at all.
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
#: A ``scheme://…`` URL in free text, up to white space or a quote.
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s\"'<>]*")
#: An ``Authorization:`` header line (FFmpeg logs the requests it sends at trace level).
_AUTH_HEADER = re.compile(r"(?im)^([ \t]*(?:proxy-)?authorization[ \t]*:).*$")


def _params(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", text)


#: How every message, log record and repr of the RTSP and ONVIF adapters shows a URL:
#: ``scheme://host:port/path`` only (:func:`camgate.models.redact_address`).
redact = redact_address


def scrub_text(text: str) -> str:
    """Free text (a log line) with every ``scheme://…`` URL in it shown as :func:`redact`
    shows it, and the values of ``Authorization`` header lines and of credential-looking
    parameters outside such URLs (a relative ``Location``) replaced by ``***``."""
    text = _AUTH_HEADER.sub(r"\1 ***", text)
    text = _USERINFO.sub(r"\1***@", text)
    text = _URL.sub(lambda m: redact(m.group(0)), text)
    return _params(text)
