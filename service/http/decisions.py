"""The work behind ``/v1/decide`` and ``/v1/render`` as Litestar responses: framing and streaming.

The routes in ``app.py`` only pick the bundle and hand the decoded request here; the deciding,
logging, counting and rendering is service/serving.py's, which the lean decide path calls too.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
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

__all__ = ["CACHE_HEADER", "JSON", "NDJSON", "Decisions", "beside_the_loop", "decision_ids"]

log = logging.getLogger("tailor.http")

NDJSON = "application/x-ndjson"
JSON = "application/json"
STREAM_CHUNK_BYTES = 128 * 1024  # results go out in chunks about this large: 15 cached email recipients
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
        return Stream(beside_the_loop(chunks), media_type=NDJSON if stream else JSON)

    async def batch_chunks(
        self, bundle: Bundle, data: wire.RenderRequest, *, stream: bool, client_time: bool
    ) -> Iterator[bytes]:
        """The batch checked (its problem raised before anything is sent), then its bytes, lazily.

        Nothing renders until the iterator is advanced: the doors advance it beside the event
        loop (``beside_the_loop``), since a 10,000-recipient batch built whole on the loop blocked
        page views for 2.7 s and held every result in memory.
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


async def beside_the_loop(chunks: Iterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Each chunk rendered in a worker thread, the next one while this one is sent: the loop only sends.

    Rendering on the loop in slices (a turn every 2 ms) made each step of a concurrent request
    wait for a slice; in a thread, the loop takes the GIL back within the switch interval. Each
    chunk (``STREAM_CHUNK_BYTES``) holds the render thread only while it renders, so a slow reader
    never holds it; when the client goes, the chunk under way is the last.
    """
    loop, rendering = asyncio.get_running_loop(), _render_thread()
    turn = loop.run_in_executor(rendering, contextvars.copy_context().run, _next, chunks)
    try:
        while (chunk := await turn) is not None:
            turn = loop.run_in_executor(rendering, contextvars.copy_context().run, _next, chunks)
            yield chunk
    finally:
        turn.cancel()  # its chunk, if any, is nobody's


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


_RENDER_THREADS: dict[int, ThreadPoolExecutor] = {}


def _render_thread() -> ThreadPoolExecutor:
    """The worker process's one render thread: the chunks of every batch take turns on it.

    Only one thread holds the GIL at a time, so a second render thread adds no throughput; with
    one per batch (the loop's executor), concurrent batches made their threads hand the GIL to
    each other every switch interval. Made in the worker, not before granian forks it.
    """
    pid = os.getpid()
    executor = _RENDER_THREADS.get(pid)
    if executor is None:
        executor = _RENDER_THREADS[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-render")
    return executor
