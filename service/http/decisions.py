"""The work behind ``/v1/decide`` and ``/v1/render`` as Litestar responses: framing and streaming.

The routes in ``app.py`` only pick the bundle and hand the decoded request here; the deciding,
logging, counting and rendering is service/serving.py's, which the lean decide path calls too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from time import perf_counter
from typing import Any

import msgspec
from litestar import Response
from litestar.response import Stream

from service.core.compile import Bundle
from service.core.errors import RequestError
from service.http import wire
from service.http.mapping import check_batch
from service.render.page import Tally
from service.serving import CACHE_HEADER, Serving, decision_ids

__all__ = ["CACHE_HEADER", "JSON", "NDJSON", "Decisions", "decision_ids", "in_turns"]

log = logging.getLogger("tailor.http")

NDJSON = "application/x-ndjson"
JSON = "application/json"
STREAM_CHUNK_BYTES = 128 * 1024  # results go out in chunks of at most about this size: 17 cached email recipients
# A batch renders for about this long at a time before the event loop runs anything else: each
# step of a page view during a batch waits for one such slice at most (``in_turns``).
RENDER_SLICE_S = 0.001
LARGE_BATCH = 500


class Decisions(Serving):
    """The decisions of a worker (service/serving.py), framed as Litestar responses for the routes."""

    def decide(self, bundle: Bundle, data: wire.DecideRequest, *, client_time: bool) -> Response[wire.DecideResponse]:
        decided = self.decision(bundle, data, client_time=client_time)
        if decided.cache is None:
            return Response(decided.response())
        return Response(decided.response(), headers={CACHE_HEADER: decided.cache})

    async def render_batch(
        self, bundle: Bundle, data: wire.RenderRequest, *, stream: bool, client_time: bool
    ) -> Response[Any]:
        """Every recipient's result in order: one JSON document, or NDJSON lines and a summary line."""
        chunks = await self.batch_chunks(bundle, data, stream=stream, client_time=client_time)
        return Stream(in_turns(chunks), media_type=NDJSON if stream else JSON)

    async def batch_chunks(
        self, bundle: Bundle, data: wire.RenderRequest, *, stream: bool, client_time: bool
    ) -> Iterator[bytes]:
        """The batch checked (its problem raised before anything is sent), then its bytes, lazily.

        Nothing renders until the iterator is advanced, a slice at a time: the doors advance it
        in turns with the loop's other work (``in_turns``), since a 10,000-recipient batch built
        whole on the loop blocked page views for 2.7 s and held every result in memory.
        """
        if len(data.recipients) > LARGE_BATCH:  # walking 10,000 recipients' attributes is work too
            await asyncio.to_thread(functools.partial(check_batch, data, self.settings, client_time=client_time))
        else:
            check_batch(data, self.settings, client_time=client_time)
        if data.block is not None and not bundle.blocks.has_block(data.block):
            raise RequestError(f"no variant '{data.block}' with a template in bundle {bundle.revision}", "$.block")
        tally = Tally()
        results = (self.recipient(bundle, data, index, tally) for index in range(len(data.recipients)))
        summary = functools.partial(_summary, bundle, data, tally)
        if stream:
            return _ndjson(results, summary)
        return _document(bundle.revision, results, summary)


def _summary(bundle: Bundle, data: wire.RenderRequest, tally: Tally) -> wire.RenderSummary:
    return wire.RenderSummary(
        bundle.revision, len(data.recipients), tally.blocks, tally.fallbacks, tally.hits, tally.misses
    )


def _ndjson(results: Iterable[wire.RecipientResult], summary: Callable[[], wire.RenderSummary]) -> Iterator[bytes]:
    """One line per recipient, in order, then the summary line."""
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    yield from _slices(buffer, _lines(encoder, buffer, results))
    encoder.encode_into(wire.SummaryLine(summary()), buffer, len(buffer))
    yield bytes(buffer + b"\n")


def _lines(encoder: msgspec.json.Encoder, buffer: bytearray, results: Iterable[wire.RecipientResult]) -> Iterator[None]:
    for result in results:
        encoder.encode_into(result, buffer, len(buffer))
        buffer += b"\n"
        yield None


def _document(
    revision: str, results: Iterable[wire.RecipientResult], summary: Callable[[], wire.RenderSummary]
) -> Iterator[bytes]:
    """A ``RenderResponse`` document written a result at a time: the same bytes as encoding it whole."""
    encoder = msgspec.json.Encoder()
    buffer = bytearray(b'{"revision":' + encoder.encode(revision) + b',"results":[')
    yield from _slices(buffer, _items(encoder, buffer, results))
    yield bytes(buffer + b'],"summary":' + encoder.encode(summary()) + b"}")


def _items(encoder: msgspec.json.Encoder, buffer: bytearray, results: Iterable[wire.RecipientResult]) -> Iterator[None]:
    separator = b""
    for result in results:
        buffer += separator
        encoder.encode_into(result, buffer, len(buffer))
        separator = b","
        yield None


def _slices(buffer: bytearray, writing: Iterator[None]) -> Iterator[bytes]:
    """What ``writing`` puts in ``buffer``, each time the buffer is full or the slice's time is up.

    The clock starts when the consumer asks for the next chunk, so a chunk is at most one slice
    of rendering (plus the one result under way), whatever a result costs.
    """
    until = perf_counter() + RENDER_SLICE_S
    for _ in writing:
        if len(buffer) >= STREAM_CHUNK_BYTES or perf_counter() >= until:
            yield bytes(buffer)
            buffer.clear()
            until = perf_counter() + RENDER_SLICE_S


async def in_turns(chunks: Iterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Each chunk rendered on the event loop in a turn of its own, so that other requests go between.

    The batches of a loop take turns in one lane, and a batch keeps the lane until the loop has
    run once after its chunk: however many batches stream, each step of a page view waits for one
    chunk (``RENDER_SLICE_S``) at most. The next chunk is rendered only once this one is sent, so
    a client that goes stops the rendering at once. (A render thread beside the loop cost 20 to
    35 µs more a recipient than rendering on the loop: the GIL, the objects and the caches moved
    between cores at every hand-off; ADR 0015.)
    """
    lane = _lane()
    while True:
        async with lane:
            chunk = next(chunks, None)
            await asyncio.sleep(0)  # what arrived during the chunk runs before anyone's next one
        if chunk is None:
            return
        yield chunk


_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lane() -> asyncio.Lock:
    """The running loop's render lane (an asyncio lock is bound to the loop it was first used on)."""
    loop = asyncio.get_running_loop()
    lane = _LANES.get(loop)
    if lane is None:
        lane = _LANES[loop] = asyncio.Lock()
    return lane
