"""Sticky arms through real servers: tokens from one replica keep visitors' arms on another that
serves re-weighted arms, and a changed, foreign or copied token is ignored and says why."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import ROOT, running_server

pytestmark = pytest.mark.integration

KEY = {"TAILOR_ASSIGNMENT_KEY": "sticky-integration-key-0123"}
VISITORS = 400
BOLD = "\n      - {{ key: bold, variant: hero_bold, weight: {} }}"
REWEIGHTED = ("weight: 50 }" + BOLD.format(50), "weight: 90 }" + BOLD.format(10))  # 50/50 → 90/10


def _reweighted(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    for part in ("rules", "content", "models"):
        shutil.copytree(ROOT / part, bundle / part)
    rules = bundle / "rules" / "placements.yaml"
    text = rules.read_text()
    assert REWEIGHTED[0] in text
    rules.write_text(text.replace(REWEIGHTED[0], REWEIGHTED[1]))
    return bundle


def _hero(http: httpx.Client, visitor: str, token: str | None = None) -> dict[str, Any]:
    body = {"visitor": {"id": visitor, "consent": {"personalization": True}, "assignments_token": token}}
    answer = http.post("/v1/decide", json={**body, "placements": ["home_hero"]})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _arm(answer: dict[str, Any]) -> str | None:
    return (answer["placements"]["home_hero"].get("experiment") or {}).get("arm")


def test_tokens_keep_arms_on_a_reweighted_replica(tmp_path: Path) -> None:
    with running_server(env=KEY) as first, httpx.Client(base_url=first, timeout=10) as http:
        firsts = {f"s-{n}": _hero(http, f"s-{n}") for n in range(VISITORS)}
    holders = {v: a for v, a in firsts.items() if a.get("assignments_token")}
    assert holders
    assert all(_arm(a) is not None for a in holders.values())
    with running_server(_reweighted(tmp_path), env=KEY) as second, httpx.Client(base_url=second, timeout=10) as http:
        again = {v: _hero(http, v, a["assignments_token"]) for v, a in holders.items()}
        without = {v: _hero(http, v) for v in holders}
        some, other = next(iter(holders.items())), list(holders.items())[1]
        copied = _hero(http, other[0], some[1]["assignments_token"])
        token = some[1]["assignments_token"]
        flipped = _hero(http, some[0], token[:-1] + ("A" if token[-1] != "A" else "B"))
        oversized = _hero(http, some[0], "A" * 5000)  # a 400 here left its holder without any decision
    assert all(_arm(again[v]) == _arm(a) for v, a in holders.items())
    assert {answer["assignments_token_status"] for answer in again.values()} == {"valid"}
    assert all(answer["placements"]["home_hero"]["experiment"]["sticky"] for answer in again.values())
    moved = sum(_arm(without[v]) != _arm(a) for v, a in holders.items())
    assert moved > len(holders) / 4  # without tokens, 50/50 → 90/10 moves 40 % of them
    assert copied["assignments_token_status"] == "other_visitor"
    assert flipped["assignments_token_status"] == "bad_signature"
    assert oversized["assignments_token_status"] == "malformed"


def test_a_server_without_a_key_issues_no_token_and_says_so() -> None:
    with running_server() as base, httpx.Client(base_url=base, timeout=10) as http:
        plain = _hero(http, "s-1")
        sent = _hero(http, "s-1", "a.b")
    assert "assignments_token" not in plain
    assert "assignments_token_status" not in plain
    assert sent["assignments_token_status"] == "no_key"
