"""Body deadlines: one timer per event loop instead of ``asyncio.timeout`` per request (body.within)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from service.http import body
from service.http.app import create_app
from service.http.body import BodyTimeoutError, within
from service.http.rsgi import Door
from service.settings import Settings
from tests import rsgi_fake

ROOT = Path(__file__).parents[1]
TIMEOUT_S = 0.2


async def _never() -> bytes:
    await asyncio.Event().wait()
    return b""


async def _soon(delay: float, value: bytes) -> bytes:
    await asyncio.sleep(delay)
    return value


def test_a_read_past_its_deadline_is_a_body_timeout_not_earlier() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(BodyTimeoutError, match=r"within 0\.2 seconds"):
            await within(TIMEOUT_S, _never())
        return loop.time() - start

    elapsed = asyncio.run(scenario())
    assert elapsed >= TIMEOUT_S
    assert elapsed < TIMEOUT_S + 5  # one tick late at most; generous for a loaded machine


def test_only_the_slow_reads_of_many_time_out_and_the_task_goes_on() -> None:
    async def one(index: int) -> str:
        try:
            # a fast read loses the race only when this process stalls past the deadline: give it 2 s
            got = await within(2.0, _never() if index % 3 == 0 else _soon(0, b"%d" % index))
        except BodyTimeoutError:
            got = b"408"
        await asyncio.sleep(0)  # the task is not left cancelled: it answers
        return got.decode()

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(one(i) for i in range(30))))

    answers = asyncio.run(scenario())
    assert answers == ["408" if i % 3 == 0 else str(i) for i in range(30)]


def test_a_cancel_from_elsewhere_is_a_cancel_not_a_timeout() -> None:
    async def scenario() -> None:
        task = asyncio.create_task(within(30, _never()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_the_timer_stops_when_nothing_is_read() -> None:
    async def scenario() -> tuple[bool, bool]:
        await within(TIMEOUT_S, _soon(0, b"x"))
        deadlines = body._Deadlines.of(asyncio.get_running_loop())
        armed = deadlines.timer is not None
        await asyncio.sleep(body.DEADLINE_TICK_S * 3)
        return armed, deadlines.timer is None and not deadlines.reading

    assert asyncio.run(scenario()) == (True, True)


def test_the_rsgi_door_answers_a_body_that_never_comes_with_408_and_closes() -> None:
    class Stalled(rsgi_fake.Protocol):
        async def __call__(self) -> bytes:
            return await _never()

    settings = Settings(bundle=ROOT, reload_interval=0, body_timeout_s=TIMEOUT_S)
    app = create_app(settings)
    with rsgi_fake.Worker(Door(app)) as worker:
        scope, _ = rsgi_fake.request("POST", "/v1/decide", b"{}", {"content-type": "application/json"})
        protocol = worker.answer(scope, Stalled())
    assert protocol.status == 408
    assert ("connection", "close") in protocol.headers
    assert json.loads(protocol.body)["type"] == "body-timeout"
