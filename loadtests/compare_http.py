"""Tailor's HTTP door next to GrowthBook's proxy evaluator, side by side in one run, on 127.0.0.1.

Run from the repository root (``make compare-http`` runs ``npm ci`` in loadtests/growthbook first)::

    .venv/bin/python loadtests/compare_http.py [--runs 3] [--duration 10] [--connections 32]
        [--only NAME ...] [--variant NAME ...] [--out loadtests/results/compare-http.md]

Every server runs with one worker, all of them at once, on free ports:

* ``growthbook``: @growthbook/proxy-eval (pinned in loadtests/growthbook/package.json) behind a bare
  node:http server (loadtests/growthbook/server.mjs), fed the 20 flags of tests/bench/flags20 as
  GrowthBook features: condition on ``country``, one experiment rule with ``hashAttribute: id``,
  50/50, hash version 2;
* ``tailor-flags20``: Tailor's app on tests/bench/flags20;
* ``tailor-example``: Tailor's app on the example bundle (rules/, content/, models/), under the
  seeded page-view mix of loadtests/pageview_mix.py (1,000 visitors, rotated);
* ``tailor-example-cold``: the same, but 30,000 page views of as many visitors, far more rows than a
  model's memo holds (docs/adr/0013): every model a page view asks for runs its session;
* ceilings: ``litestar-hello`` (loadtests/ceiling_app.py), ``asgi-hello`` and ``rsgi-hello``
  (loadtests/bare_apps.py), all under granian.

Tailor and the ceilings are started as ``tailor serve`` starts granian (service/cli.py,
``_run_granian``: factory, no access log, no websockets, failed workers respawned; Tailor through
the RSGI door of service/http/rsgi.py, ``TAILOR_INTERFACE``'s default), with the settings a
``tailor serve`` worker reads from the environment. GrowthBook and Tailor on flags20 get the same
1,000 visitors (``visitor-{i}``, countries cycling US, DE, FR), one body a line, rotated by
loadtests/pageviews.lua. Before the load, each visitor is sent once to both: every answer must
carry 20 flags, and both must target the same flags for every visitor.

Then ``--runs`` rounds: in each round every server gets one ``wrk -t1 -c32 -d10s --latency`` run,
in turn (A B C ... A B C ...), after a 2 s warm-up of each before the first round. The table has
the median of the runs for req/s, p50, p90 and p99, and each server's ratio to GrowthBook.

``--variant`` adds Tailor on flags20 with one change (a granian option, a setting, a command it
runs under, or the probe factory of loadtests/tail_probe.py), measured in the same rounds: the
before/after of the tail study in docs/adr/0005-lean-decide-path.md. ``--only`` keeps the named
servers only (and the variants).

Every process runs in its own process group and is stopped on every exit path, Ctrl-C included.
The exit status is 1 when a check fails (a wrong answer, a failed request).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loadtests.* and service.* from the repository

from loadtests.harness import (
    HOST,
    ROOT,
    Started,
    WrkResult,
    ensure_wrk,
    free_port,
    machine_facts,
    process_group,
    run_wrk,
    wait_ready,
)
from loadtests.pageview_mix import page_views
from service.cli import GRANIAN_LOOP, GRANIAN_TARGETS
from service.settings import Interface, Settings
from service.telemetry.metrics import MULTIPROCESS_ENV
from tests.bench.workload import COUNTRIES, FLAGS, FLAGS20

LUA = ROOT / "loadtests" / "pageviews.lua"
GROWTHBOOK = ROOT / "loadtests" / "growthbook"
VISITORS = 1000
COLD_VISITORS = 30_000  # far more than service.core.models.MEMO_ROWS, and than one run sends
CHECKED_PAGE_VIEWS = 1000  # page views answered once before the load, per example server
JSON_HEADERS = {"content-type": "application/json"}  # a body without it is a 415 since the strict decoder
SEED = 2026
WARMUP_S = 2
FLAG_COUNT = len(FLAGS)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_INTERFACE: Interface = Settings().interface


@dataclass
class Server:
    """One server under test: how to start it, where it is ready, and what wrk sends it."""

    name: str
    label: str
    command: Callable[[int], list[str]]
    ready: str
    path: str = "/"
    bodies: str = ""  # file of bodies, one a line, for pageviews.lua; empty: GET the path
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    base: str = ""
    started: Started | None = None
    results: list[WrkResult] = field(default_factory=list)


# --- the servers -------------------------------------------------------------------------------


def granian(target: str, *options: str, interface: str = "asgi", factory: bool = True) -> Callable[[int], list[str]]:
    """granian as ``tailor serve`` runs it, on ``port``, one worker, plus ``options``."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "granian", "--interface", interface, "--host", HOST, "--port", str(port),
            "--workers", "1", *(["--factory"] if factory else []), "--no-access-log", "--respawn-failed-workers",
            "--no-ws", "--http", "1", "--loop", GRANIAN_LOOP.value, "--working-dir", str(ROOT), *options, target,
        ]  # fmt: skip

    return command


