"""The one place that turns errors into HTTP responses.

Every error response has the shape of ``ProblemDetails`` (RFC 9457), whose ``type``
is one of the codes in ``PROBLEM_TYPES``. Nothing else in the HTTP layer builds an
error body.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from service.bundle.store import NotReadyError
from service.core.errors import RequestError, TailorError
from service.http.body import BodyTimeoutError, BodyTooLargeError, ClientGoneError, UnsupportedMediaError
from service.http.wire import ErrorItem, ProblemDetails

log = logging.getLogger("tailor.http")


class UnauthorizedError(TailorError):
    """An admin call without the right bearer token."""


class AdminDisabledError(TailorError):
    """An admin call while no admin token is set: the endpoints do not exist."""


MEDIA_TYPE = "application/problem+json"

# code → (status, title). Codes are part of the API: clients may switch on them.
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "invalid-request": (400, "The request is not valid"),
    "unauthorized": (401, "Authentication required"),
    "incomplete-body": (400, "The request body ended before it was complete"),
    "not-found": (404, "No such endpoint"),
    "method-not-allowed": (405, "Method not allowed on this endpoint"),
    "body-timeout": (408, "The request body did not arrive in time"),
    "body-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "The request body is not JSON"),
    "not-ready": (503, "No bundle is loaded yet"),
    "internal": (500, "Internal error"),
}

_LITESTAR_EXCEPTIONS: tuple[tuple[type[HTTPException], str], ...] = (
    (RequestEntityTooLarge, "body-too-large"),
    (NotFoundException, "not-found"),
    (MethodNotAllowedException, "method-not-allowed"),
)


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Exception handler for every exception the app lets through."""
    status, body, headers = problem(exc)
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers or None)


def problem(exc: Exception) -> tuple[int, bytes, dict[str, str]]:
    """The status, problem+json body and extra headers for an error: for the routes and the lean path alike."""
    code, detail, errors = _classify(exc)
    status, title = PROBLEM_TYPES[code]
    body = ProblemDetails(type=code, title=title, status=status, detail=detail, errors=errors)
    return status, msgspec.json.encode(body), _headers(code, exc)


def _headers(code: str, exc: Exception) -> dict[str, str]:
    if code == "unauthorized":
        return {"www-authenticate": 'Bearer realm="tailor-admin"'}
    if code == "body-timeout":
        return {"connection": "close"}  # the rest of a slow body is not worth waiting for
    allow = exc.headers.get("allow") if isinstance(exc, HTTPException) and exc.headers else None
    return {"allow": allow} if allow else {}


# Our own errors whose message is the detail, and the problem type each one is.
_DOMAIN_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (NotReadyError, "not-ready"),
    (UnauthorizedError, "unauthorized"),
    (AdminDisabledError, "not-found"),
    (UnsupportedMediaError, "unsupported-media-type"),
    (BodyTooLargeError, "body-too-large"),
    (BodyTimeoutError, "body-timeout"),
    (ClientGoneError, "incomplete-body"),
)

# Expected when clients misbehave or leave: a line at INFO, never a stack trace at ERROR.
_CLIENT_FAULTS = (ClientGoneError, BodyTimeoutError)


def _classify(exc: Exception) -> tuple[str, str, list[ErrorItem]]:
    if isinstance(exc, RequestError):
        return "invalid-request", exc.message, [ErrorItem(exc.where, exc.message)]
    for kind, code in _DOMAIN_ERRORS:
        if isinstance(exc, kind):
            if isinstance(exc, _CLIENT_FAULTS):
                log.info("request not completed: %s", exc)
            return code, str(exc), []
    for litestar_kind, code in _LITESTAR_EXCEPTIONS:
        if isinstance(exc, litestar_kind):
            return code, str(exc.detail), []
    unreadable = _unreadable_body(exc)
    if unreadable is not None:
        return "invalid-request", unreadable, [ErrorItem("$", unreadable)]
    log.error("unhandled error", exc_info=exc)
    return "internal", "an unexpected error; it has been logged", []


def _unreadable_body(exc: Exception) -> str | None:
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        # Any other 4xx Litestar raises (the bodies are ours to read: see body.py) is the client's.
        return str(exc.detail)
    return None
