"""A storm of good and broken rule edits against a real 2-worker server.

Every state the rule file is ever in is known beforehand, with its revision and whether it
compiles, so whatever revision the server reports can be checked against the bytes written.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.bundle.loader import load_bundle, revision_of
from service.core.errors import BundleError
from tests.integration.server import ROOT, Server, running_server

pytestmark = pytest.mark.integration

SEED = 20261201
STORM_S = 22.0  # bounded: the gaps below average ~0.25 s, so this is some 80 edits
MIN_GAP_S, MAX_GAP_S = 0.01, 1.0
WAIT_S = 20.0  # generous for a shared machine
RESPAWN_S = 9.0  # granian restarts workers one after the other, 3.5 s apart
VIP = {
    "visitor": {"id": "v-vip", "attributes": {"orders_12m": 6, "spend_12m": 900}, "consent": {"personalization": True}},
    "placements": ["home_hero"],
}
GOOD = {  # (old, new) replacements that keep the bundle valid
    "bold": ("serve: hero_vip }", "serve: hero_bold }"),
    "default": ("serve: hero_vip }", "serve: hero_default }"),
    "no_eu": ("      - { name: eu_localized, segment: eu_visitor, serve: hero_eu }\n", ""),
}
BROKEN = {
    "yaml": ("placements:\n", "placements: [\n"),
    "segment": ("segment: vip,", "segment: vipp,"),
    "variant": ("serve: hero_vip }", "serve: hero_nope }"),
    "schema": ("default: hero_default", "default: 7\n    colour: red"),
}


def _copy(target: Path) -> Path:
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, target / kind)
    return target


def _states(bundle: Path, scratch: Path) -> tuple[dict[str, str], dict[str, bool]]:
    """Every text of rules/placements.yaml the storm writes, and revision → compiles, from those exact bytes."""
    base = (bundle / "rules" / "placements.yaml").read_text()
    texts = {"base": base}
    for name, (old, new) in {**GOOD, **BROKEN}.items():
        assert old in base, name
        texts[name] = base.replace(old, new, 1)
    copy = _copy(scratch)
    verdicts = {}
    for name, text in texts.items():
        (copy / "rules" / "placements.yaml").write_text(text)
        verdicts[revision_of(copy)] = _compiles(copy)
        assert verdicts[revision_of(copy)] == (name not in BROKEN), name
    return texts, verdicts


def _compiles(folder: Path) -> bool:
    try:
        load_bundle(folder)
    except BundleError:
        return False
    return True


def _write_atomically(path: Path, text: str) -> None:
    """As editors save: the new bytes under a temporary name, then one rename. Every state is one we wrote."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


class _Poller(threading.Thread):
    """Asks /v1/bundle on fresh connections (so both workers answer) and keeps every revision reported."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.seen: dict[str, int] = {}
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not self.stopping.wait(0.02):
                try:
                    response = http.get("/v1/bundle")
                except httpx.TransportError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                revision = response.json()["revision"]
                self.seen[revision] = self.seen.get(revision, 0) + 1


def _until(check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s")


def _serves(base: str) -> bool:
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for _ in range(10):  # fresh connections reach both workers
            if http.get("/readyz").status_code != 200 or http.post("/v1/decide", json=VIP).status_code != 200:
                return False
    return True


def _check_last_good(state: Path, verdicts: dict[str, bool]) -> str:
    """Every kept copy is named by its revision, was a good state, and compiles; returns the one ``current`` names."""
    folder = state / "last-good"
    copies = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert copies
    for copy in copies:
        assert revision_of(copy) == copy.name
        assert verdicts.get(copy.name) is True, copy.name
        assert load_bundle(copy).revision == copy.name
    current = (folder / "current").read_text().strip()
    assert current in {copy.name for copy in copies}
    return current


def _storm(bundle: Path, texts: dict[str, str]) -> int:
    rng = random.Random(SEED)
    placements = bundle / "rules" / "placements.yaml"
    names = [name for name in texts if name != "base"]
    edits = 0
    deadline = time.monotonic() + STORM_S
    while time.monotonic() < deadline:
        _write_atomically(placements, texts[rng.choice(names)])
        edits += 1
        time.sleep(MIN_GAP_S * (MAX_GAP_S / MIN_GAP_S) ** rng.random())  # log-uniform: many short gaps, some long
    _write_atomically(placements, texts["segment"])  # end broken: restarts must come back from the last good
    return edits + 1


def test_an_edit_storm_never_serves_or_keeps_a_broken_revision(tmp_path: Path) -> None:
    bundle = _copy(tmp_path / "bundle")
    state = tmp_path / "state"
    texts, verdicts = _states(bundle, tmp_path / "scratch")
    env = {"TAILOR_RELOAD_INTERVAL": "0.1", "TAILOR_STATE_DIR": str(state)}
    with running_server(bundle, workers=2, env=env) as base:
        poller = _Poller(base)
        poller.start()
        edits = _storm(bundle, texts)
        _until(lambda: all(_reports_errors(base) for _ in range(10)))  # both workers saw the final, broken edit
        poller.stopping.set()
        poller.join()
        print(f"{edits} edits; revisions reported: {poller.seen}")
        assert not poller.failures
        assert len(poller.seen) > 1  # the storm did reload the server
        assert [revision for revision in poller.seen if verdicts.get(revision) is not True] == []
        current = _check_last_good(state, verdicts)
        _sighup_and_wait(base)
        _until(lambda: _serves(base))
    with running_server(bundle, workers=2, env=env) as base:  # a restart on the broken folder
        assert _serves(base)
        revision = httpx.get(f"{base}/v1/bundle", timeout=10).json()["revision"]
        assert revision == current
    _check_last_good(state, verdicts)


def _reports_errors(base: str) -> bool:
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        return bool(http.get("/v1/bundle").json().get("last_load_errors"))


def _sighup_and_wait(base: Server) -> None:
    os.kill(base.pid, signal.SIGHUP)
    time.sleep(RESPAWN_S)