def tailor(*options: str, interface: Interface = DEFAULT_INTERFACE) -> Callable[[int], list[str]]:
    """Tailor's app under granian through ``interface``, as ``tailor serve`` starts it (service/cli.py)."""
    kind, target = GRANIAN_TARGETS[interface]
    return granian(target, *options, interface=kind.value)


def tailor_env(bundle: Path, state: Path, **overrides: str) -> dict[str, str]:
    """What a ``tailor serve`` worker finds in its environment (service/cli.py, ``_serve``)."""
    metrics = state / "metrics"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(parents=True)
    settings = Settings(bundle=bundle, host=HOST, workers=1, state_dir=state)
    return {**settings.to_env(), MULTIPROCESS_ENV: str(metrics), **overrides}


def node_command(features: Path) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return ["node", str(GROWTHBOOK / "server.mjs"), str(features), str(port)]

    return command


@dataclass(frozen=True)
class Variant:
    """Tailor on flags20 with one change, for a before/after in the same rounds."""

    note: str
    options: tuple[str, ...] = ()  # granian options
    env: tuple[tuple[str, str], ...] = ()  # settings and probe switches
    probe: bool = False  # loadtests/tail_probe.py's factory instead of the app's own
    interface: Interface = DEFAULT_INTERFACE
    prefix: tuple[str, ...] = ()  # a command the server runs under, such as taskset


PROBE_LOG = "TAILOR_PROBE_GC_LOG"
VARIANTS = {
    "gc-stats": Variant("probe factory, GC pauses recorded, nothing changed", probe=True),
    "gc-freeze": Variant("probe factory: service.runtime.freeze_heap() before the bundle loads", probe=True,
                         env=(("TAILOR_PROBE_GC_FREEZE", "1"),)),
    "no-watcher": Variant("TAILOR_RELOAD_INTERVAL=0: no watcher thread", env=(("TAILOR_RELOAD_INTERVAL", "0"),)),
    "runtime-threads-2": Variant("granian --runtime-threads 2", options=("--runtime-threads", "2")),
    "runtime-mode-st": Variant("granian --runtime-mode st", options=("--runtime-mode", "st")),
    "runtime-mode-mt": Variant("granian --runtime-mode mt", options=("--runtime-mode", "mt")),
    "backpressure-8": Variant("granian --backpressure 8", options=("--backpressure", "8")),
    "backpressure-32": Variant("granian --backpressure 32", options=("--backpressure", "32")),
    "task-impl-rust": Variant("granian --task-impl rust", options=("--task-impl", "rust")),
    "loop-asyncio": Variant("granian --loop asyncio: asyncio's own event loop instead of uvloop",
                            options=("--loop", "asyncio")),
    "asgi": Variant("TAILOR_INTERFACE=asgi: the whole app through granian's ASGI interface", interface="asgi"),
    "one-core": Variant("taskset -c 0: the worker and granian's threads on one core, wrk free",
                        prefix=("taskset", "-c", "0")),
}  # fmt: skip


