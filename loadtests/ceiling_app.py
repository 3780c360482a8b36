"""The ceiling for Tailor's HTTP numbers: Litestar under granian doing (almost) nothing.

Two endpoints, served with the same granian settings as ``tailor serve`` (see
``ceiling_command`` in loadtests/run.py):

* ``GET /hello``: a constant JSON object: the cost of the server and the framework alone;
* ``POST /echo``: decodes ~1 KB of JSON into a msgspec Struct and encodes it back: the
  server and framework plus the body handling every ``/v1/decide`` request also pays
  (Tailor's request bodies are 0.2 to 0.6 KB, its responses 0.5 to 1.5 KB).

Async handlers like Tailor's; no middleware, no logging, no metrics: whatever Tailor
spends above these two is its own.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, get, post


class Item(msgspec.Struct, frozen=True):
    sku: str
    name: str
    price: float
    quantity: int
    tags: list[str]


class EchoDoc(msgspec.Struct, frozen=True):
    """A page-view-sized document: a visitor with attributes and a few cart items."""

    id: str
    attributes: dict[str, Any]
    items: list[Item]
    context: dict[str, str]


@get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@post("/echo", status_code=200)
async def echo(data: EchoDoc) -> EchoDoc:
    return data


def create_app() -> Litestar:
    """The factory granian calls in every worker (``--factory``), as Tailor's ``create_app``."""
    return Litestar(route_handlers=[hello, echo], debug=False)


def echo_body() -> bytes:
    """The ~1 KB document the load test posts to /echo (always the same bytes)."""
    doc = EchoDoc(
        id="visitor-0123456789abcdef",
        attributes={
            "country": "DE",
            "orders_12m": 6,
            "spend_12m": 812.5,
            "orders_total": 14,
            "last_purchase_at": "2026-10-02T18:20:00Z",
            "cart": {"items": 3, "value": 129.9, "updated_at": "2026-11-20T21:05:00Z"},
            "views": {"electronics_7d": 4, "fashion_7d": 1},
            "sessions_7d": 5,
            "app_version": "4.2.1",
        },
        items=[
            Item(f"SKU-{n:05d}", f"Product number {n} in the cart", 19.99 + n, 1 + n % 3, ["sale", "new", "eu"])
            for n in range(5)
        ],
        context={"locale": "de-DE", "page": "/collections/new?utm_source=newsletter&utm_campaign=week47"},
    )
    return msgspec.json.encode(doc)
