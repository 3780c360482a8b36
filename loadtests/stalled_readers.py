"""Render batches whose clients stop reading: what a worker holds for them, under each interface.

    .venv/bin/python loadtests/stalled_readers.py [--clients 6] [--recipients 10000]

For ``TAILOR_INTERFACE=rsgi`` and then ``asgi``, one worker serves the example bundle on
127.0.0.1. ``--clients`` connections each post a batch of ``--recipients`` cart emails
(tests/bench/emails.py) on a socket with a small receive buffer and read nothing. Once the
decision count of /metrics has stopped moving (the batches rendered all they will), the worker's
RSS is read; then the sockets close, and 2 s later it is read again. Last, one more batch is read
whole, for the size of an answer. docs/DEPLOYMENT.md, "Email batches and clients that stop reading",
quotes a run; tests/integration/test_stalled_readers.py uses the same helpers.

Each server runs in its own process group and is stopped on every exit path. At most about
``2 x (--clients x 5 s + 30 s)`` on a quiet machine, and never more than WAIT_S per wait.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import h11
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loadtests.*, service.*, tests.* from the repository

from loadtests.harness import HOST, ROOT, Started, free_port, process_group, wait_ready
from loadtests.memory_reloads import server_memory
from tests.bench import emails

SETTLE_S = 0.5  # between scrapes: a count the same in SETTLED scrapes in a row has stopped
SETTLED = 3  # a second without a decision: not a busy machine's pause
WAIT_S = 120.0  # at most this long for the rendering to stop, on a slow machine
DECIDED = re.compile(r'^tailor_decisions_total\{placement="' + emails.PLACEMENT + r'",[^}]*\} (\S+)$', re.MULTILINE)


def decided(base: str) -> int:
    """Recipients decided so far (a scrape folds the scraped worker's counts first: exact with one worker)."""
    return int(sum(float(value) for value in DECIDED.findall(httpx.get(f"{base}/metrics").text)))


def settled(base: str) -> int:
    """The decision count once the rendering has started and then stopped."""
    deadline = time.monotonic() + WAIT_S
    seen: list[int] = []
    while time.monotonic() < deadline:
        seen.append(decided(base))
        if seen[-1] > 0 and len(seen) >= SETTLED and len(set(seen[-SETTLED:])) == 1:
            return seen[-1]
        time.sleep(SETTLE_S)
    raise AssertionError(f"the batches were still rendering after {WAIT_S:g} s")


def batch(recipients: int) -> bytes:
    return json.dumps(emails.batch_body(emails.recipients(recipients, 7, datetime.now(UTC)))).encode()


def stalled_batch(base: str, body: bytes) -> socket.socket:
    """``body`` posted to /v1/render on a socket with a small receive buffer that nobody reads yet."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
    sock.connect((HOST, int(base.rsplit(":", 1)[1])))
    head = (
        "POST /v1/render HTTP/1.1\r\nhost: tailor\r\ncontent-type: application/json\r\n"
        f"accept: application/x-ndjson\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """The whole streamed answer on ``sock`` (it must be a 200)."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(  # h11 parses a response only after its request: this one went out raw, in stalled_batch
        h11.Request(method="POST", target="/v1/render", headers=[("host", "tailor"), ("content-length", "0")])
    )
    answer = bytearray()
    sock.settimeout(60)
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(sock.recv(1 << 20))
        elif isinstance(event, h11.Response) and event.status_code != 200:
            raise AssertionError(f"answered {event.status_code}")
        elif isinstance(event, h11.Data):
            answer += event.data
        elif isinstance(event, h11.EndOfMessage):
            return bytes(answer)


def worker_rss(server: Started) -> float:
    return next(m.rss for m in server_memory(server) if m.role == "worker")


def measure(interface: str, clients: int, body: bytes, tmp: Path) -> dict[str, float]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "service.cli", "serve", "--bundle", str(ROOT), "--host", HOST,
               "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {"TAILOR_INTERFACE": interface, "TAILOR_STATE_DIR": str(tmp / f"state-{interface}")}
    with process_group(command, log=tmp / f"tailor-{interface}.log", env=env) as server:
        wait_ready(base, "/readyz", server, workers=1)
        at_rest = worker_rss(server)
        socks = [stalled_batch(base, body) for _ in range(clients)]
        try:
            paused = settled(base)
            stalled = worker_rss(server)
        finally:
            for sock in socks:
                sock.close()
        time.sleep(2)
        closed = worker_rss(server)
        reader = stalled_batch(base, body)
        with reader:
            size = len(read_answer(reader))
    return {"at_rest": at_rest, "stalled": stalled, "closed": closed, "decided": paused, "answer": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--recipients", type=int, default=10_000)
    args = parser.parse_args()
    body = batch(args.recipients)
    print(
        f"{args.clients} clients, each a batch of {args.recipients} recipients ({len(body):,} bytes), reading nothing\n"
    )
    print("| interface | worker RSS at rest MB | while stalled MB | 2 s after they close MB "
          "| recipients decided while stalled | one answer, read whole, MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="tailor-stalled-") as folder:
        for interface in ("rsgi", "asgi"):
            m = measure(interface, args.clients, body, Path(folder))
            rss = f"{m['at_rest']:.1f} | {m['stalled']:.1f} | {m['closed']:.1f}"
            print(f"| {interface} | {rss} | {m['decided']:,.0f} of {args.clients * args.recipients:,} "
                  f"| {m['answer'] / 1e6:.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
