"""OFREP v0.3, the OpenFeature Remote Evaluation Protocol: a translation of ``/v1/decide``.

A flag is a placement: its value is the variant's content, its variant the variant key. The
decision, its event and its metrics are ``Decisions.decide``'s, as for ``/v1/decide``; nothing
is decided here. docs/adr/0006-openfeature-remote-evaluation.md records the wire format and
the choices the protocol left open (reasons outside its enum, the consent key, the ETag).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery
from litestar.response import Stream

from service.bundle.store import BundleStore
from service.core.errors import RequestError, TailorError
from service.http import wire
from service.http.body import DuplicateKeyError
from service.http.decisions import Decisions
from service.settings import Settings

T = TypeVar("T")

PREFIX = "/ofrep/v1"
BULK_PATH = f"{PREFIX}/evaluate/flags"
FLAG_PATH = f"{BULK_PATH}/{{key:path}}"  # every segment after it: a decoded key may hold a "/"
FLAG_PREFIX = f"{BULK_PATH}/"
RAW_BULK_PATH = BULK_PATH.encode()
EVENTS_PATH = f"{PREFIX}/events"
ENDPOINTS = frozenset({BULK_PATH, EVENTS_PATH})  # one flag's path names the flag: "other" in the metrics
TARGETING_KEY = "targetingKey"
CONSENT_KEY = "consent"
"""The context key of the visitor's consent: ``{"personalization": bool, "analytics": bool}``, as
in ``/v1``, or the dotted ``consent.personalization``. Absent means no: defaults, nothing logged
against the visitor."""
DECISION_ID_HEADER = "x-tailor-decision-id"
INACTIVITY_DELAY_S = 120  # the protocol's default, said explicitly
WATCH_INTERVAL_S = 0.25  # how often the one notifier of a worker looks at the bundle revision
KEEPALIVE_S = 25.0  # a comment line this often keeps proxies from closing idle streams
RETRY_MS = 1000  # EventSource reconnects this soon after a dropped stream

OfrepReason = Literal["TARGETING_MATCH", "SPLIT", "DEFAULT"]
ErrorCode = Literal["FLAG_NOT_FOUND", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "PARSE_ERROR", "GENERAL"]
Metadata = dict[str, str | int | float | bool]

# Our reason → OFREP's. OFREP's enum has no DEFAULT; OpenFeature's reasons do, and providers pass
# it through. Our finer reason is kept in the flag's metadata as ``tailorReason``.
REASONS: dict[str, OfrepReason] = {
    "targeting_match": "TARGETING_MATCH",
    "forced": "TARGETING_MATCH",  # a QA visitor named in the experiment: chosen by id, not by the split
    "experiment": "SPLIT",
    "default": "DEFAULT",
    "no_consent": "DEFAULT",
    "holdout": "DEFAULT",
    "no_unit_id": "DEFAULT",
}
STATUS: dict[ErrorCode, int] = {
    "FLAG_NOT_FOUND": 404,
    "TARGETING_KEY_MISSING": 400,
    "INVALID_CONTEXT": 400,
    "PARSE_ERROR": 400,
    "GENERAL": 500,
}


class EvaluationRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    context: dict[str, Any] = {}
    """``targetingKey`` is the visitor id, ``consent`` the consent, every other key an attribute."""


class FlagOut(msgspec.Struct, frozen=True):
    key: str
    reason: OfrepReason
    variant: str
    value: dict[str, Any]
    """The variant's content object."""
    metadata: Metadata
    """``revision``, ``tailorReason``, and ``rule``, ``experiment``, ``arm``, ``decisionId`` when there are."""


class FlagError(msgspec.Struct, frozen=True):
    key: str
    errorCode: ErrorCode  # noqa: N815 - the protocol's field names
    errorDetails: str  # noqa: N815


class BulkError(msgspec.Struct, frozen=True):
    errorCode: ErrorCode  # noqa: N815
    errorDetails: str  # noqa: N815


class GeneralError(msgspec.Struct, frozen=True):
    errorDetails: str  # noqa: N815


class StreamEndpoint(msgspec.Struct, frozen=True):
    requestUri: str  # noqa: N815 - relative to the provider's base URL's origin


class EventStream(msgspec.Struct, frozen=True):
    type: Literal["sse"]
    endpoint: StreamEndpoint
    inactivityDelaySec: int  # noqa: N815


class BulkOut(msgspec.Struct, frozen=True):
    flags: list[Any]
    """Each a FlagOut or a FlagError; typed loosely because msgspec refuses untagged unions of structs."""
    metadata: Metadata
    eventStreams: list[EventStream]  # noqa: N815


