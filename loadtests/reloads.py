"""Rule reloads while the server is under load: the plan of edits, and the thread that makes them.

The plan rewrites rules/placements.yaml of the served bundle 50 times: valid edits alternate
between the original file and a version where the VIP rule serves ``hero_bold`` instead of
``hero_vip`` (so every valid edit is a new revision, visible in decisions), and 5 edits are
broken in different ways and must change nothing. Every version is checked offline with
the service's own loader before the run, so a surprise is the server's, not the plan's.

Files are replaced atomically (write elsewhere, then rename), as a deploy tool would: a
watcher that polls in the middle of a plain ``write_text`` could see half a file, which
would be a genuine but different finding (and would make the expected counts uncertain).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loadtests.harness import reload_counts, scrape
from service.bundle.loader import load_bundle, revision_of
from service.core.errors import BundleError

RULES_FILE = Path("rules") / "placements.yaml"
RELOADS = 50
BROKEN_AT = frozenset({4, 14, 24, 34, 44})  # 5 of the 50, spread out, none last
VIP_SERVES = ("serve: hero_vip", "serve: hero_bold")
POLL_S = 0.05  # how often the thread looks at /metrics while waiting for a reload to land
LAND_TIMEOUT_S = 5.0  # an edit not reloaded by every worker by then is a failure; the next edit follows


def _unknown_segment(text: str) -> str:
    return text.replace("segment: vip,", "segment: vipp,", 1)


def _unknown_variant(text: str) -> str:
    return text.replace("serve: hero_winback", "serve: hero_winbak", 1)


def _yaml_syntax(text: str) -> str:
    return text + "\n  broken: [unclosed\n"


def _wrong_version(text: str) -> str:
    return text.replace("version: 1", "version: 99", 1)


def _truncated(text: str) -> str:
    """Cut in the middle of the experiments: a half-copied file."""
    return text[: text.index("    arms:")] + "    arms:\n      - { key: control, variant: hero_def"


BREAKERS: tuple[Callable[[str], str], ...] = (
    _unknown_segment,
    _unknown_variant,
    _yaml_syntax,
    _wrong_version,
    _truncated,
)


@dataclass(frozen=True, slots=True)
class Step:
    text: str
    broken: bool
    kind: str
    expected_revision: str  # what the server must serve once the step has been picked up
    vip_hero: str  # the VIP's home_hero variant in that revision


@dataclass(frozen=True, slots=True)
class Plan:
    target: Path  # rules/placements.yaml in the served bundle
    steps: tuple[Step, ...]
    initial_revision: str

    @property
    def valid(self) -> int:
        return sum(1 for step in self.steps if not step.broken)

    @property
    def broken(self) -> int:
        return sum(1 for step in self.steps if step.broken)

    @property
    def final(self) -> Step:
        return [step for step in self.steps if not step.broken][-1]


def make_plan(bundle: Path, scratch: Path) -> Plan:
    """The 50 edits, each checked with load_bundle on a scratch copy of the bundle."""
    original = (bundle / RULES_FILE).read_text()
    if original.count(VIP_SERVES[0]) != 1:
        raise SystemExit(f"{RULES_FILE} no longer has exactly one `{VIP_SERVES[0]}`: update loadtests/reloads.py")
    versions = (original, original.replace(*VIP_SERVES))
    copy = scratch / "plan-check"
    shutil.copytree(bundle, copy)
    revisions = [_check(copy, text, broken=False) for text in versions]
    vip_heroes = ("hero_vip", "hero_bold")

    steps = []
    current = 0  # index into versions of what the server serves
    breakers = iter(BREAKERS)
    for i in range(RELOADS):
        if i in BROKEN_AT:
            breaker = next(breakers)
            text = breaker(versions[current])
            _check(copy, text, broken=True)
            steps.append(Step(text, True, breaker.__name__.strip("_"), revisions[current], vip_heroes[current]))
        else:
            current = 1 - current
            steps.append(Step(versions[current], False, "valid", revisions[current], vip_heroes[current]))
    return Plan(bundle / RULES_FILE, tuple(steps), revisions[0])


def _check(copy: Path, text: str, *, broken: bool) -> str:
    """Write ``text`` into the scratch bundle and make sure it loads (or fails) as the plan says."""
    (copy / RULES_FILE).write_text(text)
    try:
        bundle = load_bundle(copy)
    except BundleError as exc:
        if broken:
            return ""
        raise SystemExit(f"a valid reload version does not load: {exc.problems[0].render()}") from None
    if broken:
        raise SystemExit(f"a 'broken' reload version loads fine (revision {bundle.revision}): fix the plan")
    return revision_of(copy)


def replace_atomically(target: Path, text: str, staging: Path) -> None:
    """Write ``text`` next to nothing the watcher reads, then rename it over ``target``."""
    fd, temporary = tempfile.mkstemp(dir=staging, suffix=".yaml")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, target)


@dataclass
class Outcome:
    """What the reload thread saw, edit by edit."""

    applied_s: list[float] = field(default_factory=list)  # write -> every worker has counted the reload
    not_landed: int = 0  # edits some worker had not reloaded after LAND_TIMEOUT_S
    wrong_revision: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    written: int = 0
    scrapes: int = 0  # GET /metrics made while waiting: load on the server too

    def apply_summary(self) -> str:
        if not self.applied_s:
            return "no reload was seen"
        ms = sorted(t * 1000 for t in self.applied_s)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        return (
            f"median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, max {ms[-1]:.0f} ms "
            f"(/metrics polled every {POLL_S * 1000:.0f} ms)"
        )


class Reloader(threading.Thread):
    """Makes the plan's edits, at most one every ``spacing`` seconds, each once the previous one has landed.

    An edit has landed when the reload counters, summed over the workers, have grown by ``workers``
    for it. Waiting for that before the next edit keeps two edits from falling into one poll of a
    busy worker (which would load them as one reload and make the counts unverifiable), and gives
    the time each reload took under load. ``finished`` is set ``tail`` seconds after the last edit
    landed (or when the thread fails), which is when the runner stops the load.
    """

    def __init__(self, plan: Plan, base: str, workers: int, *, spacing: float, tail: float, staging: Path) -> None:
        super().__init__(name="reloader", daemon=True)
        self.plan = plan
        self.base = base
        self.workers = workers
        self.spacing = spacing
        self.tail = tail
        self.staging = staging
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.outcome = Outcome()

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=5.0) as client:
                wanted = reload_counts(scrape(client))
                next_edit = time.monotonic() + self.spacing  # the load starts meanwhile
                for step in self.plan.steps:
                    if self.stop.wait(max(0.0, next_edit - time.monotonic())):
                        return
                    next_edit = time.monotonic() + self.spacing
                    ok, error = wanted
                    wanted = (ok, error + self.workers) if step.broken else (ok + self.workers, error)
                    self._edit(client, step, wanted)
                self.stop.wait(self.tail)
        except (httpx.HTTPError, OSError, ValueError) as exc:  # reported by the runner, not lost with the thread
            self.outcome.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.finished.set()

    def _edit(self, client: httpx.Client, step: Step, wanted: tuple[int, int]) -> None:
        replace_atomically(self.plan.target, step.text, self.staging)
        written = time.monotonic()
        self.outcome.written += 1
        while time.monotonic() - written < LAND_TIMEOUT_S and not self.stop.is_set():
            ok, error = reload_counts(scrape(client))
            self.outcome.scrapes += 1
            if ok >= wanted[0] and error >= wanted[1]:
                self.outcome.applied_s.append(time.monotonic() - written)
                self._check_revision(step)
                return
            time.sleep(POLL_S)
        self.outcome.not_landed += 1

    def _check_revision(self, step: Step) -> None:
        """Every worker has reloaded: any worker must now serve the step's revision (a new connection)."""
        served = httpx.get(self.base + "/readyz", timeout=5.0).json().get("revision")
        if served != step.expected_revision:
            self.outcome.wrong_revision.append(f"{step.kind}: served {served}, expected {step.expected_revision}")