def servers(tmp: Path, variants: list[str]) -> list[Server]:
    flags_bodies, gb_bodies, example_bodies, cold_bodies, features = write_inputs(tmp)
    listed = [
        Server("growthbook", "GrowthBook `@growthbook/proxy-eval` 1.1.2, node:http, flags20", node_command(features),
               "/healthz", "/eval", str(gb_bodies)),
        Server("tailor-flags20", "Tailor `POST /v1/decide`, flags20", tailor(), "/readyz", "/v1/decide",
               str(flags_bodies), tailor_env(FLAGS20, tmp / "state-flags20")),
        Server("tailor-example", "Tailor `POST /v1/decide`, example bundle page views", tailor(), "/readyz",
               "/v1/decide", str(example_bodies), tailor_env(ROOT, tmp / "state-example")),
        Server("tailor-example-cold", "Tailor `POST /v1/decide`, example bundle page views, each of a new visitor",
               tailor(), "/readyz", "/v1/decide", str(cold_bodies), tailor_env(ROOT, tmp / "state-example-cold")),
        Server("litestar-hello", "Ceiling: Litestar hello, granian ASGI", granian("loadtests.ceiling_app:create_app"),
               "/hello", "/hello"),
        Server("asgi-hello", "Ceiling: raw ASGI hello, granian", granian("loadtests.bare_apps:asgi_hello",
               factory=False), "/", "/"),
        Server("rsgi-hello", "Ceiling: raw RSGI hello, granian", granian("loadtests.bare_apps:rsgi_hello",
               interface="rsgi", factory=False), "/", "/"),
    ]  # fmt: skip
    return listed + [variant_server(name, VARIANTS[name], tmp, flags_bodies) for name in variants]


def variant_server(name: str, variant: Variant, tmp: Path, bodies: Path) -> Server:
    env = tailor_env(FLAGS20, tmp / f"state-{name}", **dict(variant.env))
    command = tailor(*variant.options, interface=variant.interface)
    if variant.probe:  # an ASGI factory
        env[PROBE_LOG] = str(tmp / f"gc-{name}.json")
        command = granian("loadtests.tail_probe:create_app", *variant.options)
    if variant.prefix:
        command = _prefixed(variant.prefix, command)
    label = f"Tailor `POST /v1/decide`, flags20, {name}"
    return Server(
        f"tailor-flags20+{name}", label, command, "/readyz", "/v1/decide", str(bodies), env, note=variant.note,
    )  # fmt: skip


def _prefixed(prefix: tuple[str, ...], command: Callable[[int], list[str]]) -> Callable[[int], list[str]]:
    return lambda port: [*prefix, *command(port)]


# --- the inputs ----------------------------------------------------------------------------------


def tailor_bodies() -> list[dict[str, Any]]:
    """Tailor's request for each visitor on flags20 (loadtests/profile_app.py --flags20 sends them too)."""
    return [{"visitor": {"id": v, "attributes": {"country": c}, "consent": {"personalization": True}}}
            for v, c in visitors()]  # fmt: skip


def visitors() -> list[tuple[str, str]]:
    return [(f"visitor-{i}", COUNTRIES[i % len(COUNTRIES)]) for i in range(VISITORS)]


def growthbook_features() -> dict[str, Any]:
    """The flags of tests/bench/flags20/rules/flags.yaml as a GrowthBook payload."""
    features = {
        name: {
            "defaultValue": False,
            "rules": [
                {
                    "key": prefix.rstrip(":"),
                    "condition": {"country": country},
                    "variations": [False, True],
                    "weights": [0.5, 0.5],
                    "hashAttribute": "id",
                    "hashVersion": 2,
                }
            ],
        }
        for name, country, prefix in FLAGS
    }
    return {"features": features}


def write_inputs(tmp: Path) -> tuple[Path, Path, Path, Path, Path]:
    """Bodies for Tailor on flags20, for GrowthBook, for the example page views (rotated and cold);
    GrowthBook's payload."""
    tailor = tailor_bodies()
    growthbook = [{"attributes": {"id": v, "country": c}} for v, c in visitors()]
    now = datetime.now(UTC)
    example = [view.body for view in page_views(VISITORS, SEED, now)]
    cold = [view.body for view in page_views(COLD_VISITORS, SEED + 1, now)]
    names = "flags20.jsonl", "growthbook.jsonl", "pageviews.jsonl", "pageviews-cold.jsonl", "features.json"
    paths = tuple(tmp / name for name in names)
    for path, bodies in zip(paths, (tailor, growthbook, example, cold), strict=False):
        path.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
    paths[4].write_text(json.dumps(growthbook_features()))
    return paths  # type: ignore[return-value]  # five names, five paths


# --- the checks ----------------------------------------------------------------------------------


def tailor_answers(base: str, bodies: Path) -> list[tuple[int, int, frozenset[str]]]:
    """Per body: (flags answered, flags in their experiment, flags on)."""
    out = []
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for line in bodies.read_text().splitlines():
            response = client.post("/v1/decide", content=line, headers={"content-type": "application/json"})
            placements = response.raise_for_status().json()["placements"]
            targeted = sum(p["reason"] == "experiment" for p in placements.values())
            on = frozenset(k for k, p in placements.items() if p["variant"] == "flag_on")
            out.append((len(placements), targeted, on))
    return out


