"""The OpenAPI document of API v1, built from the wire structs and the settings that bound them.

The request schemas are msgspec's own JSON Schemas of the structs that ``body.decode`` decodes
into, so the document and the decoder cannot drift apart. What the structs cannot say is added
here from the settings the server runs with (how many placements and recipients), from the
bundle it serves (which blocks can be rendered) and from the rule that a render request names
``placements`` or one ``block``. Every error is a problem details object (RFC 9457) sent as
``application/problem+json``, and every status a route can answer is listed with it.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from service.http import ofrep, wire
from service.http.problems import MEDIA_TYPE, PROBLEM_TYPES
from service.settings import Settings

API_VERSION = "1.0.0"
NDJSON = "application/x-ndjson"
REF = "#/components/schemas/{name}"
_STRUCTS = (
    wire.DecideRequest, wire.DecideResponse, wire.RenderRequest, wire.RenderResponse, wire.SummaryLine,
    wire.BundleInfo, wire.Health, wire.ReloadOut, wire.ProblemDetails, wire.EventsRequest, wire.EventsAccepted,
)  # fmt: skip
# Errors every route that reads a JSON body can answer, besides its own.
_BODY_ERRORS = (400, 408, 413, 415)
CLIENT_TIME_NOTE = (
    " A client time (`context.now`) is accepted only when the server allows it"
    " (TAILOR_ALLOW_CLIENT_TIME) or with the admin bearer token; otherwise it is a 400."
)

EVENT_TIME_NOTE = (
    " An event `time` is accepted only when the server allows it (TAILOR_ALLOW_CLIENT_TIME) or with the"
    " admin bearer token; otherwise it is a 400."
)


def document(settings: Settings, blocks: Sequence[str] | None) -> dict[str, Any]:
    """The document for a server with these settings serving a bundle with these blocks (None: not ready)."""
    _, schemas = msgspec.json.schema_components(_STRUCTS, ref_template=REF)
    _date_times(schemas)
    _bound(schemas, settings, blocks)
    ofrep_paths, ofrep_schemas = ofrep.document_part()
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tailor decision API", "version": API_VERSION},
        "paths": _paths() | ofrep_paths,
        "components": {
            "schemas": schemas | ofrep_schemas,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
    }


def _date_times(schemas: dict[str, Any]) -> None:
    """``format: date-time`` on every datetime field: msgspec writes a bare string, which "" would fit."""
    for name, schema in schemas.items():
        struct = getattr(wire, name, None)
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            continue
        for field in msgspec.structs.fields(struct):
            if datetime in (field.type, *typing.get_args(field.type)):
                prop = schema["properties"][field.encode_name]
                for branch in prop.get("anyOf", [prop]):
                    if branch.get("type") == "string":
                        branch["format"] = "date-time"


def _bound(schemas: dict[str, Any], settings: Settings, blocks: Sequence[str] | None) -> None:
    """Write the limits the settings and the bundle set into the schemas."""
    render = schemas["RenderRequest"]
    for request in (schemas["DecideRequest"], render):  # the struct's bound or the setting, whichever is lower
        placements = _array_of(request, "placements")
        placements["maxItems"] = min(placements["maxItems"], settings.max_placements)
    render["properties"]["recipients"]["maxItems"] = settings.max_batch
    if blocks is not None:
        _string_of(render, "block")["enum"] = sorted(blocks)
    render["oneOf"] = [
        {"required": ["placements"], "properties": {"placements": {"type": "array"}}},
        {"required": ["block"], "properties": {"block": {"type": "string"}}},
    ]
    render["description"] = "Name `placements` to decide for each recipient, or one `block` to render."
    context = schemas["Context"]
    if not settings.allow_client_time:
        del context["properties"]["now"]
    context["description"] = "Where and when the request is made." + CLIENT_TIME_NOTE
    _bound_events(schemas, settings)


def _bound_events(schemas: dict[str, Any], settings: Settings) -> None:
    schemas["EventsRequest"]["properties"]["events"]["maxItems"] = settings.max_events
    outcome = schemas["OutcomeIn"]
    if not settings.allow_client_time:
        del outcome["properties"]["time"]
    outcome["description"] += EVENT_TIME_NOTE


def _array_of(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The array branch of an optional ``list | None`` property."""
    return next(b for b in schema["properties"][name]["anyOf"] if b.get("type") == "array")


