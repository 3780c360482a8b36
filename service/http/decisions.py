"""The work behind ``/v1/decide`` and ``/v1/render``: decide, log, count, render, encode.

The routes in ``app.py`` only pick the bundle and hand the decoded request here.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import msgspec
from litestar import Response
from litestar.response import Stream

from service import logs
from service.assignments import AssignmentTokens
from service.core.compile import Bundle
from service.core.decide import Decision, DecisionRequest, decide
from service.core.errors import RequestError
from service.http import wire
from service.http.mapping import (
    block_out,
    check_batch,
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

log = logging.getLogger("tailor.http")

NDJSON = "application/x-ndjson"
JSON = "application/json"
CACHE_HEADER = "x-tailor-render-cache"
STREAM_CHUNK_BYTES = 64 * 1024  # results go out in chunks about this large
LARGE_BATCH = 500


class Decisions:
    """Decides for one visitor or a batch, with the decision log, metrics and the render cache of a worker."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        recorder: DecisionRecorder | None,
        clock: Callable[[], datetime],
        cache: RenderCache,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.recorder = recorder
        self.clock = clock
        self.cache = cache
        self.next_id = decision_ids()
        self.tokens = AssignmentTokens.from_settings(settings)

    def decide(self, bundle: Bundle, data: wire.DecideRequest, *, client_time: bool) -> Response[wire.DecideResponse]:
        visitor = data.visitor
        issued_at = self.clock().timestamp()
        held, status = self.tokens.read(visitor.assignments_token, visitor.id, issued_at)
        request = to_core(data, self.settings, self.clock, client_time=client_time, sticky=held)
        decision, decision_id = self._decide(bundle, request, visitor.id, visitor.consent.analytics)
        token = self.tokens.issue(bundle, decision, held, visitor.id, issued_at)
        if not data.render:
            return Response(with_token(decision_response(bundle, decision, decision_id), token, status))
        tally = Tally()
        inputs = inputs_for(request, decision.segments)
        rendered = render_decision(
            bundle, decision, inputs, cache=self.cache, tally=tally, observe=self.metrics.observe_render
        )
        body = with_token(decision_response(bundle, decision, decision_id, rendered, data.explain), token, status)
        return Response(body, headers={CACHE_HEADER: f"hits={tally.hits}, misses={tally.misses}"})

    async def render_batch(
        self, bundle: Bundle, data: wire.RenderRequest, *, stream: bool, client_time: bool
    ) -> Response[Any]:
        """Every recipient's result in order: one JSON document, or NDJSON lines and a summary line.

        Both are streamed as they render, in a worker thread: a 10,000-recipient batch built
        whole on the event loop blocked page views for 2.7 s and held every result in memory.
        """
        if len(data.recipients) > LARGE_BATCH:  # walking 10,000 recipients' attributes is work too
            await asyncio.to_thread(functools.partial(check_batch, data, self.settings, client_time=client_time))
        else:
            check_batch(data, self.settings, client_time=client_time)
        if data.block is not None and not bundle.blocks.has_block(data.block):
            raise RequestError(f"no variant '{data.block}' with a template in bundle {bundle.revision}", "$.block")
        tally = Tally()
        results = (self._recipient(bundle, data, index, tally) for index in range(len(data.recipients)))
        summary = functools.partial(_summary, bundle, data, tally)
        if stream:
            return Stream(_beside_the_loop(_ndjson(results, summary)), media_type=NDJSON)
        return Stream(_beside_the_loop(_document(bundle.revision, results, summary)), media_type=JSON)

    def _recipient(self, bundle: Bundle, data: wire.RenderRequest, index: int, tally: Tally) -> wire.RecipientResult:
        request = recipient_to_core(data, index, self.clock)
        recipient = data.recipients[index]
        observe = self.metrics.observe_render
        if data.block is None:
            decision, decision_id = self._decide(bundle, request, recipient.id, recipient.consent.analytics)
            inputs = inputs_for(request, decision.segments)
            rendered = render_decision(bundle, decision, inputs, cache=self.cache, tally=tally, observe=observe)
            placements = placements_out(bundle, decision, rendered, data.explain)
            return wire.RecipientResult(index, decision_id, placements, recipient.id)
        segments = decide(bundle, request).segments  # no placements: only the segments a template may read
        inputs = inputs_for(request, segments)
        block = render_variant(bundle, data.block, inputs, cache=self.cache, tally=tally, observe=observe)
        placements = {data.block: block_out(data.block, block, data.explain)}
        return wire.RecipientResult(index, self.next_id(), placements, recipient.id)

    def _decide(
        self, bundle: Bundle, request: DecisionRequest, visitor: str | None, analytics: bool
    ) -> tuple[Decision, str]:
        decision_id = self.next_id()
        logs.decision_id.set(decision_id)
        decision = decide(bundle, request)
        if self.recorder is not None:
            self.recorder.record(
                decision, decision_id=decision_id, revision=bundle.revision, visitor_id=visitor,
                analytics_consent=analytics,
            )  # fmt: skip
        self.metrics.count_decisions(
            [
                (name if name in bundle.placements else "(unknown)", p.variant or "none", p.reason)
                for name, p in decision.placements.items()
            ]
        )
        return decision, decision_id


def _summary(bundle: Bundle, data: wire.RenderRequest, tally: Tally) -> wire.RenderSummary:
    return wire.RenderSummary(
        bundle.revision, len(data.recipients), tally.blocks, tally.fallbacks, tally.hits, tally.misses
    )


def _ndjson(results: Iterable[wire.RecipientResult], summary: Callable[[], wire.RenderSummary]) -> Iterator[bytes]:
    """One line per recipient, in order, then the summary line."""
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    for result in results:
        encoder.encode_into(result, buffer, len(buffer))
        buffer += b"\n"
        if len(buffer) >= STREAM_CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    encoder.encode_into(wire.SummaryLine(summary()), buffer, len(buffer))
    yield bytes(buffer + b"\n")


def _document(
    revision: str, results: Iterable[wire.RecipientResult], summary: Callable[[], wire.RenderSummary]
) -> Iterator[bytes]:
    """A ``RenderResponse`` document written a result at a time: the same bytes as encoding it whole."""
    encoder = msgspec.json.Encoder()
    buffer = bytearray(b'{"revision":' + encoder.encode(revision) + b',"results":[')
    separator = b""
    for result in results:
        buffer += separator
        encoder.encode_into(result, buffer, len(buffer))
        separator = b","
        if len(buffer) >= STREAM_CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    yield bytes(buffer + b'],"summary":' + encoder.encode(summary()) + b"}")


async def _beside_the_loop(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk rendered in a worker thread: the event loop only sends them, and serves page views.

    Rendering on the loop in slices (a turn every 2 ms) still made each step of a concurrent
    request wait for a slice; in a thread, the loop takes the GIL back within the switch interval.
    """
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


def decision_ids() -> Callable[[], str]:
    """Decision ids: 32 hex characters, a random 64-bit prefix per worker and a counter.

    Unique across workers and replicas without coordination (2^64 prefixes), in order within a
    worker, and cheap: a uuid4 per request (a system call for random bytes, then a UUID object)
    cost about 6 µs here, and was the largest single item when profiling the endpoint.
    """
    prefix = os.urandom(8).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"
