"""The example server's logs, analysed: a real ``tailor serve`` with the decision log on, a few
thousand simulated visitors, their outcomes, then ``tailor analyze`` (text and HTML).

The server listens on 127.0.0.1 only and is stopped, with its workers, when the visitors are done.
Outcomes go through ``POST /v1/events`` with their times (the server allows client time), else
through the telemetry recorder with the server's pseudonym key (what the endpoint does). ``bold`` converts better among
repeat visitors only (the planted lift); the other segments have none.

    .venv/bin/python loadtests/analysis_demo.py --out /tmp/analysis-demo [--visitors 3000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from harness import HOST, ROOT, free_port, process_group, wait_ready

from service.telemetry import DecisionLog, DecisionRecorder, JsonLinesSink, Pseudonymizer

KEY = "analysis-demo-pseudonym-key-0123456789"
WORKERS = 2
PLANTED = "repeat_visitor"
PROFILES = [  # attributes, the segment they put the visitor in
    ({"sessions_7d": 5}, PLANTED),
    ({"views": {"electronics_7d": 4}}, "electronics_fan"),
    ({"app_version": "4.2.0"}, "modern_app"),
    ({}, None),
]
BASE_RATE, PLANTED_RATE = 0.10, 0.25
LOG_WAIT_S = 60.0


def decide_all(base: str, visitors: int) -> list[tuple[str, str, str | None]]:
    """(visitor id, arm, segment) of every visitor the experiment took in."""
    taken = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for number in range(visitors):
            attributes, segment = PROFILES[number % len(PROFILES)]
            visitor = {"id": f"demo-{number}", "attributes": attributes,
                       "consent": {"personalization": True, "analytics": True}}  # fmt: skip
            answer = http.post("/v1/decide", json={"visitor": visitor, "placements": ["home_hero", "promo_banner"]})
            placed = answer.json()["placements"]["home_hero"]
            if placed["reason"] == "experiment":
                taken.append((str(visitor["id"]), placed["experiment"]["arm"], segment))
    return taken


def outcomes(taken: list[tuple[str, str, str | None]], seed: int) -> list[dict[str, object]]:
    """Purchases after the exposure (the planted lift), and some before it (the CUPED covariate)."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    found: list[dict[str, object]] = []
    for visitor, arm, segment in taken:
        rate = PLANTED_RATE if arm == "bold" and segment == PLANTED else BASE_RATE
        if rng.random() < rate:
            found.append({"visitor_id": visitor, "metric": "purchase", "value": round(float(rng.gamma(2, 25)), 2),
                          "time": now + timedelta(minutes=float(rng.uniform(1, 30)))})  # fmt: skip
        if rng.random() < 0.2:
            found.append({"visitor_id": visitor, "metric": "purchase", "value": round(float(rng.gamma(2, 25)), 2),
                          "time": now - timedelta(days=float(rng.uniform(1, 6)))})  # fmt: skip
    return found


def send_outcomes(base: str, found: list[dict[str, object]], logs: Path) -> str:
    """Through /v1/events when the server has it, else the recorder; both keep the events' times."""
    with httpx.Client(base_url=base, timeout=10) as http:
        probe = http.post("/v1/events", json={"events": []})
        if probe.status_code != 404:
            for start in range(0, len(found), 100):
                batch = [{"visitor_id": o["visitor_id"], "metric": o["metric"], "value": o["value"],
                          "time": o["time"].isoformat(),  # type: ignore[attr-defined]
                          "consent": {"analytics": True}} for o in found[start : start + 100]]  # fmt: skip
                http.post("/v1/events", json={"events": batch}).raise_for_status()
            return "POST /v1/events"
    recorder = DecisionRecorder(DecisionLog(JsonLinesSink(logs / "outcomes.jsonl")), Pseudonymizer(KEY.encode()))
    for o in found:
        recorder.record_outcome(visitor_id=str(o["visitor_id"]), metric=str(o["metric"]), value=float(o["value"]),  # type: ignore[arg-type]
                                time=o["time"], analytics_consent=True)  # type: ignore[arg-type]  # fmt: skip
    recorder.close(timeout=10)
    return "the telemetry recorder"


def wait_for_lines(folder: Path, count: int) -> None:
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        if sum(len(p.read_bytes().splitlines()) for p in folder.glob("decisions*.jsonl*")) >= count:
            return
        time.sleep(0.2)


def analyze(logs: Path, out: Path) -> None:
    command = [sys.executable, "-m", "service.cli", "analyze", str(logs), "--bundle", str(ROOT)]
    text = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    (out / "report.txt").write_text(text.stdout)
    print(text.stdout, text.stderr, sep="")
    html = [*command, "--format", "html", "--out", str(out / "report.html")]
    subprocess.run(html, cwd=ROOT, check=False, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the logs and reports (replaced)")
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    logs = args.out / "logs"
    logs.mkdir(parents=True)
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--bundle", str(ROOT), "--host", HOST,
               "--port", str(port), "--workers", str(WORKERS)]  # fmt: skip
    # the outcomes carry their own times (purchases before the exposure are the CUPED covariate)
    env = {"TAILOR_DECISION_LOG": str(logs / "decisions.jsonl"), "TAILOR_PSEUDONYM_KEY": KEY,
           "TAILOR_ALLOW_CLIENT_TIME": "1"}  # fmt: skip
    with process_group(command, log=args.out / "server.log", env=env) as started:
        base = f"http://{HOST}:{port}"
        wait_ready(base, "/readyz", started, workers=WORKERS)
        taken = decide_all(base, args.visitors)
        via = send_outcomes(base, outcomes(taken, args.seed), logs)
        wait_for_lines(logs, 2 * args.visitors)
    print(f"{args.visitors} visitors decided, {len(taken)} in the experiment; outcomes through {via}\n")
    analyze(logs, args.out)


if __name__ == "__main__":
    main()
