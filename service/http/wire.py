"""Wire structs of API v1: what clients send and receive. Separate from the core's types.

Unknown fields are rejected so that a misspelt field ("atributes") is an error,
not a request that silently decides on nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from service.assignments import TokenStatus
from service.telemetry.events import MAX_OUTCOME_VALUE

VisitorId = Annotated[str, Meta(max_length=256, description="A stable id (cookie or account); buckets depend on it.")]
Name = Annotated[str, Meta(max_length=64)]


class Consent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    personalization: bool = False
    """May content be chosen from the visitor's behaviour and attributes? Absent means no."""
    analytics: bool = False
    """May decisions be logged against this visitor's (pseudonymized) id? Absent means no."""


class Visitor(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: VisitorId | None = None
    attributes: dict[str, Any] = {}
    consent: Consent = Consent()
    assignments_token: str | None = None
    """The ``assignments_token`` of this visitor's last decision: keeps their experiment arms. One over
    ``MAX_TOKEN_CHARS`` is ignored as malformed (ADR 0019): a 400 left its holder without any decision."""


class Context(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    locale: Annotated[str, Meta(max_length=35)] | None = None
    page: Annotated[str, Meta(max_length=2048)] | None = None
    now: datetime | None = None
    """Decide as of this time (previews, tests); default: the server's clock. No zone means UTC."""
    currency: Annotated[str, Meta(pattern="^[A-Z]{3}$")] | None = None
    """ISO 4217 code for prices in rendered blocks; default: the bundle's default currency."""


class DecideRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    visitor: Visitor
    placements: Annotated[list[Name], Meta(min_length=1, max_length=256)] | None = None
    """Placements to decide; omitted means every placement of the bundle."""
    context: Context = Context()
    explain: bool = False
    """Add the trace of which rules matched."""
    render: bool = False
    """Add each placement's rendered HTML (placements whose variant has a template)."""


Reason = Literal[
    "targeting_match",
    "experiment",
    "forced",
    "default",
    "no_consent",
    "no_unit_id",
    "holdout",
    "unknown_placement",
    "requested",  # /v1/render with a block: the variant was named by the caller, not decided
]


class ExperimentOut(msgspec.Struct, frozen=True, omit_defaults=True):
    key: str
    arm: str
    bucket: int | None
    sticky: bool = False
    """The arm was kept from the visitor's assignments token (then ``bucket`` is null)."""


class PlacementOut(msgspec.Struct, frozen=True, omit_defaults=True):
    variant: str | None
    reason: Reason
    content: dict[str, Any] | None = None
    rule: str | None = None
    experiment: ExperimentOut | None = None
    html: str | None = None
    """With ``render``: the block's HTML; the variant's fallback HTML when ``render_status`` is fallback."""
    render_status: Literal["rendered", "fallback"] | None = None
    render_error: str | None = None
    """Why the fallback was served: the kind of failure and the template line."""
    render_detail: str | None = None
    """With ``explain``: the failure's message."""


class WhyNotOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """A rule's first failed condition (docs/adr/0007); ``text`` is the same as one line."""

    text: str
    """``rules/segments.yaml:11: segments.vip.when.all[0]: orders_12m gte 5, got 3``."""
    file: str
    line: int | None
    path: str
    operator: str
    expected: Any
    """The operand as written; a reference is ``{"attr": path}`` or ``{"context": path}``."""
    source: Literal["attr", "context", "model", "item"] | None = None
    name: str = ""
    actual: Any = None
    """The visitor's value (a model's output for a model); absent when ``missing``."""
    missing: bool = False
    reference: Any = None
    """For a reference: the value it pointed to; absent when that is missing."""
    ignore_case: bool = False
    via: list[str] = []
    """The segments followed to reach the condition, outermost first."""


class TraceOut(msgspec.Struct, frozen=True, omit_defaults=True):
    placement: str
    rule: str
    outcome: str
    why_not: WhyNotOut | None = None
    """With ``no_match``: the first condition of the rule that failed."""


class DecideResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    revision: str
    decision_id: str
    segments: list[str]
    placements: dict[str, PlacementOut]
    trace: list[TraceOut] | None = None
    scores: dict[str, str | float] | None = None
    """With ``explain``: the output of every model the decision ran (cluster label, probability, value)."""
    assignments_token: str | None = None
    """Signed arms of the experiments this visitor is in; send it back as ``visitor.assignments_token``.
    Only when the server has TAILOR_ASSIGNMENT_KEY and the visitor an id and an arm."""
    assignments_token_status: TokenStatus | None = None
    """What became of the token the request sent: ``valid``, or why it was ignored."""


class Recipient(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One recipient of a batch: a visitor, with context fields that override the batch's."""

    id: VisitorId | None = None
    attributes: dict[str, Any] = {}
    consent: Consent = Consent()
    context: Context | None = None


class RenderRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Render blocks for a batch of recipients: decide ``placements`` for each, or render one ``block``."""

    recipients: Annotated[list[Recipient], Meta(min_length=1)]
    placements: Annotated[list[Name], Meta(min_length=1, max_length=64)] | None = None
    block: Name | None = None
    """A variant to render for every recipient, without a decision."""
    context: Context = Context()
    explain: bool = False


class RecipientResult(msgspec.Struct, frozen=True, omit_defaults=True):
    index: int
    """The recipient's position in the request: results come back in the same order."""
    decision_id: str
    placements: dict[str, PlacementOut]
    visitor_id: str | None = None


class RenderSummary(msgspec.Struct, frozen=True):
    revision: str
    recipients: int
    blocks: int
    fallbacks: int
    cache_hits: int
    cache_misses: int


class RenderResponse(msgspec.Struct, frozen=True):
    revision: str
    results: list[RecipientResult]
    summary: RenderSummary


class SummaryLine(msgspec.Struct, frozen=True):
    """The last line of an NDJSON render stream: its presence says the stream is complete."""

    summary: RenderSummary


class RuleOut(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    target: str
    serve: str | None = None
    experiment: str | None = None


class PlacementInfo(msgspec.Struct, frozen=True):
    name: str
    description: str
    default: str
    rules: list[RuleOut]


class SegmentInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    description: str
    models: list[str] = []
    """The models this segment reads, directly or through other segments."""


class FeatureInfo(msgspec.Struct, frozen=True):
    name: str
    unit: str
    description: str


class PersonaInfo(msgspec.Struct, frozen=True):
    """One cluster of a cluster model in the training population's figures, from its model card."""

    name: Annotated[str, Meta(description="The cluster's label, as rules compare it: {model: rfm, eq: champions}.")]
    description: Annotated[str, Meta(description="One line generated from the figures.")]
    customers: Annotated[int, Meta(ge=0, description="Customers in the cluster (all customers before the cutoff).")]
    share_of_customers: Annotated[float, Meta(ge=0, le=1, description="The cluster's share of the customers.")]
    share_of_spend: Annotated[float, Meta(ge=0, le=1, description="The cluster's share of all spend.")]
    median_recency_days: Annotated[float, Meta(ge=0, description="Days from the last purchase to the cutoff.")]
    median_orders: Annotated[float, Meta(ge=0, description="Orders (distinct purchase days) before the cutoff.")]
    median_spend: Annotated[float, Meta(ge=0, description="Dollars spent before the cutoff.")]
    median_tenure_days: Annotated[float, Meta(ge=0, description="Days from the first purchase to the cutoff.")]
    churn_rate: Annotated[float, Meta(ge=0, le=1, description="Share with no purchase in the forecast horizon.")]


class ModelInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    kind: str
    model_version: str
    description: str
    output: str
    inputs: list[FeatureInfo]
    labels: list[str] = []
    personas: list[PersonaInfo] = []
    """A cluster model's personas, in the card's order; absent when its card has none."""


class ArmInfo(msgspec.Struct, frozen=True):
    key: str
    variant: str
    weight: int


class ExperimentInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    key: str
    description: str
    status: str
    traffic_percent: float
    arms: list[ArmInfo]
    layer: str | None = None
    bucket_by: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    forced_visitors: int = 0
    bucket_version: int = 1


class ProblemOut(msgspec.Struct, frozen=True):
    file: str
    line: int | None
    path: str
    message: str
    severity: str


class BundleInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    revision: str
    loaded_at: datetime
    hash_version: int
    placements: list[PlacementInfo]
    segments: list[SegmentInfo]
    experiments: list[ExperimentInfo]
    models: list[ModelInfo] = []
    holdout_percent: float | None = None
    warnings: list[ProblemOut] = []
    last_load_errors: list[ProblemOut] = []


class ReloadOut(msgspec.Struct, frozen=True):
    ok: bool
    revision: str | None
    """The revision now served by the worker that answered (unchanged when ``ok`` is false)."""
    problems: list[ProblemOut]


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    revision: str | None = None


class ErrorItem(msgspec.Struct, frozen=True):
    loc: str
    """Where: a JSON path into the request body, such as ``$.visitor.id``."""
    message: str


class ProblemDetails(msgspec.Struct, frozen=True, omit_defaults=True):
    """The one error shape of the API (RFC 9457 problem details, ``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] = []


MetricName = Annotated[
    str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9][A-Za-z0-9_.:-]*$", description="Such as `signup`.")
]


class AnalyticsConsent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    analytics: bool = False
    """May this outcome be tied to the visitor's (pseudonymized) id? Absent means no: it is dropped."""


class OutcomeIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Something a visitor did: a conversion (no value) or an amount (revenue, items)."""

    visitor_id: Annotated[str, Meta(min_length=1, max_length=256)]
    """The same id the visitor's decisions were made for."""
    metric: MetricName
    value: Annotated[float, Meta(gt=-MAX_OUTCOME_VALUE, lt=MAX_OUTCOME_VALUE)] | None = None
    """Default 1: one conversion. Below 10^15 in size (ADR 0017)."""
    time: datetime | None = None
    """When it happened; default: the server's clock. No zone means UTC."""
    consent: AnalyticsConsent = AnalyticsConsent()


class EventsRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    events: Annotated[list[OutcomeIn], Meta(min_length=1)]


class EventsAccepted(msgspec.Struct, frozen=True):
    accepted: int
    """Queued for the sinks of the decision log."""
    refused: int
    """Not queued: the decision log is off, or its queue was full."""
    dropped_no_consent: int
    """Dropped because the event had no analytics consent."""
