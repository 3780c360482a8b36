"""Load tests of Tailor's HTTP server, in one command, on 127.0.0.1 only.

Run from the repository root::

    .venv/bin/python loadtests/run.py [--duration 15] [--connections 32] [--workers 1] [--threads 2]
        [--batch 100] [--email-connections 4]

One run measures, with wrk and free ports:

1. the ceiling: a Litestar hello-world and a 1 KB JSON echo (loadtests/ceiling_app.py) under
   granian with the same settings as ``tailor serve``;
2. page views: the real server (``python -m service.cli serve``) on a copy of the example
   bundle, under a seeded mix of 1,000 /v1/decide bodies (loadtests/pageview_mix.py), then the
   same bodies with ``"render": true``;
3. email batches: ``POST /v1/render`` of the cart email for --batch recipients a request
   (tests/bench/emails.py), streamed as NDJSON (loadtests/emails.lua checks every line);
   then a second server on the same bundle with its render cache off, under the same email
   batches and the page views with ``"render": true``;
4. the page-view load again while 50 rule edits (5 of them broken) are reloaded, then checks
   the final revision, the reload counters and the failed requests (the goal is zero).

It prints a Markdown report and writes it to --out (default loadtests/results/latest.md).
Servers and wrk run in their own process groups and are stopped on every exit path,
Ctrl-C included. The exit status is 1 when a check fails (failed requests, wrong revision,
reloads not counted as expected, unexpected errors in the server log).

Tailor runs with TAILOR_RELOAD_INTERVAL=0.2 for all of its scenarios (polling a few files
five times a second costs microseconds, so it does not change the page-view figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loadtests.* and service.* from the repository

from loadtests.ceiling_app import echo_body
from loadtests.harness import (
    HOST,
    ROOT,
    Started,
    WrkResult,
    decide_responses,
    ensure_wrk,
    free_port,
    group_pids,
    group_rss_mb,
    machine_facts,
    process_group,
    reload_counts,
    run_wrk,
    scrape,
    wait_ready,
)
from loadtests.pageview_mix import PageView, describe, page_views
from loadtests.reloads import LAND_TIMEOUT_S, RELOADS, Plan, Reloader, make_plan
from service.cli import GRANIAN_LOOP
from service.settings import PREFIX, Settings
from tests.bench import emails

LUA = ROOT / "loadtests" / "pageviews.lua"
EMAIL_LUA = ROOT / "loadtests" / "emails.lua"
EMAIL_RECIPIENTS = 1000  # distinct recipients the email bodies cycle through: their blocks fit the default cache
WARMUP_S = 2
RELOAD_INTERVAL_S = 0.2
RELOAD_SHARE = 0.9  # the edits are paced to fill 90 % of --duration; the load goes on for the other 10 %
RELOAD_BOUND = 3  # the reload run stops at 3 x --duration + 10 s even if slow reloads kept it from finishing
SETTLE_S = 5.0  # after the load, how long the reload counters may take to settle
SEED = 2026
# granian's line for a response whose client went away: wrk closes its connections when a run ends,
# in the middle of the NDJSON streams of email batches (about 60 ms to 300 ms long) still running.
CUT_BY_CLIENT = 'ASGI transport error: "Closed'
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class EmailCheck:
    """What loadtests/emails.lua counted in the NDJSON responses of one wrk run."""

    responses: int
    complete: int
    incomplete: int
    lines: int
    bytes: int
    blocks: int
    fallbacks: int
    hits: int
    misses: int
    first_failure: str

    @classmethod
    def read(cls, path: Path) -> EmailCheck:
        counts, _, failure = path.read_text().partition("first_failure=")
        values = dict(pair.split("=", 1) for pair in counts.split())
        names = [f.name for f in fields(cls) if f.name != "first_failure"]
        return cls(**{name: int(values[name]) for name in names}, first_failure=failure.strip())


@dataclass
class Row:
    scenario: str
    request: str
    result: WrkResult | None
    note: str = ""
    recipients: int = 0  # per request, for email batches
    check: EmailCheck | None = None


@dataclass
class Run:
    """Everything one invocation measured and checked, for the report."""

    args: argparse.Namespace
    wrk: str
    tmp: Path
    rows: list[Row] = field(default_factory=list)
    servers: dict[str, str] = field(default_factory=dict)  # name -> command line
    facts: list[str] = field(default_factory=list)  # lines of the report below the table
    problems: list[str] = field(default_factory=list)  # failed checks: exit status 1
    pgids: list[int] = field(default_factory=list)

    def measure(
        self,
        scenario: str,
        request: str,
        server: Started,
        url: str,
        *script_args: str,
        script: Path = LUA,
        connections: int | None = None,
    ) -> WrkResult:
        """Warm up, then one measured wrk run; the row goes into the report."""
        load = {
            "connections": connections or self.args.connections,
            "threads": self.args.threads,
            "server_pgid": server.pgid,
        }
        lua = script if script_args else None
        run_wrk(self.wrk, url, seconds=WARMUP_S, script=lua, script_args=script_args, **load)
        result = run_wrk(self.wrk, url, seconds=self.args.duration, script=lua, script_args=script_args, **load)
        self.rows.append(Row(scenario, request, result))
        _progress(f"{scenario}: {result.rps:,.0f} req/s, p99 {result.latency_ms[99]:.2f} ms, failed {result.failed}")
        return result


@dataclass
class Tailor:
    """The running Tailor server and what its scenarios need."""

    base: str
    server: Started
    bundle: Path
    bodies: Path
    plan: Plan


# --- the ceiling ------------------------------------------------------------------------------


def ceiling_command(port: int, workers: int) -> list[str]:
    """granian as ``tailor serve`` configures it (service/cli.py, _run_granian): ASGI, factory,
    no access log, failed workers respawned, websockets left on (granian's default there too), uvloop."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port),
        "--workers", str(workers), "--factory", "--no-access-log", "--respawn-failed-workers",
        "--loop", GRANIAN_LOOP.value, "--working-dir", str(ROOT), "loadtests.ceiling_app:create_app",
    ]  # fmt: skip


