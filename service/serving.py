"""Decide → log → count → render → wire structs, with no web framework.

Both doors into a decision call this module: the lean ``POST /v1/decide`` handler and the
Litestar routes (service/http/). What comes back is a wire struct (and the render cache's tally
for the response header); how it is framed on the wire is the caller's business.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from service import logs
from service.assignments import AssignmentTokens, TokenStatus
from service.core.compile import Bundle, fixed_decisions
from service.core.decide import Decision, DecisionRequest, decide
from service.core.outcome import PlacementDecision
from service.core.rendering import Rendered
from service.http import wire
from service.http.mapping import (
    block_out,
    decision_response,
    placements_out,
    recipient_to_core,
    to_core,
    with_token,
)
from service.render.cache import RenderCache
from service.render.page import Tally, inputs_for, render_decision, render_variant
from service.settings import Settings
from service.telemetry.metrics import Metrics
from service.telemetry.recorder import DecisionRecorder

CACHE_HEADER = "x-tailor-render-cache"
Labels = tuple[str, str, str]  # a decision's counter labels: placement, variant, reason


@dataclass(frozen=True, slots=True)
class Decided:
    """One visitor's decision, what was rendered for it, and the render cache's tally for ``CACHE_HEADER``."""

    bundle: Bundle
    decision: Decision
    decision_id: str
    rendered: Mapping[str, Rendered] | None = None  # with ``render``
    explain: bool = False  # with ``render``: each block's failure message too
    cache: str | None = None
    token: str | None = None  # the visitor's assignments token after this decision
    token_status: TokenStatus | None = None  # what became of the token the request sent

    def response(self) -> wire.DecideResponse:
        """The answer as ``POST /v1/decide`` sends it."""
        response = decision_response(self.bundle, self.decision, self.decision_id, self.rendered, self.explain)
        return with_token(response, self.token, self.token_status)


class Serving:
    """Decides for one visitor or a batch, with the decision log, metrics and the render cache of a worker."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        recorder: DecisionRecorder | None,
        clock: Callable[[], datetime],
        cache: RenderCache,
        *,
        ids: Callable[[], str] | None = None,  # decision ids; ``decision_ids()`` unless given
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.recorder = recorder
        self.clock = clock
        self.cache = cache
        self.next_id = ids or decision_ids()
        self.tokens = AssignmentTokens.from_settings(settings)
        self._labels: tuple[Bundle, Mapping[int, Labels]] | None = None

    def decision(self, bundle: Bundle, data: wire.DecideRequest, *, client_time: bool) -> Decided:
        """The decision for one ``DecideRequest``, logged and counted, rendered when it asks."""
        visitor = data.visitor
        issued_at = self.clock().timestamp()
        held, status = self.tokens.read(visitor.assignments_token, visitor.id, issued_at)
        request = to_core(data, self.settings, self.clock, client_time=client_time, sticky=held)
        decision, decision_id = self.decide_one(bundle, request, visitor.id, visitor.consent.analytics)
        token = self.tokens.issue(bundle, decision, held, visitor.id, issued_at)
        if not data.render:
            return Decided(bundle, decision, decision_id, token=token, token_status=status)
        tally = Tally()
        inputs = inputs_for(request, decision.segments)
        rendered = render_decision(
            bundle, decision, inputs, cache=self.cache, tally=tally, observe=self.metrics.observe_render
        )
        cache = f"hits={tally.hits}, misses={tally.misses}"
        return Decided(bundle, decision, decision_id, rendered, data.explain, cache, token, status)

    def recipient(self, bundle: Bundle, data: wire.RenderRequest, index: int, tally: Tally) -> wire.RecipientResult:
        """One recipient of a checked render batch: decided and rendered, or its one block rendered."""
        request = recipient_to_core(data, index, self.clock)
        recipient = data.recipients[index]
        observe = self.metrics.observe_render
        if data.block is None:
            decision, decision_id = self.decide_one(bundle, request, recipient.id, recipient.consent.analytics)
            inputs = inputs_for(request, decision.segments)
            rendered = render_decision(bundle, decision, inputs, cache=self.cache, tally=tally, observe=observe)
            placements = placements_out(bundle, decision, rendered, data.explain)
            return wire.RecipientResult(index, decision_id, placements, recipient.id)
        segments = decide(bundle, request).segments  # no placements: only the segments a template may read
        inputs = inputs_for(request, segments)
        block = render_variant(bundle, data.block, inputs, cache=self.cache, tally=tally, observe=observe)
        placements = {data.block: block_out(data.block, block, data.explain)}
        return wire.RecipientResult(index, self.next_id(), placements, recipient.id)

    def decide_one(
        self, bundle: Bundle, request: DecisionRequest, visitor: str | None, analytics: bool
    ) -> tuple[Decision, str]:
        """Decide, then write the decision event and count every placement's outcome."""
        decision_id = self.next_id()
        logs.decision_id.set(decision_id)
        decision = decide(bundle, request)
        if self.recorder is not None:
            self.recorder.record(
                decision, decision_id=decision_id, revision=bundle.revision, visitor_id=visitor,
                analytics_consent=analytics,
            )  # fmt: skip
        fixed = self._fixed_labels(bundle)
        self.metrics.count_decisions(
            [fixed.get(id(p)) or _labels(bundle, name, p) for name, p in decision.placements.items()]
        )
        return decision, decision_id

    def _fixed_labels(self, bundle: Bundle) -> Mapping[int, Labels]:
        """The counter labels of the bundle's own decisions, by ``id()`` (``fixed_decisions``), made once per bundle."""
        held = self._labels  # one read: another thread may swap the pair meanwhile
        if held is not None and held[0] is bundle:
            return held[1]
        labels = {key: _labels(bundle, name, p) for key, (name, p) in fixed_decisions(bundle).items()}
        self._labels = (bundle, labels)  # holds the bundle: its ids stay its decisions'
        return labels


def _labels(bundle: Bundle, name: str, placed: PlacementDecision) -> Labels:
    """``tailor_decisions``' labels of one placement's outcome: placement, variant, reason."""
    return (name if name in bundle.placements else "(unknown)", placed.variant or "none", placed.reason)


def decision_ids() -> Callable[[], str]:
    """Decision ids: 32 hex characters, a random 64-bit prefix per worker and a counter.

    Unique across workers and replicas without coordination (2^64 prefixes), in order within a
    worker, and cheap: a uuid4 per request (a system call for random bytes, then a UUID object)
    cost about 6 µs here, and was the largest single item when profiling the endpoint.
    """
    prefix = os.urandom(8).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"