class RefetchEvent(msgspec.Struct, frozen=True):
    type: Literal["refetchEvaluation"]
    etag: str
    """The bundle revision now served."""


class OfrepError(TailorError):
    """An evaluation that fails in one of the protocol's error codes."""

    def __init__(self, code: ErrorCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code}: {details}")


# Context → visitor


def visitor_of(context: dict[str, Any]) -> wire.Visitor:
    """The visitor an OFREP context describes, checked as strictly as ``/v1``'s."""
    fields = expand_dotted(context)
    key = fields.pop(TARGETING_KEY, None)
    if key is None or key == "":
        raise OfrepError("TARGETING_KEY_MISSING", f"$.context.{TARGETING_KEY}: the visitor id is required")
    consent = fields.pop(CONSENT_KEY, {})
    try:
        return msgspec.convert({"id": key, "attributes": fields, "consent": consent}, wire.Visitor, strict=True)
    except msgspec.ValidationError as exc:
        raise OfrepError("INVALID_CONTEXT", _context_path(str(exc))) from None


def expand_dotted(context: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``, so a flat context reaches the rules' nested paths."""
    out: dict[str, Any] = {k: v for k, v in context.items() if "." not in k}
    for dotted in sorted(k for k in context if "." in k):
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if type(node) is not dict:
                raise OfrepError("INVALID_CONTEXT", f"$.context['{dotted}']: '{part}' is not an object")
        if leaf in node:
            raise OfrepError("INVALID_CONTEXT", f"$.context['{dotted}']: given twice")
        node[leaf] = context[dotted]
    return out


def _context_path(message: str) -> str:
    for ours, theirs in (("$.id", f"$.context.{TARGETING_KEY}"), ("$.consent", f"$.context.{CONSENT_KEY}")):
        message = message.replace(ours, theirs)
    return message.replace("$.attributes", "$.context")


def _request_error(exc: RequestError) -> OfrepError:
    where = exc.where.replace("$.visitor.attributes", "$.context")
    # A repeated key is an error of the object that holds it: a second `context` is the body's (README's table).
    owner = exc.holder if isinstance(exc, DuplicateKeyError) else exc.where
    code: ErrorCode = "INVALID_CONTEXT" if _in_context(owner) else "PARSE_ERROR"
    return OfrepError(code, f"{where}: {exc.message}")


def _in_context(where: str) -> bool:
    """Is the error the context's (INVALID_CONTEXT) or the body's (PARSE_ERROR)?"""
    where = where.replace("$.visitor.attributes", "$.context")
    return where == "$.context" or where.startswith(("$.context.", "$.context["))


# Decision → flags


def flag_of(key: str, placed: wire.PlacementOut, revision: str, decision_id: str | None) -> FlagOut | FlagError:
    """One placement's result as a flag, or a per-flag failure when it has no variant."""
    if placed.variant is None or placed.reason not in REASONS:
        return FlagError(key, "GENERAL", f"placement '{key}' has no variant ({placed.reason})")
    metadata: Metadata = {"revision": revision, "tailorReason": placed.reason}
    if placed.rule is not None:
        metadata["rule"] = placed.rule
    if placed.experiment is not None:
        metadata["experiment"] = placed.experiment.key
        metadata["arm"] = placed.experiment.arm
    if decision_id is not None:
        metadata["decisionId"] = decision_id
    return FlagOut(key, REASONS[placed.reason], placed.variant, placed.content or {}, metadata)


def etag_of(revision: str, flags: list[FlagOut | FlagError]) -> str:
    """A strong ETag of what the flags are: it changes with the revision and with any flag's result.

    Hashing the results, not only the revision and the context, also catches what time decides
    (an experiment that starts or ends) under the same bundle.
    """
    digest = hashlib.blake2b(msgspec.json.encode([revision, flags]), digest_size=12).hexdigest()
    return f'"{digest}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


# Path → flag key


def flag_key(raw_path: bytes) -> str | None:
    """The decoded flag key of an evaluation path, every slash kept; None for the bulk route.

    Litestar routes on the decoded path with its trailing slashes stripped and repeated ones
    merged, so it read ``flags/home_hero%2F`` as ``home_hero`` and ``flags/%2F`` as the bulk route.
    ``raw_path`` is the path as sent (granian's ASGI) or the decoded one quoted again (the RSGI
    bridge): decoding it gives the key the client encoded, in both.
    """
    path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    _, prefix, key = path.partition(FLAG_PREFIX)
    return key if prefix else None


# Change events


def _closing(
    loop: asyncio.AbstractEventLoop, close: Callable[[], None], previous: Any, number: int, frame: Any
) -> None:
    """A signal handler: close on the loop (a handler may interrupt any line), then the previous one."""
    with contextlib.suppress(RuntimeError):  # the loop has closed already: nothing is left to close
        loop.call_soon_threadsafe(close)
    if callable(previous):
        previous(number, frame)


class _Event:
    """What the shared future resolves to: a new revision, a keepalive tick, or the end."""

    KEEPALIVE = "keepalive"
    CLOSED = "closed"


class ChangeNotifier:
    """One per worker: every open stream awaits the same future, which a new revision resolves.

    One task looks at the revision every WATCH_INTERVAL_S and ticks for keepalives: an idle stream
    costs a suspended generator and nothing else, no thread, timer or poll of its own.
    """

    def __init__(self, revision: Callable[[], str | None], cap: int) -> None:
        self.revision = revision
        self.cap = cap
        self.open = 0
        self._next: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def _future(self) -> asyncio.Future[str]:
        if self._next is None:  # first stream of this worker: start the one watcher on its loop
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            self._task = loop.create_task(self._watch())
            self._close_on_signals(loop)
        return self._next

    def _close_on_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """End the streams when the worker is told to stop; the loop still gets the signal.

        Granian stops a worker with a signal and waits for its open connections before the app's
        shutdown hook runs: one idle stream kept a worker "stopping" for eleven minutes. Both
        uvloop and asyncio's loop take signals through a wakeup fd, whatever Python-level handler
        is set, so one is added in front of the one there (which is still called): it asks the
        loop to close the streams. Only the main thread may set one; elsewhere nothing changes.
        """
        for number in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(number)
            try:
                signal.signal(number, functools.partial(_closing, loop, self.close, previous))
            except ValueError:  # not the main thread
                return

    async def wait(self) -> str:
        return await asyncio.shield(self._future())  # a stream that leaves must not cancel everyone's

    def _resolve(self, event: str) -> None:
        done, self._next = self._future(), asyncio.get_running_loop().create_future()
        done.set_result(event)

    async def _watch(self) -> None:
        last, since_tick = self.revision(), 0.0
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            since_tick += WATCH_INTERVAL_S
            current = self.revision()
            if current is not None and current != last:
                last = current
                self._resolve(current)
            elif since_tick >= KEEPALIVE_S:
                since_tick = 0.0
                self._resolve(_Event.KEEPALIVE)

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            self._resolve(_Event.CLOSED)

    async def stream(self, last_seen: str | None = None) -> AsyncIterator[bytes]:
        """The SSE stream of one provider: a ``refetchEvaluation`` message for each new revision.

        ``last_seen`` is the client's ``Last-Event-ID``: the revision it last heard of, sent when
        it reconnects. One that is not the current revision (a restart or reload while it was
        away) gets a ``refetchEvaluation`` at once; no header means it has just fetched.
        """
        self.open += 1
        try:
            # The signal handler is in place before the client hears a byte: a SIGTERM sent as soon
            # as the first line arrived went to granian alone, which then waited for this stream.
            self._future()
            current = self.revision()
            yield _connected(current)
            if last_seen and current is not None and last_seen != current:
                yield _refetch(current)
            while not self.closed and (event := await self.wait()) != _Event.CLOSED:
                yield b": keepalive\n\n" if event == _Event.KEEPALIVE else _refetch(event)
        finally:
            self.open -= 1


def _connected(revision: str | None) -> bytes:
    """The first message: the retry delay, and the revision as the id the client sends back.

    It is an event of its own type, with data, because an SSE client keeps the id only of an
    event it dispatches (the ``eventsource`` package drops a data-less one's); the providers
    listen to ``message`` events only, so they do not see it.
    """
    if revision is None:  # no bundle yet: nothing to catch up to
        return f"retry: {RETRY_MS}\n: connected\n\n".encode()
    return f"retry: {RETRY_MS}\nid: {revision}\nevent: connected\ndata: {revision}\n\n".encode()


def _refetch(revision: str) -> bytes:
    data = msgspec.json.encode(RefetchEvent("refetchEvaluation", revision)).decode()
    return f"id: {revision}\nevent: message\ndata: {data}\n\n".encode()


# Auth


def authorized(request: Request[Any, Any, Any], key: str | None) -> bool:
    """With an API key set, a request carries it as a bearer token or in ``X-API-Key``."""
    if not key:
        return True
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    given = bearer if scheme.lower() == "bearer" else request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), key.encode())


