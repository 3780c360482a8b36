"""A serving worker's memory, and what a bundle reload costs it, measured on 127.0.0.1 in one run.

Run from the repository root::

    .venv/bin/python loadtests/memory_reloads.py [--workers 1] [--duration 10] [--rounds 3]
        [--connections 8] [--pause-ms 8] [--reload-every 1.0] [--edit rules|template]
        [--out loadtests/results/memory-reloads.md]

1. Tailor as ``tailor serve`` runs it (granian, ``python -m service.cli serve``) on a copy of the
   example bundle (rules/, content/, models/), with TAILOR_RELOAD_INTERVAL=0.2.
2. Memory of every process of the server, the granian main process and each worker, from /proc:
   VmRSS, PSS and its anonymous part (PSS shares each page between the processes that map it),
   and the thread count: at rest (2 s after every worker answered), after --duration s of page
   views at saturation (loadtests/pageviews.lua), after as many with ``"render": true``, and
   after the reload rounds.
3. Reloads under a steady load: --rounds pairs of --duration s runs of paced page views
   (loadtests/paced_pageviews.lua: --connections connections, each pausing --pause-ms between
   requests, well under saturation so that the tail is not queueing), alternating A (no edits)
   and B (a bundle file replaced every --reload-every s). ``--edit rules`` (the default)
   alternates the VIP hero of rules/placements.yaml between hero_vip and hero_bold, each
   version checked with load_bundle beforehand: a reload that rebuilds the rules only (the
   templates, models and other files are unchanged, service/bundle/reuse.py). ``--edit
   template`` alternates a class in content/templates/hero.html: that template alone is parsed
   and compiled again (the others keep their code, service/render/blocks.py). The table has each
   run's p50, p99 and max and the median per condition.
4. The cost of a reload in each worker, from the workers' log lines ``bundle ... loaded from ...
   in W ms (C ms of CPU) by worker PID`` written during the B runs: wall time (stretched while
   requests share the GIL) and the loading thread's CPU time.

Every process runs in its own process group and is stopped on every exit path, Ctrl-C included.
The exit status is 1 when a check fails: failed requests, or a B run in which no worker reloaded.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loadtests.* and service.* from the repository

from loadtests.harness import (
    HOST,
    ROOT,
    Started,
    WrkResult,
    ensure_wrk,
    free_port,
    group_pids,
    machine_facts,
    process_group,
    run_wrk,
    wait_ready,
)
from loadtests.pageview_mix import page_views
from loadtests.reloads import make_plan, replace_atomically

LUA = ROOT / "loadtests" / "pageviews.lua"
PACED_LUA = ROOT / "loadtests" / "paced_pageviews.lua"
RELOAD_INTERVAL_S = 0.2
REST_S = 2.0  # idle time before the memory at rest is read
SATURATING_CONNECTIONS = 32
SEED = 2026
TEMPLATE_FILE = Path("content") / "templates" / "hero.html"
TEMPLATE_EDIT = ('class="tl-hero__headline"', 'class="tl-hero__headline big"')
LOADED = re.compile(r"in ([\d.]+) ms \(([\d.]+) ms of CPU\) by worker (\d+)")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class Memory:
    """One process's memory, in MB."""

    pid: int
    role: str  # "main" (granian's supervisor) or "worker"
    rss: float
    pss: float
    pss_anon: float
    threads: int


