"""Cart reminder recipients: the workload of the render benchmarks and of the load runner's email batch.

Each recipient is what a shop would send to ``POST /v1/render`` for its abandoned-cart
email, with the attributes the example bundle's blocks read: a first name, the cart
(items, total, when it was last changed), category views and purchases and the products
already bought (content/catalog.yaml ranks the recommendations from them), and a few
attributes the segments read. Two thirds write in English and pay in dollars (some in
euros), a third in German and euros; 6 % gave no personalization consent.

Times are relative to ``now`` and the same seed gives the same recipients, so a cart
stays abandoned on any day.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from service.core.decide import DecisionRequest

PLACEMENT = "cart_email"
VARIANTS = ("email_cart_reminder", "email_cart_discount")  # the arms of cart_email_test
BATCH_CONTEXT: Mapping[str, str] = {"locale": "en", "currency": "USD"}
FIRST_NAMES = {
    "en": (
        "Olivia", "Liam", "Emma", "Noah", "Ava", "Oliver", "Sophia", "Elijah", "Isabella", "James", "Mia",
        "William", "Charlotte", "Lucas", "Amelia", "Mason", "Harper", "Ethan", "Evelyn", "Aiden", "Zoë",
        "Seán", "Chloé", "Mateo", "Priya", "Wei", "Fatima", "Kwame", "Aoife", "Dylan",
    ),
    "de": (
        "Anna", "Jürgen", "Lena", "Lukas", "Sophie", "Felix", "Marie", "Jonas", "Hannah", "Maximilian", "Lea",
        "Paul", "Emilia", "Leon", "Mia", "Elias", "Charlotte", "Ben", "Johanna", "Matthias", "Björn", "Jörg",
        "Käthe", "Dominik", "Sabine", "Uwe", "Ayşe", "Mehmet", "Franziska", "Grete",
    ),
}  # fmt: skip
COUNTRIES = {"en": ("US", "US", "US", "GB", "CA"), "de": ("DE", "DE", "DE", "AT", "CH")}
CATEGORIES = ("electronics", "music", "books", "home", "fashion")
PRODUCTS = (
    "p-1001", "p-1002", "p-1003", "p-1004", "p-2001", "p-2002", "p-2003", "p-3001", "p-3002", "p-4001", "p-4002",
    "p-5001",
)  # fmt: skip
NO_NAME_SHARE = 0.05  # the shop does not know every first name
NO_CONSENT_SHARE = 0.06


def recipients(count: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    """``count`` recipients in the wire format of ``POST /v1/render``, the same for the same seed."""
    rng = random.Random(seed)
    return [_recipient(rng, f"c-{seed}-{index:06d}", now) for index in range(count)]


def batch_body(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``POST /v1/render`` body deciding and rendering the cart email for every recipient of ``batch``."""
    return {"placements": [PLACEMENT], "context": dict(BATCH_CONTEXT), "recipients": batch}


def batches(count: int, size: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    """``count`` bodies of ``size`` recipients each, all recipients different."""
    everyone = recipients(count * size, seed, now)
    return [batch_body(everyone[i * size : (i + 1) * size]) for i in range(count)]


def context_of(recipient: Mapping[str, Any]) -> dict[str, str]:
    """The recipient's context as the server sees it: the batch's, with the recipient's fields over it."""
    return {**BATCH_CONTEXT, **recipient.get("context", {})}


def to_request(
    recipient: Mapping[str, Any], now: datetime, placements: tuple[str, ...] | None = (PLACEMENT,)
) -> DecisionRequest:
    """The core's request for one recipient, as ``service.http.mapping.recipient_to_core`` builds it."""
    return DecisionRequest(
        visitor_id=recipient["id"],
        attributes=recipient["attributes"],
        now=now,
        context=context_of(recipient),
        personalization=recipient["consent"]["personalization"],
        placements=placements,
    )


def _recipient(rng: random.Random, rid: str, now: datetime) -> dict[str, Any]:
    language = "de" if rng.random() < 1 / 3 else "en"
    in_euros = language == "de" or rng.random() < 0.15  # English and euros: Ireland
    attributes: dict[str, Any] = {}
    if rng.random() >= NO_NAME_SHARE:
        attributes["first_name"] = rng.choice(FIRST_NAMES[language])
    attributes["country"] = "IE" if in_euros and language == "en" else rng.choice(COUNTRIES[language])
    changed = now - timedelta(hours=rng.uniform(26, 6 * 24))
    attributes["cart"] = {
        "items": rng.randint(1, 6),
        "total": round(rng.uniform(12, 480), 2),
        "updated_at": _stamp(changed),
    }
    views = rng.sample(CATEGORIES, rng.randint(0, 3))
    attributes["category_views"] = {category: rng.randint(1, 12) for category in views}
    if rng.random() < 0.6:
        attributes["category_purchases"] = {category: rng.randint(1, 4) for category in rng.sample(CATEGORIES, 2)}
    attributes["purchased_products"] = sorted(rng.sample(PRODUCTS, rng.randint(0, 4)))
    orders = rng.choice((0, 0, 1, 1, 2, 3, 5, 8, 13))
    attributes["orders_total"] = orders
    if orders:
        attributes["last_purchase_at"] = _stamp(changed - timedelta(days=rng.uniform(3, 400)))
    attributes["sessions_7d"] = rng.randint(0, 6)
    recipient: dict[str, Any] = {
        "id": rid,
        "attributes": attributes,
        "consent": {"personalization": rng.random() >= NO_CONSENT_SHARE, "analytics": rng.random() < 0.75},
    }
    if language == "de":
        recipient["context"] = {"locale": "de", "currency": "EUR"}
    elif in_euros:
        recipient["context"] = {"currency": "EUR"}
    return recipient


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