def stream_token(key: str) -> str:
    """EventSource cannot send headers: the stream's URL carries a token derived from the key."""
    return hmac.new(key.encode(), b"ofrep-events", hashlib.sha256).hexdigest()[:32]


def stream_authorized(request: Request[Any, Any, Any], key: str | None, token: str | None) -> bool:
    """The key in a header, as a server-side SSE client sends it to every route, or the stream's URL
    token (a browser's EventSource sends no headers): either will do, so a stale token in a URL the
    client kept does not undo a right header."""
    if authorized(request, key):
        return True
    return token is not None and hmac.compare_digest(token.encode(), stream_token(key or "").encode())


def _events_uri(key: str | None) -> str:
    return EVENTS_PATH if not key else f"{EVENTS_PATH}?token={stream_token(key)}"


# Routes

Decoder = Callable[[Request[Any, Any, Any], type[T], int], Awaitable[T]]


def _json(body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


KEY_REQUIRED = "a valid API key is required (Authorization: Bearer or X-API-Key)"
STREAM_KEY_REQUIRED = "a valid API key is required (Authorization: Bearer or X-API-Key, or the event stream's token=)"


def _unauthorized() -> Response[bytes]:
    return _json(GeneralError(KEY_REQUIRED), 401)


def routes(
    settings: Settings, store: BundleStore, decisions: Decisions, decoded: Decoder[Any]
) -> tuple[list[HTTPRouteHandler], ChangeNotifier]:
    """The OFREP route handlers, and the change notifier the app closes on shutdown."""
    key = settings.ofrep_api_key
    revision = lambda: store.current.bundle.revision if store.ready else None  # noqa: E731
    notifier = ChangeNotifier(revision, settings.ofrep_max_streams)
    streams = [EventStream("sse", StreamEndpoint(_events_uri(key)), INACTIVITY_DELAY_S)]

    async def context_of(request: Request[Any, Any, Any]) -> wire.Visitor:
        try:
            body: EvaluationRequest = await decoded(request, EvaluationRequest, settings.max_body_bytes)
        except RequestError as exc:
            raise _request_error(exc) from None
        return visitor_of(body.context)

    def decide(visitor: wire.Visitor, placements: list[str] | None) -> tuple[wire.DecideResponse, str]:
        data = wire.DecideRequest(visitor=visitor, placements=placements)
        try:
            result = decisions.decide(store.current.bundle, data, client_time=False).content
        except RequestError as exc:
            raise _request_error(exc) from None
        return result, result.decision_id

    async def one_flag(request: Request[Any, Any, Any], key: str) -> Response[bytes]:
        if not authorized(request, settings.ofrep_api_key):
            return _unauthorized()
        try:
            visitor = await context_of(request)
            if key not in store.current.bundle.placements:
                raise OfrepError("FLAG_NOT_FOUND", f"no placement '{key}' in bundle {store.current.bundle.revision}")
            result, decision_id = decide(visitor, [key])
        except OfrepError as exc:
            return _json(FlagError(key, exc.code, exc.details), STATUS[exc.code])
        flag = flag_of(key, result.placements[key], result.revision, decision_id)
        status = 200 if isinstance(flag, FlagOut) else STATUS[flag.errorCode]
        return _json(flag, status, {DECISION_ID_HEADER: decision_id})

    @post(FLAG_PATH, status_code=200, include_in_schema=False)
    async def evaluate_flag(request: Request[Any, Any, Any]) -> Response[bytes]:
        key = flag_key(request.scope["raw_path"])
        if key is None:  # a prefix Litestar merged (/ofrep//v1/…): its normalized path is all there is
            key = request.scope["path"].removeprefix(FLAG_PREFIX)
        return await one_flag(request, key)

    @post(BULK_PATH, status_code=200, include_in_schema=False)
    async def evaluate_flags(request: Request[Any, Any, Any]) -> Response[bytes]:
        raw = request.scope["raw_path"]
        if raw != RAW_BULK_PATH and (key := flag_key(raw)) is not None:  # flags/%2F, flags/: slashes Litestar stripped
            return await one_flag(request, key)
        if not authorized(request, settings.ofrep_api_key):
            return _unauthorized()
        try:
            result, decision_id = decide(await context_of(request), None)
        except OfrepError as exc:
            return _json(BulkError(exc.code, exc.details), STATUS[exc.code])
        flags = [flag_of(name, placed, result.revision, None) for name, placed in result.placements.items()]
        etag = etag_of(result.revision, flags)
        headers = {"etag": etag, DECISION_ID_HEADER: decision_id, "cache-control": "no-cache"}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(b"", status_code=304, headers=headers)
        metadata: Metadata = {"revision": result.revision, "decisionId": decision_id}
        return _json(BulkOut(flags, metadata, streams), headers=headers)

    @get(EVENTS_PATH, include_in_schema=False)
    async def change_events(request: Request[Any, Any, Any], token: FromQuery[str | None] = None) -> Response[Any]:
        if not stream_authorized(request, key, token):
            return _json(GeneralError(STREAM_KEY_REQUIRED), 401)
        if notifier.open >= notifier.cap:
            message = f"at most {notifier.cap} event streams per worker (TAILOR_OFREP_MAX_STREAMS); poll instead"
            return _json(GeneralError(message), 503, {"retry-after": "30"})
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        stream = notifier.stream(request.headers.get("last-event-id"))
        return Stream(stream, media_type="text/event-stream", headers=headers)

    return [evaluate_flag, evaluate_flags, change_events], notifier


# The OpenAPI document's part (service/http/openapi.py merges it)

REF = "#/components/schemas/{name}"
_DOC_STRUCTS = (EvaluationRequest, FlagOut, FlagError, BulkOut, BulkError, GeneralError)


def document_part() -> tuple[dict[str, Any], dict[str, Any]]:
    """The OFREP paths and their schemas, from the structs above."""
    _, schemas = msgspec.json.schema_components(_DOC_STRUCTS, ref_template=REF)
    schemas["BulkOut"]["properties"]["flags"]["items"] = {"oneOf": [_ref("FlagOut"), _ref("FlagError")]}
    schemas["EvaluationRequest"]["required"] = ["context"]
    schemas["EvaluationRequest"]["properties"]["context"] = {
        "type": "object",
        "description": f"`{TARGETING_KEY}` is the visitor id; `{CONSENT_KEY}` the consent (absent: no); every "
        "other key is an attribute, and a dotted key (`cart.items`) is a nested one.",
        "required": [TARGETING_KEY],
        "properties": {
            TARGETING_KEY: {"type": "string", "minLength": 1, "maxLength": 256},
            CONSENT_KEY: _ref("Consent"),
        },
        "additionalProperties": True,
    }
    body = {"required": True, "content": {"application/json": {"schema": _ref("EvaluationRequest")}}}
    problems = {str(status): _problem(status) for status in BODY_PROBLEMS}
    cut = {"application/problem+json": {"schema": _ref("ProblemDetails")}}  # incomplete-body: a client that left
    flag = {
        "operationId": "ofrepEvaluateFlag",
        "summary": "OpenFeature (OFREP v0.3): one flag, a placement",
        "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": body,
        "responses": {"200": _out("FlagOut"), "400": _or(_out("FlagError"), cut), "401": _out("GeneralError"),
                      "404": _out("FlagError"), **problems},
    }  # fmt: skip
    bulk = {
        "operationId": "ofrepEvaluateFlags",
        "summary": "OpenFeature (OFREP v0.3): every flag, with an ETag; If-None-Match gets 304 while they are the same",
        "parameters": [{"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": body,
        "responses": {"200": _out("BulkOut"), "304": {"description": "The flags are those of the ETag sent"},
                      "400": _or(_out("BulkError"), cut), "401": _out("GeneralError"), **problems},
    }  # fmt: skip
    events = {
        "operationId": "ofrepEvents",
        "summary": "OpenFeature change events (SSE): a refetchEvaluation message when the bundle revision changes",
        "description": "With an API key set: the key as on every route (Authorization: Bearer, X-API-Key), or "
        "the token= of the bulk response's URL. Each message's id is the revision; a Last-Event-ID that "
        "is not the current one gets a refetchEvaluation at once.",
        "parameters": [{"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
                       {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
                      "401": _out("GeneralError"), "503": _out("GeneralError")},
    }  # fmt: skip
    paths = {BULK_PATH: {"post": bulk}, f"{BULK_PATH}/{{key}}": {"post": flag}, EVENTS_PATH: {"get": events}}
    return paths, schemas


BODY_PROBLEMS = (408, 413, 415, 503)  # as on every route that reads a body: problem+json, not OFREP's shapes


def _problem(status: int) -> dict[str, Any]:
    what = {408: "body timeout", 413: "body too large", 415: "not JSON", 503: "no bundle loaded yet"}[status]
    return {"description": what, "content": {"application/problem+json": {"schema": _ref("ProblemDetails")}}}


def _or(response: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """A response with a second content type: a 400 is OFREP's shape, or problem+json for a body cut short."""
    return {**response, "content": {**response["content"], **content}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _out(name: str) -> dict[str, Any]:
    return {"description": name, "content": {"application/json": {"schema": _ref(name)}}}
