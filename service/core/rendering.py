"""What the core knows about rendering: the plain data a block renders from, and what comes back.

Templates are compiled and rendered by ``service.render`` (the only package that
imports Jinja); a compiled bundle carries its blocks behind the ``Blocks`` protocol
so that the core, the store and the HTTP layer can pass them around without Jinja.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from service.core.errors import Problem

RenderStatus = Literal["rendered", "fallback"]


@dataclass(frozen=True, slots=True)
class RenderInputs:
    """One visitor's view for templates. Without personalization consent, attributes are left out."""

    attributes: Mapping[str, Any]
    context: Mapping[str, Any]
    segments: Sequence[str]
    now: datetime
    personalization: bool


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered block; ``fallback`` means the template failed and ``html`` is the variant's fallback."""

    html: str
    status: RenderStatus
    error: str | None = None  # the kind of failure and where, never attribute values
    detail: str | None = None  # the exception's message, shown only to previews (explain)


class RenderCache(Protocol):
    """Rendered blocks by (revision, variant, locale, the values the template reads)."""

    def get(self, key: tuple[Any, ...]) -> Rendered | None: ...

    def put(self, key: tuple[Any, ...], value: Rendered) -> None: ...


class Blocks(Protocol):
    """The compiled templates of a bundle."""

    @property
    def warnings(self) -> Sequence[Problem]:
        """What compiling them found that does not stop the bundle."""

    def has_block(self, variant: str) -> bool: ...

    def render(self, variant: str, inputs: RenderInputs, cache: RenderCache | None = None) -> Rendered: ...