def growthbook_answers(base: str, bodies: Path) -> list[tuple[int, int, frozenset[str]]]:
    out = []
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for line in bodies.read_text().splitlines():
            features = client.post("/eval", content=line).raise_for_status().json()["features"]
            targeted = sum(bool(f.get("rules")) for f in features.values())
            on = frozenset(k for k, f in features.items() if f["defaultValue"] is True)
            out.append((len(features), targeted, on))
    return out


def check_answers(by_name: dict[str, Server]) -> tuple[list[str], list[str]]:
    """(facts, problems): both answer every visitor with 20 flags and target the same ones."""
    facts: list[str] = []
    problems: list[str] = []
    if "growthbook" not in by_name or "tailor-flags20" not in by_name:
        return facts, problems
    gb_server, tailor_server = by_name["growthbook"], by_name["tailor-flags20"]
    tailor = tailor_answers(tailor_server.base, Path(tailor_server.bodies))
    gb = growthbook_answers(gb_server.base, Path(gb_server.bodies))
    full = [sum(n == FLAG_COUNT for n, _, _ in answers) for answers in (tailor, gb)]
    same_targets = sum(a[1] == b[1] for a, b in zip(tailor, gb, strict=True))
    on_share = [
        sum(len(on) for _, _, on in answers) / max(1, sum(t for _, t, _ in answers)) for answers in (tailor, gb)
    ]
    facts.append(
        f"Answer check, each of the {VISITORS:,} visitors once before the load: {FLAG_COUNT} flags in "
        f"{full[0]:,} Tailor answers and {full[1]:,} GrowthBook answers; the same number of flags targeted "
        f"for {same_targets:,} visitors; flags on among the targeted: Tailor {on_share[0]:.3f}, "
        f"GrowthBook {on_share[1]:.3f} (the hashes differ, the rates agree)."
    )
    if full != [VISITORS, VISITORS] or same_targets != VISITORS:
        problems.append("Tailor and GrowthBook do not answer the same workload: see the answer check")
    for name in ("tailor-example", "tailor-example-cold"):
        if name in by_name:
            facts_, problems_ = _page_views_answered(by_name[name])
            facts += facts_
            problems += problems_
    return facts, problems


def _page_views_answered(example: Server) -> tuple[list[str], list[str]]:
    with httpx.Client(base_url=example.base, timeout=10.0) as client:
        lines = Path(example.bodies).read_text().splitlines()[:CHECKED_PAGE_VIEWS]
        ok = sum(client.post("/v1/decide", content=line, headers=JSON_HEADERS).status_code == 200 for line in lines)
    fact = f"{example.name}: page views answered 200 before the load: {ok:,} of the first {len(lines):,}."
    return [fact], [] if ok == len(lines) else [f"{example.name}: {len(lines) - ok} page views not answered 200"]


# --- the rounds ----------------------------------------------------------------------------------


def measure(wrk: str, server: Server, args: argparse.Namespace, seconds: int) -> WrkResult:
    assert server.started is not None
    script_args = (server.bodies, server.path) if server.bodies else ()
    url = server.base if server.bodies else server.base + server.path
    return run_wrk(
        wrk, url, seconds=seconds, connections=args.connections, threads=1, server_pgid=server.started.pgid,
        script=LUA if server.bodies else None, script_args=script_args,
    )  # fmt: skip


def rounds(wrk: str, listed: list[Server], args: argparse.Namespace) -> None:
    for server in listed:
        measure(wrk, server, args, WARMUP_S)
    for number in range(1, args.runs + 1):
        for server in listed:
            result = measure(wrk, server, args, args.duration)
            server.results.append(result)
            _progress(
                f"run {number}/{args.runs} {server.name}: {result.rps:,.0f} req/s, p50 {result.latency_ms[50]:.2f} ms, "
                f"p99 {result.latency_ms[99]:.2f} ms, failed {result.failed}"
            )


@contextmanager
def started(listed: list[Server], tmp: Path) -> Iterator[None]:
    with ExitStack() as stack:
        for server in listed:
            port = free_port()
            server.base = f"http://{HOST}:{port}"
            command = server.command(port)
            log = tmp / f"{server.name}.log"
            server.started = stack.enter_context(process_group(command, log=log, env=server.env))
            wait_ready(server.base, server.ready, server.started, workers=1)
        yield


