"""Decision events: one versioned record per decided placement, tied to a pseudonym or to nobody.

What an event may hold is fixed by its type: ids and names from the bundle, the outcome, the
visitor's segments and a keyed pseudonym of the visitor id. There is no field for attributes,
context or the raw id, so nothing a visitor sent can reach a sink by mistake.

Consent: ``consent.analytics`` decides whether an event is tied to a visitor. Without it the event
is still written, so decisions per placement, variant and arm stay countable, but it carries no
pseudonym, no segments and no bucket (a bucket is a stable function of the visitor id and would
link one visitor's events), and it never counts as an exposure.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime

import msgspec

from service.core.outcome import Decision, PlacementDecision

SCHEMA = "tailor.decision/1"
"""The event format's name and version; a change a consumer could notice takes a new number."""

MIN_KEY_BYTES = 16  # below 128 bits a pseudonym key could be guessed by brute force
PSEUDONYM_HEX_CHARS = 32  # 128 bits: collisions stay negligible at any realistic visitor count
EXPOSURE_REASONS = frozenset({"experiment", "forced"})


class DecisionEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One placement of one decision, as written to the decision log."""

    schema: str = SCHEMA
    decision_id: str
    time: datetime  # UTC; encoded as RFC 3339 with a ``Z``
    revision: str  # the bundle's content hash
    placement: str
    variant: str | None
    reason: str
    rule: str | None = None
    experiment: str | None = None  # the experiment's key
    arm: str | None = None
    bucket: int | None = None  # None when forced, or when the event is tied to nobody
    segments: tuple[str, ...] = ()
    visitor: str | None = None  # a pseudonym, never the id the visitor sent
    exposure: bool = False  # the first time this visitor saw this arm, as far as this process knows


class Pseudonymizer:
    """Keyed hash of a visitor id: the same on every replica with the same key, unlinkable without it.

    A plain hash of an id can be reversed by hashing candidate ids; an HMAC cannot without the key.
    Rotating the key starts new pseudonyms for everybody, which is also how to unlink old logs.
    """

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes long")
        # The key schedule is done once; each id copies the keyed state instead of starting from the key.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, visitor_id: str) -> str:
        mac = self._keyed.copy()
        # surrogatepass: an id with a lone surrogate must not fail the request that logs it
        mac.update(visitor_id.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()[:PSEUDONYM_HEX_CHARS]

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<hidden>)"  # keep the key out of logs and tracebacks


def events_for(
    decision: Decision,
    *,
    decision_id: str,
    revision: str,
    time: datetime,
    visitor_id: str | None,
    analytics_consent: bool,
    pseudonymizer: Pseudonymizer,
) -> list[DecisionEvent]:
    """The events of one decision: one per placement the bundle has, in the decision's order.

    Placements the bundle does not know (``unknown_placement``) are skipped: they decided nothing.
    Without analytics consent, or without a visitor id, the events are tied to nobody (see the
    module's docstring).
    """
    if time.tzinfo is None:
        raise ValueError("the event time must carry a time zone")
    time = time.astimezone(UTC)
    visitor = pseudonymizer(visitor_id) if analytics_consent and visitor_id else None
    segments = tuple(decision.segments) if visitor is not None else ()
    return [
        _event(name, placed, decision_id=decision_id, revision=revision, time=time, visitor=visitor, segments=segments)
        for name, placed in decision.placements.items()
        if placed.reason != "unknown_placement"
    ]


def _event(
    placement: str,
    placed: PlacementDecision,
    *,
    decision_id: str,
    revision: str,
    time: datetime,
    visitor: str | None,
    segments: tuple[str, ...],
) -> DecisionEvent:
    assignment = placed.experiment
    return DecisionEvent(
        decision_id=decision_id,
        time=time,
        revision=revision,
        placement=placement,
        variant=placed.variant,
        reason=placed.reason,
        rule=placed.rule,
        experiment=None if assignment is None else assignment.key,
        arm=None if assignment is None else assignment.arm,
        bucket=None if assignment is None or visitor is None else assignment.bucket,
        segments=segments,
        visitor=visitor,
        exposure=visitor is not None and placed.reason in EXPOSURE_REASONS,
    )


OUTCOME_SCHEMA = "tailor.outcome/1"
"""The outcome event format's name and version, versioned apart from decision events."""

DEFAULT_OUTCOME_VALUE = 1.0  # an outcome without a value counts once: a conversion
# No outcome is worth 10^15 in any currency (a unit or a typo), and near 1e154 the analysis's sums of
# squares overflow: the endpoint refuses such a value, and `tailor analyze` refuses a logged one (ADR 0017).
MAX_OUTCOME_VALUE = 1e15
# A writer's clock may run ahead a little; an event a day after now is a wrong clock, which `tailor analyze`
# refuses (it would sit in every window to come), so the endpoint refuses it too (ADR 0020).
FUTURE_SLACK_SECONDS = 86_400.0
MAX_METRIC_CHARS = 64


class OutcomeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something a visitor did that an experiment may have caused (a purchase, a click, revenue).

    It joins the visitor's decision events by pseudonym only, so it is written only with analytics
    consent: an outcome tied to nobody could not be attributed to any arm and is dropped.
    """

    schema: str = OUTCOME_SCHEMA
    time: datetime  # UTC; when it happened (the server's clock unless a trusted client set it)
    visitor: str  # the same pseudonym as the visitor's decision events
    metric: str  # a name such as "purchase"; one metric per name in the analysis
    value: float = DEFAULT_OUTCOME_VALUE


Event = DecisionEvent | OutcomeEvent
"""What the log's sinks write: one JSON line each, told apart by ``schema``."""


def outcome_event(
    *,
    visitor_id: str,
    metric: str,
    value: float | None,
    time: datetime,
    analytics_consent: bool,
    pseudonymizer: Pseudonymizer,
) -> OutcomeEvent | None:
    """The outcome as logged, or None when it may not be tied to the visitor (no analytics consent).

    Raises ``ValueError`` naming the field for an outcome no analysis could use.
    """
    if not analytics_consent:
        return None
    _check_outcome(visitor_id, metric, value, time)
    return OutcomeEvent(
        time=time.astimezone(UTC),
        visitor=pseudonymizer(visitor_id),
        metric=metric,
        value=DEFAULT_OUTCOME_VALUE if value is None else float(value),
    )


def _check_outcome(visitor_id: str, metric: str, value: float | None, time: datetime) -> None:
    if not visitor_id:
        raise ValueError("visitor_id: must not be empty")
    if not metric or len(metric) > MAX_METRIC_CHARS or not metric.isprintable():
        raise ValueError(f"metric: must be 1 to {MAX_METRIC_CHARS} printable characters")
    if value is not None and not math.isfinite(value):
        raise ValueError("value: must be a finite number")
    if time.tzinfo is None:
        raise ValueError("time: must carry a time zone")