def measure_ceiling(run: Run) -> None:
    port = free_port()
    base = f"http://{HOST}:{port}"
    echo_file = run.tmp / "echo.jsonl"
    echo_file.write_bytes(echo_body() + b"\n")
    command = ceiling_command(port, run.args.workers)
    run.servers["ceiling"] = _shown(command)
    with process_group(command, log=run.tmp / "ceiling.log") as server:
        run.pgids.append(server.pgid)
        wait_ready(base, "/hello", server, workers=run.args.workers)
        run.measure("Ceiling: hello world", "GET /hello", server, base + "/hello")
        echo = f"POST /echo ({len(echo_body())} B)"
        run.measure("Ceiling: 1 KB JSON echo", echo, server, base, str(echo_file), "/echo")


# --- Tailor -----------------------------------------------------------------------------------


def measure_tailor(run: Run) -> None:
    bundle = _bundle_copy(run.tmp / "bundle")
    (run.tmp / "staging").mkdir()
    plan = make_plan(bundle, run.tmp)
    views = page_views(1000, SEED, datetime.now(UTC))
    bodies = run.tmp / "pageviews.jsonl"
    bodies.write_text("".join(json.dumps(view.body, separators=(",", ":")) + "\n" for view in views))
    mean = bodies.stat().st_size // len(views)
    run.facts.append(f"Page-view mix (seed {SEED}): {describe(views)}; mean body {mean} B.")

    port = free_port()
    base = f"http://{HOST}:{port}"
    command = tailor_command(bundle, port, run.args.workers)
    env = {"TAILOR_RELOAD_INTERVAL": str(RELOAD_INTERVAL_S), "TAILOR_STATE_DIR": str(run.tmp / "state")}
    run.servers["tailor"] = f"TAILOR_RELOAD_INTERVAL={RELOAD_INTERVAL_S} " + _shown(command)
    log = run.tmp / "tailor.log"
    with process_group(command, log=log, env=env) as server:
        run.pgids.append(server.pgid)
        wait_ready(base, "/readyz", server, workers=run.args.workers)
        tailor = Tailor(base, server, bundle, bodies, plan)
        run.facts.append(describe_bundle(base))
        run.facts.append(f"Server memory after start: {group_rss_mb(server.pgid):.0f} MB RSS (all processes).")
        check_mix(run, tailor, views)
        for scenario in EMAIL_SCENARIOS if run.args.only == "emails" else TAILOR_SCENARIOS:
            scenario(run, tailor)
    check_log(run, log)


