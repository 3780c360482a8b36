"""A real ``tailor serve`` process (granian) on 127.0.0.1 for integration tests."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


FIRST_PORT = 10_000
_held: dict[int, int] = {}  # port -> the descriptor of its lock file, held until this process ends


def free_port() -> int:
    """A port for a server to listen on, that no other test process hands out.

    A port from ``bind(0)`` is free only until the socket closes: the other pytest-xdist process
    could be handed it too, or a client's connect could take it as its own, before the server binds
    it. Two servers then shared it (granian binds with SO_REUSEPORT), and the kernel sent one test's
    requests to the other's server. So ports come from below the kernel's ephemeral range, where
    neither bind(0) nor connect looks, and each is claimed with a lock file that this process holds
    until it ends: another xdist process, or another pytest run on the machine, passes it by.
    """
    locks = Path(tempfile.gettempdir()) / "tailor-test-ports"
    locks.mkdir(exist_ok=True)
    for port in range(FIRST_PORT, _ephemeral_start()):
        if port not in _held and _claim(locks / f"{port}.lock", port):
            return port
    raise RuntimeError(f"no free port from {FIRST_PORT} to the kernel's ephemeral range")


def _claim(lock: Path, port: int) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # another user's lock
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    if not _bindable(port):  # something outside the tests listens there
        os.close(fd)  # and so lets the lock go
        return False
    _held[port] = fd
    return True


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:  # not Linux: the range most kernels start at
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def serve_command(bundle: Path, port: int, workers: int) -> list[str]:
    """``tailor serve`` of ``bundle`` on 127.0.0.1:``port``."""
    return [
        sys.executable, "-m", "service.cli", "serve",
        "--bundle", str(bundle), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


class Server(str):
    """The base URL of a running server, which also knows the server's process (for signals)."""

    pid: int


@contextmanager
def running_server(
    bundle: Path = ROOT,
    workers: int = 1,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    wait_for: str = "/readyz",
    **variables: str,
) -> Iterator[Server]:
    """Start the server, wait until ``wait_for`` answers 200, yield its base URL, and always stop it.

    ``wait_for="/healthz"`` yields a server that listens but may have no bundle (it answers 503).
    With ``log_file``, the server's stderr (its log) goes there, for tests that read what was logged.
    Environment variables come as keyword arguments, or as a mapping in ``env`` (a ``**mapping`` of
    str values could also fill ``workers`` or ``log_file``, so mypy rejects it).
    """
    port = free_port()
    command = serve_command(bundle, port, workers)
    log = None if log_file is None else log_file.open("ab")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {}), **variables},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if log is None else log,
        start_new_session=True,
    )
    base = Server(f"http://127.0.0.1:{port}")
    base.pid = process.pid
    try:
        _wait_ready(base, process, wait_for)
        yield base
    finally:
        _stop(process)
        if log is not None:
            log.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes], path: str = "/readyz") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}: {stderr}")
        try:
            if httpx.get(f"{base}{path}", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {base} not ready after {START_TIMEOUT_S}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stderr:
        process.stderr.close()
