"""A client that stops reading a render batch: what the worker keeps rendering for it.

Under granian's ASGI interface a streamed body goes through a small bounded queue, so a batch
whose client stops reading stops rendering once the socket and that queue are full, and goes on
when the client reads again. granian's RSGI stream transport (the default door) queues without
bound: the batch renders to its end and waits in memory (docs/DEPLOYMENT.md, "Email batches").
The RSGI case is a strict xfail, so that a granian that bounds its queue shows up here.
loadtests/stalled_readers.py, whose helpers these are, measures what the worker holds.
"""

from __future__ import annotations

import pytest

from loadtests.stalled_readers import batch, read_answer, settled, stalled_batch
from tests.integration.server import running_server

pytestmark = pytest.mark.integration

RECIPIENTS = 10_000


@pytest.mark.parametrize(
    "interface",
    [
        "asgi",
        pytest.param("rsgi", marks=pytest.mark.xfail(strict=True, reason="granian's RSGI stream queue is unbounded")),
    ],
)
def test_a_batch_whose_client_stops_reading_stops_rendering(interface: str) -> None:
    with running_server(TAILOR_INTERFACE=interface) as base:
        sock = stalled_batch(base, batch(RECIPIENTS))
        try:
            paused = settled(base)
            assert paused < RECIPIENTS // 2, (
                f"{paused} of {RECIPIENTS} recipients rendered for a client that reads nothing"
            )
            assert read_answer(sock).count(b"\n") == RECIPIENTS + 1  # read again: every recipient and the summary
        finally:
            sock.close()
