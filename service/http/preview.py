"""The preview page: pick or edit a visitor, see what every placement decides and renders, save it as a check.

The page is three static files (``static/``), served from the package: no CDN, no build
step. It calls ``POST /v1/decide`` like any client, plus two routes of its own under
``/preview/``: the visitors to pick from (``service/checks/samples.py`` reads them) and the
check file for what it shows (``service/checks/writer.py`` writes it).

Who may use it: with ``TAILOR_PREVIEW`` on, anyone who reaches the server (local previews,
``make run``). Otherwise the page exists only when an admin token is set, and its routes
answer only requests with that token; the page never carries the token itself: the user
pastes it, and the page keeps it in the tab's sessionStorage.

The routes are not in the OpenAPI document (it lists API v1, which this page only uses),
so the contract test neither sees nor needs them.

Content-Security-Policy: scripts and styles of the page come from its own files only (no
inline script). Rendered blocks are shown in ``<iframe sandbox srcdoc>`` frames: sandboxed
without ``allow-scripts``, they run no script and get an opaque origin, so they cannot reach
the page or the token. A srcdoc frame inherits the page's policy, which is why styles may be
inline (blocks and emails carry ``style`` attributes and elements) and images may come from
``https:`` (a block's images are the shop's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from msgspec import Meta

from service.checks.samples import preview_samples
from service.checks.writer import Shown, check_yaml
from service.core.outcome import Reason
from service.core.spec import NAME_PATTERN
from service.http import wire
from service.http.mapping import problem_out
from service.settings import Settings

T = TypeVar("T")
Decoded = Callable[[Request[Any, Any, Any], type[T], int], Awaitable[T]]
Authorize = Callable[[Request[Any, Any, Any], str | None], None]

STATIC = {"preview.js": "text/javascript", "preview.css": "text/css"}
PAGE = "preview.html"
YAML = "application/yaml; charset=utf-8"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "connect-src 'self'",
        "frame-src 'none'",  # srcdoc frames only: they load nothing from anywhere
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

Name = Annotated[str, Meta(pattern=NAME_PATTERN, max_length=64)]


class SampleOut(msgspec.Struct, frozen=True):
    source: str
    name: str
    visitor: dict[str, Any]
    context: dict[str, Any]
    models: dict[str, Any]


class SamplesOut(msgspec.Struct, frozen=True):
    samples: list[SampleOut]
    problems: list[wire.ProblemOut]


class ShownExperiment(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    key: Name
    arm: Name


class ShownPlacement(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    reason: Reason
    variant: Name | None = None
    rule: Annotated[str, Meta(max_length=200)] | None = None
    experiment: ShownExperiment | None = None
    rendered: bool | None = None
    """True: the template rendered; false: the fallback was served; absent: the variant has no template."""


class CheckRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What the page shows, to be written as one test of a check file."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    visitor: wire.Visitor
    placements: Annotated[dict[Name, ShownPlacement], Meta(max_length=256)]
    context: wire.Context = wire.Context()
    segments: Annotated[list[Name], Meta(max_length=1024)] = []
    revision: Annotated[str, Meta(max_length=128)] | None = None


def routes(settings: Settings, authorize: Authorize, decoded: Decoded[Any]) -> list[HTTPRouteHandler]:
    """The preview's routes, or none when the preview is off (no setting, no admin token)."""
    if not (settings.preview or settings.admin_token):
        return []

    def allow(request: Request[Any, Any, Any]) -> None:
        if not settings.preview:
            authorize(request, settings.admin_token)

    @get("/preview", include_in_schema=False, sync_to_thread=False)
    def page() -> Response[bytes]:
        return Response(_static(PAGE), media_type="text/html", headers=HEADERS)

    @get("/preview/static/{name:str}", include_in_schema=False, sync_to_thread=False)
    def asset(name: FromPath[str]) -> Response[bytes]:
        if name not in STATIC:
            raise NotFoundException(f"no preview file {name!r}")
        return Response(_static(name), media_type=STATIC[name], headers=HEADERS)

    @get("/preview/visitors", include_in_schema=False)
    async def visitors(request: Request[Any, Any, Any]) -> Response[SamplesOut]:
        allow(request)
        samples, problems = await asyncio.to_thread(preview_samples, settings.bundle)  # file I/O, off the loop
        listed = [SampleOut(s.source, s.name, s.visitor, s.context, s.models) for s in samples]
        return Response(SamplesOut(listed, [problem_out(p) for p in problems]), headers=HEADERS)

    @post("/preview/check", include_in_schema=False, status_code=200)
    async def save_check(request: Request[Any, Any, Any]) -> Response[str]:
        allow(request)
        shown = await decoded(request, CheckRequest, settings.max_body_bytes)
        return Response(_check_file(shown), media_type=YAML, headers=HEADERS)

    return [page, asset, visitors, save_check]


@lru_cache(maxsize=len(STATIC) + 1)
def _static(name: str) -> bytes:
    """A file of ``service/http/static``, read from the installed package."""
    return (resources.files("service.http") / "static" / name).read_bytes()


def _check_file(shown: CheckRequest) -> str:
    visitor = {k: v for k, v in msgspec.to_builtins(shown.visitor).items() if v is not None}
    context = {k: v for k, v in msgspec.to_builtins(shown.context).items() if v is not None}
    placements = {name: _shown(p) for name, p in shown.placements.items()}
    note = f"Saved from the preview of bundle {shown.revision}." if shown.revision else ""
    return check_yaml(shown.name, visitor, context, placements, shown.segments, note=note)


def _shown(placement: ShownPlacement) -> Shown:
    arm = None if placement.experiment is None else (placement.experiment.key, placement.experiment.arm)
    return Shown(placement.reason, placement.variant, placement.rule, arm, placement.rendered)