# --- the report ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(listed: list[Server]) -> list[str]:
    reference = next((s for s in listed if s.name == "growthbook" and s.results), None)
    gb_rps = median([r.rps for r in reference.results]) if reference else float("nan")
    gb_p99 = median([r.latency_ms[99] for r in reference.results]) if reference else float("nan")
    columns = ("server", "req/s (each run)", "req/s", "p50 ms", "p90 ms", "p99 ms", "x GrowthBook req/s",
               "p99 / GrowthBook p99", "server CPU µs/req")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
    for server in listed:
        results = server.results
        rps = median([r.rps for r in results])
        p = {q: median([r.latency_ms[q] for r in results]) for q in (50, 90, 99)}
        each = " / ".join(f"{r.rps:,.0f}" for r in results)
        cpu = median([r.server_cpu_us_per_request for r in results])
        lines.append(
            f"| {server.label} | {each} | {rps:,.0f} | {p[50]:.2f} | {p[90]:.2f} | {p[99]:.2f} | {rps / gb_rps:.2f} "
            f"| {p[99] / gb_p99:.2f} | {cpu:.0f} |"
        )
    return lines


def report(args: argparse.Namespace, wrk: str, listed: list[Server], facts: list[str]) -> str:
    machine = machine_facts(wrk)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    other = median([r.other_cpu_s / r.seconds for s in listed for r in s.results])
    stolen = median([r.stolen_cpu_s / r.seconds for s in listed for r in s.results])
    wrk_run = f"`wrk -t1 -c{args.connections} -d{args.duration}s --latency`"
    header = [
        f"command: `{shown_command()}`",
        (
            f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.runs} runs of {wrk_run} per server, in turn, "
            f"after a {WARMUP_S} s warm-up each; 1 worker each"
        ),
        (
            f"machine: {machine['cpu']}, {machine['cores']} cores shared with other work "
            f"(load average at start {machine['load average at start']}); {machine['kernel']}"
        ),
        (
            f"noise: other processes kept {other:.2f} of {machine['cores']} cores busy (median over the runs), "
            f"stolen {stolen:.2f}"
        ),
        (
            f"Python {machine['python']}, granian {machine['granian']}, litestar {machine['litestar']}, "
            f"msgspec {machine['msgspec']}; node {node}; wrk {machine['wrk']}"
        ),
    ]
    notes = [f"{s.name}: {s.note}" for s in listed if s.note]
    lines = ["## HTTP side by side: Tailor and GrowthBook's proxy evaluator", ""]
    lines += [f"- {line}" for line in header] + [""] + table(listed) + [""]
    lines += [f"- {line}" for line in facts + notes + gc_facts(listed)]
    return "\n".join(lines) + "\n"


def gc_facts(listed: list[Server]) -> list[str]:
    """What the probe factory recorded about the cyclic GC over the server's whole life."""
    out = []
    for server in listed:
        path = Path(server.env.get(PROBE_LOG, "-"))
        if not path.is_file():
            continue
        stats = json.loads(path.read_text())
        out.append(f"{server.name}, cyclic GC over the server's life: {stats['summary']}")
    return out


def shown_command() -> str:
    return " ".join([".venv/bin/python", "loadtests/compare_http.py", *sys.argv[1:]])


def _progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # unwinds the contexts: every server is stopped


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per server (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--only", nargs="+", default=None, help="servers to keep (default: all)")
    parser.add_argument("--variant", nargs="+", default=[], choices=sorted(VARIANTS), help="Tailor variants to add")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "compare-http.md")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_on_signal)
    if not (GROWTHBOOK / "node_modules" / "@growthbook" / "proxy-eval").is_dir():
        raise SystemExit("run `npm ci` in loadtests/growthbook first (make compare-http does)")
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="tailor-compare-") as folder:
        tmp = Path(folder)
        listed = servers(tmp, args.variant)
        if args.only:
            listed = [s for s in listed if s.name in args.only or "+" in s.name]  # variants are always kept
        with started(listed, tmp):
            facts, problems = check_answers({s.name: s for s in listed})
            rounds(wrk, listed, args)
        failed = [f"{s.name}: {sum(r.failed for r in s.results)} failed requests" for s in listed
                  if any(r.failed for r in s.results)]  # fmt: skip
        problems += failed
        text = report(args, wrk, listed, facts + [f"PROBLEM: {p}" for p in problems])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
