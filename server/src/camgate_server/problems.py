"""Every error as an RFC 9457 problem document (``application/problem+json``).

A problem names camgate's error twice: ``type`` is ``urn:camgate:problem:<ErrorName>`` and the
extension member ``error`` is ``<ErrorName>`` (the class name in :mod:`camgate.errors` or
:mod:`camgate_server.errors`), so a client can branch on either. ``detail`` is the error's own
message, which camgate keeps free of secrets; an unexpected exception is answered with a
generic 500 whose detail says nothing about it (it is logged by class name only). Request
validation errors list where and what, never the value that was sent (it may be a password).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from camgate.errors import (
    AccessDenied,
    AdapterError,
    AuditError,
    CamgateError,
    ConsentRevoked,
    GrantError,
    GrantExpired,
    GrantReplayed,
    NotFound,
    RequestExpired,
    StorageError,
    ValidationError,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from camgate_server.errors import (
    Forbidden,
    InviteInvalid,
    NotAuthenticated,
    TooManyAttempts,
)

__all__ = ["PROBLEM_JSON", "RESPONSES", "install", "problem", "status_of"]

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("camgate_server")

#: Most specific first: the first class an error is an instance of gives its status.
_STATUS: tuple[tuple[type[CamgateError], int], ...] = (
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (AccessDenied, 403),
    (NotFound, 404),
    (InviteInvalid, 410),
    (RequestExpired, 410),
    (GrantExpired, 410),
    (GrantReplayed, 410),
    (ConsentRevoked, 410),
    (GrantError, 403),
    (ValidationError, 422),
    (TooManyAttempts, 429),
    (AdapterError, 502),
    (StorageError, 503),
    (AuditError, 503),
)
_HTTP_NAMES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    415: "UnsupportedMediaType",
}


#: The schema of every problem document (extension members such as ``errors``, ``reasons``,
#: ``decision`` and ``retry_after_s`` come on top).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail", "error"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "error": {"type": "string", "description": "camgate's error name"},
    },
    "additionalProperties": True,
}
_MEANS = {
    400: "the request could not be read",
    401: "no valid session or token",
    403: "the role, the token's scopes or the CSRF token do not allow it; or access denied",
    404: "no such resource, or not the caller's",
    410: "the invite or the held request is gone",
    422: "the request is not valid",
    429: "too many failed logins",
    502: "the camera or its adapter failed",
    503: "the store or the audit log failed",
}
#: What every route may answer besides its success, for the OpenAPI document (agencies'
#: code generators, and the schemathesis run that checks each answer against it).
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": means, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
    for status, means in _MEANS.items()
}


def status_of(exc: CamgateError) -> int:
    """The HTTP status a camgate error is answered with (500 for one not listed)."""
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def problem(
    status: int,
    error: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem document response: ``type``, ``title``, ``status``, ``detail``, ``error`` and
    any extension members."""
    body = {
        "type": f"urn:camgate:problem:{error}",
        "title": error,
        "status": status,
        "detail": detail,
        "error": error,
        **extensions,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _camgate(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CamgateError)
    status = status_of(exc)
    name = type(exc).__name__
    headers: dict[str, str] = {}
    extensions: dict[str, Any] = {}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after_s)
        extensions["retry_after_s"] = exc.retry_after_s
    if isinstance(exc, NotAuthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="camgate"'
    if isinstance(exc, AccessDenied):
        decision = exc.decision.to_json()
        extensions["reasons"] = exc.decision.reasons
        extensions["decision"] = decision
    if status == 500:
        _log.error("unexpected camgate error %s", name)
        return problem(500, name, "the server could not complete the request")
    return problem(status, name, str(exc), headers=headers or None, **extensions)


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    name = _HTTP_NAMES.get(exc.status_code, "HttpError")
    detail = exc.detail if isinstance(exc.detail, str) else name
    return problem(exc.status_code, name, detail, headers=exc.headers)


def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem(422, "ValidationError", f"the request is not valid: {where}", errors=errors)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    _log.error("unexpected error %s", type(exc).__name__)
    return problem(500, "InternalError", "the server could not complete the request")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""
    app.add_exception_handler(CamgateError, _camgate)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