def memory_of(pid: int, role: str) -> Memory | None:
    """From /proc: VmRSS and Threads of status, Pss and Pss_Anon of smaps_rollup; None if it ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None

    def field_kb(text: str, name: str) -> float:
        match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else float("nan")

    threads = re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE)
    return Memory(
        pid,
        role,
        field_kb(status, "VmRSS"),
        field_kb(rollup, "Pss"),
        field_kb(rollup, "Pss_Anon"),
        int(threads.group(1)) if threads else 0,
    )


def server_memory(server: Started) -> list[Memory]:
    """The main process first, then the workers by pid."""
    pids = sorted(group_pids(server.pgid), key=lambda pid: (pid != server.pgid, pid))
    found = [memory_of(pid, "main" if pid == server.pgid else "worker") for pid in pids]
    return [m for m in found if m is not None]


class Editor(threading.Thread):
    """Replaces a bundle file with the next version every ``every`` seconds until stopped.

    Each edit also ends with a comment naming it, so that every edit is a new revision (as real
    edits are): a server that has served a revision before skips nothing it would do for a new one.
    """

    def __init__(self, target: Path, versions: tuple[str, ...], every: float, staging: Path) -> None:
        super().__init__(name="editor", daemon=True)
        self.target, self.versions, self.every, self.staging = target, versions, every, staging
        self.edits = 0
        self.stop = threading.Event()
        self.comment = "{# edit %s #}\n" if target.suffix == ".html" else "# edit %s\n"

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.edits += 1
            text = self.versions[self.edits % len(self.versions)] + self.comment % uuid.uuid4().hex
            replace_atomically(self.target, text, self.staging)


@dataclass
class Round:
    condition: str  # "A: no reloads" or "B: reloads"
    result: WrkResult
    edits: int = 0
    reloads: list[tuple[int, float, float]] = field(default_factory=list)  # (worker pid, wall ms, CPU ms)


@dataclass
class Run:
    args: argparse.Namespace
    wrk: str
    tmp: Path
    memory: list[tuple[str, list[Memory]]] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def reloads_logged(log: Path, offset: int) -> tuple[list[tuple[int, float, float]], int]:
    """The reloads the workers logged after ``offset`` bytes of the log, and the new offset."""
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read()
    found = []
    for line in text.decode(errors="replace").splitlines():
        try:
            message = str(json.loads(line).get("message", ""))
        except ValueError:
            continue
        if (match := LOADED.search(message)) is not None:
            found.append((int(match.group(3)), float(match.group(1)), float(match.group(2))))
    return found, offset + len(text)


def measure(run: Run) -> None:
    bundle = run.tmp / "bundle"
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, bundle / part)
    (run.tmp / "staging").mkdir()
    target, versions = _edits(bundle, run)
    views = page_views(1000, SEED, datetime.now(UTC))
    bodies = run.tmp / "pageviews.jsonl"
    bodies.write_text("".join(json.dumps(v.body, separators=(",", ":")) + "\n" for v in views))
    rendered = run.tmp / "pageviews-render.jsonl"
    rendered.write_text("".join(json.dumps({**v.body, "render": True}, separators=(",", ":")) + "\n" for v in views))

    port = free_port()
    base = f"http://{HOST}:{port}"
    command = [
        sys.executable, "-m", "service.cli", "serve", "--bundle", str(bundle), "--host", HOST,
        "--port", str(port), "--workers", str(run.args.workers),
    ]  # fmt: skip
    env = {"TAILOR_RELOAD_INTERVAL": str(RELOAD_INTERVAL_S), "TAILOR_STATE_DIR": str(run.tmp / "state")}
    log = run.tmp / "tailor.log"
    with process_group(command, log=log, env=env) as server:
        wait_ready(base, "/readyz", server, workers=run.args.workers)
        time.sleep(REST_S)
        run.memory.append(("at rest", server_memory(server)))
        saturate(run, server, base, bodies, "after page views")
        saturate(run, server, base, rendered, 'after page views with "render": true')
        _, offset = reloads_logged(log, 0)

        def editor_for() -> Editor:
            return Editor(target, versions, run.args.reload_every, run.tmp / "staging")

        paced(run, server, base, bodies, None)  # warm-up of the paced load, not reported
        for _ in range(run.args.rounds):
            paced(run, server, base, bodies, None, "A: no reloads")
            _, offset = reloads_logged(log, offset)
            paced(run, server, base, bodies, editor_for(), "B: reloads")
            run.rounds[-1].reloads, offset = reloads_logged(log, offset)
        time.sleep(REST_S)
        run.memory.append((f"after {run.args.rounds} reload runs", server_memory(server)))
    check(run)


def _edits(bundle: Path, run: Run) -> tuple[Path, tuple[str, ...]]:
    """The file the B runs replace, and the versions they alternate."""
    if run.args.edit == "rules":
        plan = make_plan(bundle, run.tmp)
        return plan.target, tuple(dict.fromkeys(step.text for step in plan.steps if not step.broken))
    original = (bundle / TEMPLATE_FILE).read_text()
    if original.count(TEMPLATE_EDIT[0]) != 1:
        raise SystemExit(f"{TEMPLATE_FILE} no longer has exactly one `{TEMPLATE_EDIT[0]}`: update this script")
    return bundle / TEMPLATE_FILE, (original, original.replace(*TEMPLATE_EDIT))


def saturate(run: Run, server: Started, base: str, bodies: Path, label: str) -> None:
    result = run_wrk(
        run.wrk, base, seconds=run.args.duration, connections=SATURATING_CONNECTIONS, threads=1,
        server_pgid=server.pgid, script=LUA, script_args=[str(bodies)],
    )  # fmt: skip
    if result.failed:
        run.problems.append(f"{label}: {result.failed} failed requests")
    load = label.removeprefix("after ")
    run.facts.append(f"Load {load}: {result.rps:,.0f} req/s at {SATURATING_CONNECTIONS} connections.")
    time.sleep(REST_S)
    run.memory.append((label, server_memory(server)))


def paced(
    run: Run, server: Started, base: str, bodies: Path, editor: Editor | None, condition: str | None = None
) -> None:
    """One paced run; with an editor, the rules change every --reload-every s while it lasts."""
    if editor is not None:
        editor.start()
    try:
        seconds = run.args.duration if condition else 2
        result = run_wrk(
            run.wrk, base, seconds=seconds, connections=run.args.connections, threads=1, server_pgid=server.pgid,
            script=PACED_LUA, script_args=[str(bodies), str(run.args.pause_ms)],
        )  # fmt: skip
    finally:
        if editor is not None:
            editor.stop.set()
            editor.join(timeout=5)
    time.sleep(1.0)  # the last edit lands before the next run
    if condition is None:
        return
    run.rounds.append(Round(condition, result, 0 if editor is None else editor.edits))
    if result.failed:
        run.problems.append(f"{condition}: {result.failed} failed requests")


def check(run: Run) -> None:
    for number, r in enumerate(run.rounds, 1):
        if r.condition.startswith("B") and not r.reloads:
            run.problems.append(f"run {number} ({r.condition}): no worker logged a reload")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render(run: Run, machine: dict[str, str], command: str) -> str:
    a = run.args
    lines = [
        f"### Memory and reloads, {a.workers} worker(s)",
        "",
        f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        "",
        "| when | process | RSS MB | PSS MB | anonymous PSS MB | threads |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, processes in run.memory:
        lines += [
            f"| {label} | {m.role} {m.pid} | {m.rss:.1f} | {m.pss:.1f} | {m.pss_anon:.1f} | {m.threads} |"
            for m in processes
        ]
        rss, pss = sum(m.rss for m in processes), sum(m.pss for m in processes)
        lines.append(f"| {label} | all | {rss:.1f} | {pss:.1f} | | |")
    lines += [
        "",
        (
            f"Paced page views: {a.connections} connections, {a.pause_ms} ms pause between requests on each, "
            f"{a.duration} s a run, A and B alternating; B edits {a.edit} every {a.reload_every} s."
        ),
        "",
        "| run | condition | req/s | p50 ms | p90 ms | p99 ms | max ms | edits | reloads logged | failed |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, r in enumerate(run.rounds, 1):
        w = r.result
        lines.append(
            f"| {number} | {r.condition} | {w.rps:,.0f} | {w.latency_ms[50]:.2f} | {w.latency_ms[90]:.2f} | "
            f"{w.latency_ms[99]:.2f} | {w.max_ms:.1f} | {r.edits} | {len(r.reloads)} | {w.failed} |"
        )
    lines += ["", "| condition | median req/s | median p50 ms | median p99 ms | median max ms |"]
    lines.append("|---|---:|---:|---:|---:|")
    for condition in ("A: no reloads", "B: reloads"):
        chosen = [r.result for r in run.rounds if r.condition == condition]
        rps, p50 = _median([w.rps for w in chosen]), _median([w.latency_ms[50] for w in chosen])
        p99, top = _median([w.latency_ms[99] for w in chosen]), _median([w.max_ms for w in chosen])
        lines.append(f"| {condition} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {top:.1f} |")
    reloads = [entry for r in run.rounds for entry in r.reloads]
    walls, cpus = sorted(w for _, w, _ in reloads), sorted(c for _, _, c in reloads)
    if reloads:
        lines += [
            "",
            (
                f"Reloads in the B runs: {len(reloads)} in {len({pid for pid, _, _ in reloads})} worker(s); "
                f"wall time per reload median {_median(walls):.1f} ms, max {walls[-1]:.1f} ms; "
                f"CPU time of the loading thread median {_median(cpus):.1f} ms, max {cpus[-1]:.1f} ms."
            ),
        ]
    lines += ["", *(f"- {fact}" for fact in run.facts)]
    if run.problems:
        lines += ["", "Problems:", *(f"- {p}" for p in run.problems)]
    return "\n".join(lines) + "\n"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of paced runs, A then B (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="connections of the paced runs (default 8)")
    parser.add_argument("--pause-ms", type=int, default=8, help="pause between requests per connection (default 8)")
    parser.add_argument("--reload-every", type=float, default=1.0, help="seconds between edits in B (default 1.0)")
    parser.add_argument("--edit", choices=("rules", "template"), default="rules", help="what B edits (default rules)")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "memory-reloads.md")
    return parser.parse_args()


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every process_group, which stops its server


def main() -> int:
    args = _arguments()
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_on_signal)
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="tailor-memory-") as folder:
        run = Run(args, wrk, Path(folder))
        measure(run)
    report = render(run, machine_facts(wrk), "python loadtests/memory_reloads.py " + " ".join(sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
