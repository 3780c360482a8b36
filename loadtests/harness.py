"""Plumbing of the load tests: server processes, wrk, /metrics, CPU and memory of a process group.

Every process is started in its own session (so its own process group) and stopped by
group: granian's workers are children of the server process and must go with it, also
when the runner is interrupted.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # load goes to this machine only
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- processes -------------------------------------------------------------------------------


@dataclass
class Started:
    """A process group we started: its leader and where its output goes."""

    process: subprocess.Popen[bytes]
    command: list[str]
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid


@contextmanager
def process_group(command: list[str], *, log: Path, env: dict[str, str] | None = None) -> Iterator[Started]:
    """Run ``command`` in a new process group, and always stop the whole group afterwards."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Started(process, command, log)
    try:
        yield started
    finally:
        stop_group(started)


def stop_group(started: Started) -> None:
    """SIGTERM to the group (granian stops its workers gracefully), SIGKILL to whatever is left."""
    _signal_group(started.pgid, signal.SIGTERM)
    try:
        started.process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(started.pgid, signal.SIGKILL)
        started.process.wait()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_pids(started.pgid) and time.monotonic() < deadline:  # workers can outlive the leader briefly
        time.sleep(0.1)
    if group_pids(started.pgid):
        _signal_group(started.pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, sig)


def group_pids(pgid: int) -> list[int]:
    """Live processes (not zombies) of a process group, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat_fields(entry / "stat")
        if stat is not None and int(stat[2]) == pgid and stat[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _stat_fields(path: Path) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ..., utime (11), stime (12)."""
    try:
        text = path.read_text()
    except OSError:  # the process ended meanwhile
        return None
    return text[text.rfind(")") + 2 :].split()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the group (all threads)."""
    total = 0
    for pid in group_pids(pgid):
        stat = _stat_fields(Path(f"/proc/{pid}/stat"))
        if stat is not None:
            total += int(stat[11]) + int(stat[12])
    return total / CLOCK_TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """(process time, stolen time) of the whole machine since boot, from /proc/stat.

    Process time is user + nice + system, what processes are charged (interrupt and softirq
    time, where loopback networking mostly goes, is left out: it is the load test's own).
    Stolen time is what the hypervisor gave to other machines while this one wanted to run.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
    return (user + nice + system) / CLOCK_TICKS, steal / CLOCK_TICKS


def group_rss_mb(pgid: int) -> float:
    """Resident memory of the group's processes, summed (shared pages count once per process)."""
    total_kb = 0
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kb += int(match.group(1)) if match else 0
    return total_kb / 1024


def wait_ready(base: str, path: str, started: Started, *, workers: int) -> None:
    """Until ``path`` answers 200 on ``workers * 10`` fresh connections in a row (every worker is up)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    needed = workers * 10
    in_a_row = 0
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            tail = started.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{started.command[0]} exited with {started.process.returncode}:\n{tail}")
        try:
            ok = httpx.get(base + path, timeout=2.0).status_code == 200  # a new connection each time
        except httpx.TransportError:
            ok = False
        in_a_row = in_a_row + 1 if ok else 0
        if in_a_row >= needed:
            return
        time.sleep(0.02 if ok else 0.1)
    raise RuntimeError(f"{base}{path} not ready after {START_TIMEOUT_S}s")


# --- wrk ---------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when missing (CI and fresh machines do not have it)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise SystemExit("wrk is not installed, and apt-get as root is not available: install wrk and run again")
    print("wrk is missing: installing it with `apt-get install -y wrk`", file=sys.stderr)
    if subprocess.run([apt, "install", "-y", "-q", "wrk"], check=False).returncode != 0:
        subprocess.run([apt, "update", "-q"], check=True)  # a fresh machine has no package lists yet
        subprocess.run([apt, "install", "-y", "-q", "wrk"], check=True)
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("apt-get install wrk did not provide a wrk binary")
    return found


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    name = first[0].split(" Copyright")[0] if first else "unknown version"
    return name.removeprefix("wrk ")


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[int, float]  # percentile -> ms: 50, 75, 90, 99
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout
    server_cpu_s: float = 0.0  # CPU time the server's processes used during the run
    client_cpu_s: float = 0.0  # CPU time wrk used
    other_cpu_s: float = 0.0  # CPU time every other process used (this runner included): noise
    stolen_cpu_s: float = 0.0  # CPU time the hypervisor gave to other machines: noise too
    command: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def server_cpu_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("nan")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(text: str) -> WrkResult:
    """The figures of ``wrk --latency`` output; raises if a line it always prints is missing."""

    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output has no match for {pattern!r}:\n{text}")
        return match

    total = need(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),")
    percentiles = {int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.MULTILINE)}
    if set(percentiles) != {50, 75, 90, 99}:
        raise ValueError(f"wrk output lacks the latency distribution (--latency):\n{text}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2) + total.group(3)) / 1000,
        rps=float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        latency_ms=percentiles,
        max_ms=_ms(need(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True))
        if errors
        else {},
    )


def run_wrk(
    wrk: str,
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int,
    server_pgid: int,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    stop_when: threading.Event | None = None,
) -> WrkResult:
    """One wrk run with --latency, with the server's and wrk's CPU time around it.

    It lasts ``seconds``, or less if ``stop_when`` is set first: wrk stops on SIGINT and still
    prints its figures, over the time it ran.
    """
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    cpu_before = group_cpu_seconds(server_pgid)
    machine_before = machine_cpu_seconds()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        if stop_when is not None:
            while process.poll() is None and not stop_when.wait(0.1):
                pass
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=seconds + 30)
    finally:
        if process.poll() is None:  # timed out or interrupted: wrk must not keep sending
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_after = machine_cpu_seconds()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode(errors='replace')}")
    result = parse_wrk(out.decode())
    result.server_cpu_s = group_cpu_seconds(server_pgid) - cpu_before
    result.client_cpu_s = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    busy = machine_after[0] - machine_before[0]
    result.other_cpu_s = max(0.0, busy - result.server_cpu_s - result.client_cpu_s)
    result.stolen_cpu_s = machine_after[1] - machine_before[1]
    result.command = command
    return result


# --- /metrics ------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(client: httpx.Client) -> dict[str, float]:
    """Prometheus samples as ``name{labels}`` -> value (labels as the server prints them)."""
    text = client.get("/metrics").raise_for_status().text
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def reload_counts(samples: dict[str, float]) -> tuple[int, int]:
    """(ok, error) of tailor_bundle_reloads_total, summed over the workers."""
    ok = samples.get('tailor_bundle_reloads_total{result="ok"}', 0.0)
    error = samples.get('tailor_bundle_reloads_total{result="error"}', 0.0)
    return int(ok), int(error)


def decide_responses(samples: dict[str, float]) -> dict[str, int]:
    """/v1/decide responses counted by the server, by status class."""
    prefix = 'tailor_http_request_duration_seconds_count{endpoint="/v1/decide",method="POST",status="'
    return {key[len(prefix) : len(prefix) + 3]: int(value) for key, value in samples.items() if key.startswith(prefix)}


# --- the machine -----------------------------------------------------------------------------------


def machine_facts(wrk: str) -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "granian": version("granian"),
        "litestar": version("litestar"),
        "msgspec": version("msgspec"),
        "wrk": wrk_version(wrk),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