def _string_of(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(b for b in schema["properties"][name]["anyOf"] if b.get("type") == "string")


def _paths() -> dict[str, Any]:
    return {
        "/v1/decide": {"post": _decide()},
        "/v1/render": {"post": _render()},
        "/v1/events": {"post": _events()},
        "/v1/bundle": {"get": _bundle()},
        "/healthz": {
            "get": _operation("healthz", "The process is alive", {200: _json("Health")}),
            "head": _operation("healthzHead", "As GET, without a body", {200: {"description": "Alive"}}),
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "A bundle is loaded and decisions can be made",
                {200: _json("Health", "Ready"), 503: _json("Health", "No bundle is loaded yet")},
            ),
            "head": _operation(
                "readyzHead",
                "As GET, without a body",
                {200: {"description": "Ready"}, 503: {"description": "No bundle is loaded yet"}},
            ),
        },
        "/admin/reload": {"post": _reload()},
    }


def _decide() -> dict[str, Any]:
    ok = _json("DecideResponse")
    ok["headers"] = {
        "x-tailor-render-cache": {
            "description": "With `render`: the render cache's hits and misses for this request",
            "schema": {"type": "string"},
        }
    }
    operation = _operation(
        "decide", "Decide the variants of placements for one visitor", {200: ok, **_problems(*_BODY_ERRORS, 503)}
    )
    operation["requestBody"] = _body("DecideRequest")
    return operation


def _render() -> dict[str, Any]:
    ok = {
        "description": "Every recipient's result in order; with `Accept: application/x-ndjson`, one line per "
        "recipient and a last line with the summary",
        "content": {
            "application/json": {"schema": {"$ref": REF.format(name="RenderResponse")}},
            NDJSON: {"schema": {"type": "string"}},
        },
    }
    operation = _operation(
        "render", "Render blocks for a batch of recipients", {200: ok, **_problems(*_BODY_ERRORS, 503)}
    )
    operation["requestBody"] = _body("RenderRequest")
    return operation


def _events() -> dict[str, Any]:
    operation = _operation(
        "events",
        "Record outcome events (conversions, values) for experiment analysis",
        {
            202: _json("EventsAccepted", "Counted: accepted, refused, dropped without consent"),
            **_problems(*_BODY_ERRORS),
        },
    )
    operation["requestBody"] = _body("EventsRequest")
    return operation


def _bundle() -> dict[str, Any]:
    return _operation(
        "bundle",
        "The bundle being served: revision, placements, segments, experiments, models",
        {200: _json("BundleInfo"), **_problems(503)},
    )


def _reload() -> dict[str, Any]:
    operation = _operation(
        "reload",
        "Reload the bundle in every worker (bearer token; the route does not exist without TAILOR_ADMIN_TOKEN)",
        {200: _json("ReloadOut"), **_problems(401, 404)},
    )
    operation["security"] = [{"admin": []}]
    return operation


def _operation(name: str, summary: str, responses: dict[int, Any]) -> dict[str, Any]:
    return {"operationId": name, "summary": summary, "responses": {str(k): v for k, v in sorted(responses.items())}}


def _json(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(name=name)}}}}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(name=name)}}}}


def _problems(*statuses: int) -> dict[int, Any]:
    """One response per status, described by the titles of the problem types it can carry."""
    out = {}
    for status in statuses:
        titles = sorted({title for code, (s, title) in PROBLEM_TYPES.items() if s == status})
        out[status] = {
            "description": "; ".join(titles),
            "content": {MEDIA_TYPE: {"schema": {"$ref": REF.format(name="ProblemDetails")}}},
        }
    return out
