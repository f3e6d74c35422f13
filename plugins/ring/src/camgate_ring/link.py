"""Linking an owner's Ring account to the partner: OAuth 2 authorisation code with PKCE.

What it promises:

- :func:`authorization_request` makes the address the owner opens (``response_type=code``,
  the partner's ``client_id``, the ``redirect_uri``, a fresh random ``state`` and a PKCE
  ``code_challenge`` with ``S256``). The ``state`` and the PKCE verifier stay in the returned
  :class:`LinkRequest` and never show in a repr.
- :func:`finish` takes the query of the redirect the owner's browser came back with, checks it
  (:func:`parse_callback`: the ``state`` compared in constant time, an ``error`` such as
  ``access_denied`` reported as the owner's refusal), exchanges the code at the token URL
  (``grant_type=authorization_code`` with the verifier) and hands the tokens to ``on_tokens``
  before returning them: a link whose tokens could not be persisted is not a link.
- :func:`link_loopback` is the same flow on a loopback redirect (``http://127.0.0.1:PORT/
  callback``) for ``camgate ring link``; the owner portal calls :func:`authorization_request`
  and :func:`finish` with its own redirect address.
- :func:`exchange_code` is the code exchange alone, which is also what a partner's Token
  Exchange URL does when Ring pushes a code to it (docs/ring.md, "Linking").

Errors (camgate.errors): the owner refused, a wrong ``state``, a refused code →
CameraAuthError; a partner id or secret refused, no authorisation URL configured → ConfigError;
a callback that is not one → ValidationError; Ring unreachable → CameraUnreachable. No message,
log record or repr holds the code, the state, the verifier, a token or the client secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import anyio.abc
import attrs
from camgate.adapters import Secret
from camgate.errors import (
    CameraAuthError,
    CameraProtocolError,
    ConfigError,
    ValidationError,
)
from camgate.models import redact_address

from camgate_ring.partner import (
    MAX_BODY,
    Tokens,
    _token_reply,
    check_base_url,
    post_token_form,
)

__all__ = [
    "CALLBACK_PATH",
    "Callback",
    "LinkRequest",
    "authorization_request",
    "exchange_code",
    "finish",
    "link_loopback",
    "parse_callback",
]

log = logging.getLogger(__name__)

#: The path of the loopback redirect ``camgate ring link`` listens on.
CALLBACK_PATH = "/callback"
#: The longest callback request (line and headers) read from the browser.
MAX_CALLBACK = 8 * 1024
_MAX_PARAM = 2048


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """The ``S256`` code challenge of a PKCE ``verifier`` (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@attrs.frozen
class LinkRequest:
    """One authorisation in progress: ``url`` is what the owner opens, ``redirect_uri`` where
    the browser comes back; ``state`` and ``verifier`` (PKCE) are secrets kept for
    :func:`finish`."""

    url: str = attrs.field(repr=False)
    redirect_uri: str
    state: Secret = attrs.field(repr=False)
    verifier: Secret = attrs.field(repr=False)


@attrs.frozen
class Callback:
    """A redirect's query, parsed: the ``code`` (a secret) or the ``error`` Ring named, and the
    ``state`` it carried (a secret)."""

    code: Secret | None = attrs.field(repr=False)
    state: Secret | None = attrs.field(repr=False)
    error: str | None = None


def authorization_request(
    authorize_url: str, client_id: str, redirect_uri: str, scope: str = ""
) -> LinkRequest:
    """The address an owner opens to link their account (module docstring). ConfigError when
    ``authorize_url`` is empty: Ring publishes no partner-initiated authorisation address
    (docs/ring.md), so it must be configured."""
    if not authorize_url:
        raise ConfigError(
            "Ring: setting authorize_url is required to link from camgate (Ring documents "
            "linking started in its app store; see docs/ring.md)"
        )
    base = check_base_url(authorize_url, "authorize_url")
    redirect = urlsplit(redirect_uri)
    if redirect.scheme not in ("http", "https") or not redirect.hostname or redirect.fragment:
        raise ValidationError("Ring linking: the redirect address must be an http(s) URL")
    if not client_id:
        raise ConfigError("Ring: setting client_id is required to link an account")
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if scope:
        query["scope"] = scope
    return LinkRequest(
        url=f"{base}?{urlencode(query)}",
        redirect_uri=redirect_uri,
        state=Secret(state),
        verifier=Secret(verifier),
    )


def _param(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValidationError(f"Ring linking: the redirect carries {name} twice")
    value = values[0]
    if not value or len(value) > _MAX_PARAM or not value.isprintable():
        raise ValidationError(f"Ring linking: the redirect's {name} is not a short text")
    return value


def parse_callback(query: str) -> Callback:
    """The redirect's query (the part after ``?``), parsed; ValidationError (quoting nothing)
    when it carries neither a code nor an error, or a parameter twice, empty or too long."""
    if not isinstance(query, str) or len(query) > MAX_CALLBACK:
        raise ValidationError("Ring linking: the redirect's query is too long")
    try:
        params = parse_qs(query, keep_blank_values=True, max_num_fields=32)
    except ValueError:
        raise ValidationError("Ring linking: the redirect's query does not parse") from None
    code, state = _param(params, "code"), _param(params, "state")
    error = _param(params, "error")
    if code is None and error is None:
        raise ValidationError("Ring linking: the redirect carries neither a code nor an error")
    if error is not None and not all(ch.isalnum() or ch in "_-." for ch in error):
        error = "unknown_error"
    return Callback(
        code=Secret(code) if code is not None else None,
        state=Secret(state) if state is not None else None,
        error=error,
    )


def _check_callback(request: LinkRequest, callback: Callback) -> Secret:
    """The code of a callback that answers ``request``; CameraAuthError otherwise."""
    given = callback.state.reveal() if callback.state is not None else ""
    if not hmac.compare_digest(given.encode(), request.state.reveal().encode()):
        raise CameraAuthError(
            "Ring linking: the redirect's state does not match this link request (refused: "
            "it may be forged; start the link again)"
        )
    if callback.error is not None:
        if callback.error == "access_denied":
            raise CameraAuthError("Ring linking: the owner declined to link the account")
        raise CameraAuthError(f"Ring linking: Ring refused the link ({callback.error})")
    assert callback.code is not None  # parse_callback: a code or an error
    return callback.code


async def exchange_code(
    *,
    token_url: str,
    client_id: str,
    client_secret: Secret,
    code: Secret,
    redirect_uri: str | None = None,
    verifier: Secret | None = None,
    request_timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> Tokens:
    """Exchange an authorisation ``code`` for the account's tokens at ``token_url`` (form:
    ``grant_type=authorization_code``, the code, the partner's id and secret, and when given
    the ``redirect_uri`` and the PKCE ``verifier``). Ring wants this within a minute of the
    code. No redirect is followed; errors as the module docstring says."""
    url = check_base_url(token_url, "token_url")
    where = redact_address(url)
    form = {
        "grant_type": "authorization_code",
        "code": code.reveal(),
        "client_id": client_id,
        "client_secret": client_secret.reveal(),
    }
    if redirect_uri is not None:
        form["redirect_uri"] = redirect_uri
    if verifier is not None:
        form["code_verifier"] = verifier.reveal()
    response = await post_token_form(url, form, request_timeout_s=request_timeout_s)
    status = response.status_code
    if status == 200:
        return _token_reply(response.content, None, clock(), where)
    reason = _oauth_error(response.content)
    if status == 401 or reason == "invalid_client":
        raise ConfigError(f"{where}: Ring refused the partner's client id or secret ({status})")
    if status == 400:
        raise CameraAuthError(
            f"{where}: Ring refused the authorisation code ({reason or status}): it expired "
            "(a minute), was used, or was not issued for this redirect; link again"
        )
    raise CameraProtocolError(f"{where}: unexpected answer {status} to the code exchange")


def _oauth_error(content: bytes) -> str:
    """The OAuth ``error`` code of a reply (a short word), or the empty string."""
    try:
        error = json.loads(content[:MAX_BODY]).get("error")
    except (ValueError, AttributeError):
        return ""
    if isinstance(error, str) and len(error) <= 64 and error.replace("_", "").isalnum():
        return error
    return ""


async def finish(
    request: LinkRequest,
    query: str,
    *,
    token_url: str,
    client_id: str,
    client_secret: Secret,
    on_tokens: Callable[[Tokens], None],
    request_timeout_s: float = 10.0,
) -> Tokens:
    """Complete ``request`` with the redirect's ``query``: check it, exchange the code, persist
    the tokens through ``on_tokens`` (ConfigError when that fails) and return them."""
    code = _check_callback(request, parse_callback(query))
    tokens = await exchange_code(
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        code=code,
        redirect_uri=request.redirect_uri,
        verifier=request.verifier,
        request_timeout_s=request_timeout_s,
    )
    try:
        on_tokens(tokens)
    except Exception as exc:
        raise ConfigError(
            f"Ring linking: the tokens could not be persisted ({type(exc).__name__}); the link "
            "is not usable: link again once the token file's folder is writable"
        ) from None
    log.info("Ring: account linked (tokens persisted)")
    return tokens


_PAGE = (
    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
    "Content-Length: {length}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
)


async def _answer(stream: anyio.abc.ByteStream, status: str, text: str) -> None:
    body = f"<!doctype html><title>camgate</title><p>{text}</p>".encode()
    head = _PAGE.format(status=status, length=len(body)).encode()
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.send(head + body)


async def _read_target(stream: anyio.abc.ByteStream) -> str | None:
    """The request target of a ``GET`` on ``stream``, None when it is not one."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_CALLBACK:
        try:
            chunk = await stream.receive(4096)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return None
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1."):
        return None
    return parts[1]


async def link_loopback(
    *,
    authorize_url: str,
    token_url: str,
    client_id: str,
    client_secret: Secret,
    on_tokens: Callable[[Tokens], None],
    show: Callable[[str], None],
    port: int = 0,
    timeout_s: float = 600.0,
    scope: str = "",
    request_timeout_s: float = 10.0,
) -> Tokens:
    """Link an account through a loopback redirect: listen on ``127.0.0.1:port`` (0: any free
    port), call ``show(url)`` with the authorisation address, wait up to ``timeout_s`` for the
    browser's redirect to :data:`CALLBACK_PATH`, then :func:`finish`. Other requests (a
    favicon) get 404 and the wait goes on; the first callback decides (a wrong state or a
    refusal ends the link with its error). CameraAuthError when no callback came in time."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 (anyio, not Django)
        request = authorization_request(
            authorize_url, client_id, f"http://127.0.0.1:{bound}{CALLBACK_PATH}", scope
        )
        result: list[Tokens | BaseException] = []
        done, finished = anyio.Event(), anyio.Event()

        async def serve(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                target = await _read_target(stream)
                path, _, query = (target or "").partition("?")
                if path != CALLBACK_PATH or done.is_set():
                    await _answer(stream, "404 Not Found", "Not the link callback.")
                    return
                done.set()
                try:
                    tokens = await finish(
                        request,
                        query,
                        token_url=token_url,
                        client_id=client_id,
                        client_secret=client_secret,
                        on_tokens=on_tokens,
                        request_timeout_s=request_timeout_s,
                    )
                except Exception as exc:
                    result.append(exc)
                    await _answer(stream, "400 Bad Request", "The Ring account was not linked.")
                    finished.set()
                    return
                result.append(tokens)
                await _answer(stream, "200 OK", "Your Ring account is linked. Close this page.")
                finished.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, serve, tasks)
            show(request.url)
            with anyio.move_on_after(timeout_s):
                await finished.wait()
            tasks.cancel_scope.cancel()
    if not result:
        raise CameraAuthError(f"Ring linking: no answer from the browser within {timeout_s:g} s")
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