def tailor_command(bundle: Path, port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "service.cli", "serve", "--bundle", str(bundle), "--host", HOST,
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


def _bundle_copy(target: Path) -> Path:
    """The repository's bundle, copied: the reload scenario edits it."""
    for part in ("rules", "content", "models"):
        if (ROOT / part).exists():
            shutil.copytree(ROOT / part, target / part)
    return target


def describe_bundle(base: str) -> str:
    """What the server serves, from GET /v1/bundle: the figures depend on it."""
    info = httpx.get(base + "/v1/bundle", timeout=5.0).json()
    models = ", ".join(f"{m['name']} ({m['kind']})" for m in info.get("models", [])) or "none"
    return (
        f"Bundle: a copy of the repository's rules/, content/ and models/, revision {info['revision']}: "
        f"{len(info['placements'])} placements, {len(info['segments'])} segments, "
        f"{len(info['experiments'])} experiments, models: {models}."
    )


def check_mix(run: Run, tailor: Tailor, views: list[PageView]) -> None:
    """Send every body once before the load: all must answer 200, and the mix must reach the rules."""
    statuses: Counter[int] = Counter()
    segments: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    with httpx.Client(base_url=tailor.base, timeout=5.0) as client:
        for view in views:
            response = client.post("/v1/decide", json=view.body)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                decision = response.json()
                segments.update(decision["segments"])
                reasons.update(placed["reason"] for placed in decision["placements"].values())
    if statuses[200] != len(views):
        run.problems.append(f"page-view bodies not answered 200: {dict(statuses)}")
    shares = ", ".join(f"{name} {count / len(views):.0%}" for name, count in segments.most_common())
    run.facts.append(f"Mix check (each body once, before the load): {statuses[200]}/{len(views)} answered 200.")
    run.facts.append(f"Visitors in each segment: {shares}.")
    run.facts.append(f"Placement reasons: {', '.join(f'{r} {n}' for r, n in reasons.most_common())}.")


def page_view_load(run: Run, tailor: Tailor) -> None:
    result = run.measure("Tailor: page views", "POST /v1/decide (mix)", tailor.server, tailor.base, str(tailor.bodies))
    run.facts.append(f"Server memory after the page views: {group_rss_mb(tailor.server.pgid):.0f} MB RSS.")
    if result.failed:
        run.problems.append(f"page views: {result.failed} failed requests")


def page_view_render_load(run: Run, tailor: Tailor, scenario: str = "Tailor: page views, render: true") -> None:
    """The same page views with ``"render": true``: what rendering the blocks adds to a decision."""
    bodies = run.tmp / "pageviews-render.jsonl"
    if not bodies.exists():
        with tailor.bodies.open() as source, bodies.open("w") as target:
            for line in source:
                target.write(json.dumps({**json.loads(line), "render": True}, separators=(",", ":")) + "\n")
    with httpx.Client(base_url=tailor.base, timeout=5.0) as client:
        before = scrape(client)
    result = run.measure(scenario, "POST /v1/decide (mix, render)", tailor.server, tailor.base, str(bodies))
    with httpx.Client(base_url=tailor.base, timeout=5.0) as client:
        after = scrape(client)
    hits, misses, fallbacks = (a - b for a, b in zip(render_counts(after), render_counts(before), strict=True))
    answered = decide_responses(after).get("2xx", 0) - decide_responses(before).get("2xx", 0)
    blocks = hits + misses
    plain = next((row.result for row in run.rows if row.scenario == "Tailor: page views" and row.result), None)
    ratio = f"; {result.rps / plain.rps:.0%} of the page views' requests/s without render" if plain else ""
    run.facts.append(
        f"{scenario} (warm-up and measured run, from /metrics): {answered:,} requests, {blocks:,} blocks "
        f"({blocks / max(1, answered):.2f} a request), render cache hits {hits:,}, misses {misses:,} "
        f"({hits / max(1, blocks):.1%} hits), fallbacks {fallbacks}{ratio}."
    )
    if result.failed or fallbacks:
        run.problems.append(f"{scenario}: {result.failed} failed requests, {fallbacks} fallback blocks")
    if scenario.endswith("cache off") and hits:
        run.problems.append(f"{scenario}: {hits} render cache hits on a server without a render cache")


def render_counts(samples: dict[str, float]) -> tuple[int, int, int]:
    """(cache hits, cache misses, fallbacks) of the blocks a server rendered, summed over the workers."""
    hits = samples.get('tailor_render_seconds_count{cache="hit"}', 0.0)
    misses = samples.get('tailor_render_seconds_count{cache="miss"}', 0.0)
    fallbacks = sum(
        value
        for key, value in samples.items()
        if key.startswith("tailor_rendered_blocks_total{") and 'status="fallback"' in key
    )
    return int(hits), int(misses), int(fallbacks)


def email_batch(run: Run, tailor: Tailor) -> None:
    """Cart emails rendered in batches through POST /v1/render, with the server's render cache.

    The bodies cycle through EMAIL_RECIPIENTS different recipients, so after the warm-up every
    block is a hit: a re-send to the same people, the best case. ``without_render_cache`` measures
    the same bodies on a server whose render cache is off, as for a campaign to new recipients.
    """
    bodies, sample = write_email_bodies(run, run.args.batch)
    check_email_sample(run, tailor.base, sample)
    measure_emails(run, "Tailor: email batch, cache on", tailor, bodies)
    run.facts.append(f"Server memory after the cached email batches: {group_rss_mb(tailor.server.pgid):.0f} MB RSS.")


def without_render_cache(run: Run, tailor: Tailor) -> None:
    """A second server on the same bundle with its render cache off: every block is rendered."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    command = tailor_command(tailor.bundle, port, run.args.workers)
    cache_off = {PREFIX + f.name.upper(): "0" for f in fields(Settings) if f.name.startswith("render_cache")}
    env = {
        "TAILOR_RELOAD_INTERVAL": str(RELOAD_INTERVAL_S),
        "TAILOR_STATE_DIR": str(run.tmp / "state-uncached"),
        **cache_off,
    }
    shown_env = " ".join(f"{k}={v}" for k, v in env.items() if k != "TAILOR_STATE_DIR")
    run.servers["tailor, render cache off"] = f"{shown_env} {_shown(command)}"
    log = run.tmp / "tailor-uncached.log"
    with process_group(command, log=log, env=env) as server:
        run.pgids.append(server.pgid)
        wait_ready(base, "/readyz", server, workers=run.args.workers)
        uncached = Tailor(base, server, tailor.bundle, tailor.bodies, tailor.plan)
        measure_emails(run, "Tailor: email batch, cache off", uncached, email_bodies(run))
        if run.args.only != "emails":
            page_view_render_load(run, uncached, "Tailor: page views, render: true, cache off")
    check_log(run, log, "Server log (render cache off)")


def email_bodies(run: Run) -> Path:
    return run.tmp / "emails.jsonl"


def write_email_bodies(run: Run, batch: int) -> tuple[Path, dict[str, object]]:
    """The batch bodies, one a line, all with ``batch`` recipients; and the first of them."""
    count = max(1, EMAIL_RECIPIENTS // batch)
    bodies = emails.batches(count, batch, SEED, datetime.now(UTC))
    path = email_bodies(run)
    path.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
    everyone = [r for body in bodies for r in body["recipients"]]
    languages = Counter(emails.context_of(r)["locale"] + "/" + emails.context_of(r)["currency"] for r in everyone)
    consent = sum(r["consent"]["personalization"] for r in everyone) / len(everyone)
    run.facts.append(
        f"Email batches (tests/bench/emails.py, seed {SEED}): {count} bodies of {batch} recipients, "
        f"{len(everyone):,} recipients in all, all different, cycled by wrk; placement {emails.PLACEMENT} "
        f"(experiment cart_email_test); mean body {path.stat().st_size // count:,} B; "
        f"locale/currency {', '.join(f'{k} {v / len(everyone):.0%}' for k, v in languages.most_common())}; "
        f"personalization consent {consent:.0%}."
    )
    return path, bodies[0]


def check_email_sample(run: Run, base: str, body: dict[str, object]) -> None:
    """One batch before the load, read in Python: lines in order, one per recipient, each rendered for them."""
    recipients = body["recipients"]
    assert isinstance(recipients, list)
    headers = {"accept": "application/x-ndjson"}
    response = httpx.post(base + "/v1/render", json=body, headers=headers, timeout=30.0)
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    problems = []
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith("application/x-ndjson"):
        problems.append(f"answered {response.status_code} {response.headers.get('content-type')}")
    if len(lines) != len(recipients) + 1 or "summary" not in lines[-1]:
        problems.append(f"{len(lines)} lines for {len(recipients)} recipients")
    variants: Counter[str] = Counter()
    for index, (line, recipient) in enumerate(zip(lines, recipients, strict=False)):
        placed = line.get("placements", {}).get(emails.PLACEMENT, {})
        variants[f"{placed.get('variant')} ({placed.get('reason')})"] += 1
        name = recipient["attributes"].get("first_name") if recipient["consent"]["personalization"] else None
        wrong = (
            line.get("index") != index
            or line.get("visitor_id") != recipient["id"]
            or placed.get("render_status") != "rendered"
            or (name is not None and name not in placed.get("html", ""))
        )
        if wrong:
            problems.append(f"recipient {index}: {json.dumps(line)[:200]}")
    run.facts.append(
        f"Email check (the first body once, before the load, read line by line): {len(lines)} lines, "
        f"{response.headers.get('content-length') or len(response.content):,} B; variants: "
        f"{', '.join(f'{k} {v}' for k, v in variants.most_common())}; "
        f"{'every recipient rendered, in order, with their name' if not problems else problems[0]}."
    )
    if problems:
        run.problems.append(f"email check: {len(problems)} problem(s), first: {problems[0]}")


def measure_emails(run: Run, scenario: str, tailor: Tailor, bodies: Path) -> None:
    """One email-batch row: wrk through loadtests/emails.lua, which checks every NDJSON response."""
    batch = run.args.batch
    check_file = run.tmp / "emails-check.txt"
    request = f"POST /v1/render ({batch} recipients, NDJSON)"
    url, path = tailor.base, "/v1/render"
    result = run.measure(
        scenario, request, tailor.server, url, str(bodies), str(batch), str(check_file), path,
        script=EMAIL_LUA, connections=run.args.email_connections,
    )  # fmt: skip
    check = EmailCheck.read(check_file)  # the measured run's: the warm-up's file was overwritten
    row = run.rows[-1]
    row.recipients, row.check = batch, check
    _progress(f"{scenario}: {result.rps * batch:,.0f} recipients/s, {check.incomplete} incomplete responses")
    checks = {
        "incomplete responses": (check.incomplete, 0),
        "responses checked, against wrk's count": (check.responses, result.requests),
        "recipient lines": (check.lines, check.complete * batch),
        "fallback blocks": (check.fallbacks, 0),
    }
    if scenario.endswith("cache off"):
        checks["render cache hits"] = (check.hits, 0)
    for name, (got, want) in checks.items():
        if got != want:
            detail = f" (first: {check.first_failure})" if check.first_failure else ""
            run.problems.append(f"{scenario}: {name}: {got}, expected {want}{detail}")
    if result.failed:
        run.problems.append(f"{scenario}: {result.failed} failed requests")


def reloads_under_load(run: Run, tailor: Tailor) -> None:
    """The page-view load while the reload thread edits the rules 50 times; then every check."""
    duration = run.args.duration
    with httpx.Client(base_url=tailor.base, timeout=5.0) as client:
        before = scrape(client)
    rss_before = group_rss_mb(tailor.server.pgid)
    reloader = Reloader(
        tailor.plan, tailor.base, run.args.workers, spacing=reload_spacing(duration),
        tail=duration * (1 - RELOAD_SHARE), staging=run.tmp / "staging",
    )  # fmt: skip
    reloader.start()
    try:
        result = run_wrk(
            run.wrk, tailor.base, seconds=reload_bound(duration), connections=run.args.connections,
            threads=run.args.threads, server_pgid=tailor.server.pgid, script=LUA, script_args=[str(tailor.bodies)],
            stop_when=reloader.finished,
        )  # fmt: skip
    finally:
        reloader.stop.set()
        reloader.join(timeout=SETTLE_S)
    run.rows.append(Row("Tailor: page views + 50 reloads", "POST /v1/decide (mix)", result))
    _progress(f"reloads: {result.rps:,.0f} req/s, p99 {result.latency_ms[99]:.2f} ms, failed {result.failed}")
    check_reloads(run, tailor, before, result, reloader)
    run.facts.append(
        f"Server memory around the reload run: {rss_before:.0f} MB before, "
        f"{group_rss_mb(tailor.server.pgid):.0f} MB after (RSS, all processes)."
    )


def reload_spacing(duration: int) -> float:
    """The shortest time between two edits: 50 of them fill 90 % of the duration if reloads are quick."""
    return duration * RELOAD_SHARE / RELOADS


def reload_bound(duration: int) -> int:
    return RELOAD_BOUND * duration + 10


TAILOR_SCENARIOS: tuple[Callable[[Run, Tailor], None], ...] = (
    page_view_load,
    page_view_render_load,
    email_batch,
    without_render_cache,
    reloads_under_load,
)
# ``--only emails``: the email batches with the cache on and off, nothing else (a render change's A/B runs)
EMAIL_SCENARIOS: tuple[Callable[[Run, Tailor], None], ...] = (email_batch, without_render_cache)


# --- checks -------------------------------------------------------------------------------------


def check_reloads(run: Run, tailor: Tailor, before: dict[str, float], result: WrkResult, reloader: Reloader) -> None:
    plan, workers, outcome = tailor.plan, run.args.workers, reloader.outcome
    expected = (plan.valid * workers, plan.broken * workers)
    with httpx.Client(base_url=tailor.base, timeout=5.0) as client:
        deadline = time.monotonic() + SETTLE_S
        while True:
            after = scrape(client)
            counted = tuple(a - b for a, b in zip(reload_counts(after), reload_counts(before), strict=True))
            if counted == expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    served = _served_everywhere(tailor.base, workers)
    vip_hero = _vip_hero(tailor.base)
    statuses = {
        k: v - decide_responses(before).get(k, 0) for k, v in decide_responses(after).items() if k != "2xx"
    }  # the server's own count of failed decisions during the run
    live = sorted(key for key, value in after.items() if key.startswith("tailor_bundle_info{") and value == 1)

    checks = {
        "requests failed (wrk: non-2xx + socket errors)": (result.failed, 0),
        "edits made": (outcome.written, RELOADS),
        f"edits not reloaded by every worker within {LAND_TIMEOUT_S:.0f} s": (outcome.not_landed, 0),
        "reloads counted by the workers (ok, error)": (counted, expected),
        "revision served on every connection at the end": (served, {plan.final.expected_revision}),
        "VIP home_hero at the end": (vip_hero, plan.final.vip_hero),
        "wrong revision after a reload landed": (len(outcome.wrong_revision), 0),
        "reload thread errors": (outcome.errors, []),
    }
    broken_kinds = ", ".join(step.kind for step in plan.steps if step.broken)
    spacing = reload_spacing(run.args.duration)
    lines = [
        (
            f"{outcome.written} edits of rules/placements.yaml ({plan.valid} valid, alternating the VIP hero "
            f"between hero_vip and hero_bold; {plan.broken} broken: {broken_kinds}), each once the previous one "
            f"had been reloaded by every worker and at least {spacing:.2f} s after it; TAILOR_RELOAD_INTERVAL="
            f"{RELOAD_INTERVAL_S}, {workers} worker(s). The load ran {result.seconds:.1f} s, stopped "
            f"{run.args.duration * (1 - RELOAD_SHARE):.1f} s after the last reload."
        ),
        (
            f"Time from an edit to every worker having reloaded it: {outcome.apply_summary()}; "
            f"{outcome.scrapes} GET /metrics while waiting, part of the load."
        ),
        (
            f"Socket errors {result.socket_errors}, non-2xx {result.non_2xx}; server-side non-2xx /v1/decide: "
            f"{statuses or 'none'}; bundle revisions live at the end: {live}."
        ),
    ]
    for name, (got, want) in checks.items():
        verdict = "ok" if got == want else "FAILED"
        lines.append(f"{name}: {_plain(got)} (expected {_plain(want)}): {verdict}")
        if got != want:
            run.problems.append(f"reloads: {name}: {got}, expected {want}")
    run.facts.append("Reload run:" + "".join(f"\n  - {line}" for line in lines))


def _served_everywhere(base: str, workers: int) -> set[str]:
    """Revisions GET /v1/bundle reports over many new connections (so every worker answers)."""
    revisions = set()
    for _ in range(workers * 10):
        info = httpx.get(base + "/v1/bundle", timeout=5.0).json()
        revisions.add(info["revision"])
        if info.get("last_load_errors"):
            revisions.add("(with last_load_errors)")
    return revisions


def _vip_hero(base: str) -> str:
    vip = {
        "visitor": {
            "id": "v-vip",
            "attributes": {"orders_12m": 6, "spend_12m": 900},
            "consent": {"personalization": True},
        },
        "placements": ["home_hero"],
    }
    heroes = {
        httpx.post(base + "/v1/decide", json=vip, timeout=5.0).json()["placements"]["home_hero"]["variant"]
        for _ in range(10)
    }
    return heroes.pop() if len(heroes) == 1 else f"mixed {sorted(heroes)}"


def check_log(run: Run, log: Path, label: str = "Server log") -> None:
    """Count the server's log lines by level; errors other than the broken edits' are problems."""
    levels: Counter[str] = Counter()
    unexpected = []
    cut = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # granian's own lines are text
            if CUT_BY_CLIENT in line:
                cut += 1
            elif "Traceback" in line or "error" in line.lower():
                unexpected.append(line)
            continue
        level = str(entry.get("level", "?"))
        levels[level] += 1
        if level in ("ERROR", "CRITICAL") and not str(entry.get("message", "")).startswith("bundle not reloaded"):
            unexpected.append(line)
    run.facts.append(
        f"{label}: {dict(levels)} JSON lines; ERROR lines other than 'bundle not reloaded' (the broken edits): "
        f"{len(unexpected)}; responses cut when wrk stopped ({CUT_BY_CLIENT}): {cut}."
    )
    if unexpected:
        run.problems.append(f"{label}: {len(unexpected)} unexpected error line(s), first: {unexpected[0][:300]}")


def _plain(value: object) -> str:
    """Sets sorted (their order means nothing), tuples in order, empty ones as "none"."""
    if isinstance(value, set | list | tuple):
        items = sorted(value, key=str) if isinstance(value, set) else value
        return "(" + ", ".join(str(v) for v in items) + ")" if items else "none"
    return str(value)


# --- the report ---------------------------------------------------------------------------------


def render(run: Run, machine: dict[str, str], command: str, leftovers: list[int]) -> str:
    a = run.args
    lines = [
        f"### {a.workers} worker(s), {a.connections} connections, {a.threads} wrk threads, {a.duration} s per run",
        "",
        f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        "",
        *_table(run.rows),
        "",
        *_email_table(run.rows),
        "Shares are of the requests/s measured in this run. Server CPU: the user + system time of all the",
        "server's processes during the measured run, per request answered. Cores: CPU seconds per second of",
        "the run used by the server's processes, by wrk, by every other process (this runner included), and",
        f"stolen by the hypervisor; the last two are the noise on these {machine.get('cores')} shared cores.",
        "",
        *(f"- {fact}" for fact in run.facts),
        "",
        "Servers:",
        "",
        *(f"- {name}: `{cmd}`" for name, cmd in run.servers.items()),
        "",
        f"Load (each measured run after a {WARMUP_S} s warm-up with the same command, except the reload run):",
        "",
        *(f"- {row.scenario}: `{_shown(row.result.command)}`" for row in run.rows if row.result),
        "",
        f"Processes left after the run: {leftovers or 'none'}.",
        f"Checks: {'all passed' if not run.problems else 'FAILED: ' + '; '.join(run.problems)}.",
    ]
    return "\n".join(lines) + "\n"


def _table(rows: list[Row]) -> list[str]:
    ceiling = {row.scenario: row.result.rps for row in rows if row.result and row.scenario.startswith("Ceiling")}
    hello = ceiling.get("Ceiling: hello world")
    echo = ceiling.get("Ceiling: 1 KB JSON echo")
    columns = ["Scenario", "Request", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "failed"]
    columns += ["share of hello", "share of echo", "server CPU µs/req", "cores: server / wrk / other / stolen"]
    out = ["| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
    for row in rows:
        r = row.result
        if r is None:
            out.append(f"| {row.scenario} | {row.request} | {row.note} |" + " |" * (len(columns) - 3))
            continue
        p = r.latency_ms
        cpu = (r.server_cpu_s, r.client_cpu_s, r.other_cpu_s, r.stolen_cpu_s)
        cores = " / ".join(f"{seconds / r.seconds:.2f}" for seconds in cpu)
        out.append(
            f"| {row.scenario} | {row.request} | {r.rps:,.0f} | {p[50]:.2f} | {p[90]:.2f} | {p[99]:.2f} | "
            f"{r.max_ms:.1f} | {r.failed} | {_share(r.rps, hello)} | {_share(r.rps, echo)} | "
            f"{r.server_cpu_us_per_request:.0f} | {cores} |"
        )
    return out


def _email_table(rows: list[Row]) -> list[str]:
    """Email batches per recipient: what a sender plans with. Empty when the run had none."""
    columns = ["Scenario", "recipients/request", "recipients/s", "batches/s", "p50 ms", "p90 ms", "p99 ms"]
    columns += ["responses checked", "incomplete", "cache hits / misses", "MB/s sent", "server CPU µs/recipient"]
    out = ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    for row in rows:
        r, c = row.result, row.check
        if r is None or c is None or not row.recipients:
            continue
        p = r.latency_ms
        out.append(
            f"| {row.scenario} | {row.recipients} | {r.rps * row.recipients:,.0f} | {r.rps:,.1f} | {p[50]:.1f} | "
            f"{p[90]:.1f} | {p[99]:.1f} | {c.responses:,} | {c.incomplete} | {c.hits:,} / {c.misses:,} | "
            f"{c.bytes / r.seconds / 1e6:.1f} | {r.server_cpu_us_per_request / row.recipients:.0f} |"
        )
    if len(out) == 2:
        return []
    return [
        *out,
        "",
        "Email batches: recipients/s is requests/s times the recipients of a request; a response is complete when",
        "it has one line per recipient in order and the summary line (loadtests/emails.lua reads every response).",
        "",
    ]


def _share(rps: float, of: float | None) -> str:
    return f"{rps / of:.0%}" if of else ""


def _shown(command: list[str]) -> str:
    """A command as typed from the repository root (temporary paths shortened to TMP)."""

    def shown(part: str) -> str:
        if part == sys.executable:
            return ".venv/bin/python"
        if part == str(ROOT):
            return "."
        if part.startswith(str(ROOT) + os.sep):
            return os.path.relpath(part, ROOT)
        if part.startswith(tempfile.gettempdir()):
            return "TMP/" + Path(part).name
        return "wrk" if part == shutil.which("wrk") else part

    return " ".join(shown(part) for part in command)


# --- main ---------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"[loadtest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    """Unwind through every ``finally`` (servers and wrk are stopped there); a second signal must not
    interrupt that clean-up, so further ones are ignored."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _progress(f"stopped by signal {signum}: stopping the servers and wrk")
    raise SystemExit(128 + signum)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=15, help="seconds of each measured run (default 15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--workers", type=int, default=1, help="granian workers of both servers (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--batch", type=int, default=100, help="recipients per email batch request (default 100)")
    parser.add_argument(
        "--email-connections", type=int, default=4, help="wrk connections of the email batches (default 4)"
    )
    parser.add_argument(
        "--only", choices=("all", "emails"), default="all", help="'emails': only the email batches (default all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results" / "latest.md", help="report file")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.workers < 1 or args.threads < 1 or args.batch < 1:
        parser.error("duration, workers, threads and batch must be at least 1")
    if min(args.connections, args.email_connections) < args.threads:
        parser.error("connections and email connections must be at least threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    command = " ".join([".venv/bin/python", "loadtests/run.py", *(argv if argv is not None else sys.argv[1:])])
    wrk = ensure_wrk()
    machine = machine_facts(wrk)
    for sig in STOP_SIGNALS:  # also SIGINT: a shell may have started us with it ignored
        signal.signal(sig, _stop_on_signal)
    measured = 7 * (args.duration + WARMUP_S) + 60  # seven runs with warm-ups, three start-ups and checks
    usual, bound = measured + args.duration, measured + reload_bound(args.duration)
    _progress(f"{args.workers} worker(s): about {usual} s, at most {bound} s")
    with tempfile.TemporaryDirectory(prefix="tailor-loadtest-") as folder:
        run = Run(args, wrk, Path(folder))
        try:
            if args.only == "all":
                measure_ceiling(run)
            measure_tailor(run)
        finally:
            leftovers = [pid for pgid in run.pgids for pid in group_pids(pgid)]
    if leftovers:
        run.problems.append(f"processes left running: {leftovers}")
    report = render(run, machine, command, leftovers)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    _progress(f"report written to {args.out}")
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
