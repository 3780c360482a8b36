"""Responses assembled from pre-encoded pieces are, byte for byte, the responses encoded whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.pageview_mix import page_views
from service.bundle.store import BundleStore
from service.core.compile import Bundle, fixed_decisions
from service.core.decide import decide
from service.http import wire
from service.http.fragments import Fragments
from service.http.mapping import decision_response, to_core
from service.settings import Settings

ROOT = Path(__file__).parents[1]
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
BUNDLES = {"example": ROOT, "flags20": ROOT / "tests" / "bench" / "flags20"}


def _load(folder: Path) -> Bundle:
    store = BundleStore()
    assert store.load(folder).ok
    return store.current.bundle


LOADED = {name: _load(folder) for name, folder in BUNDLES.items()}
FRAGMENTS = {name: Fragments() for name in BUNDLES}  # shared by the examples: later ones hit the pieces
VIEWS = [view.body for view in page_views(200, 7, NOW)]

FORCED = ["qa-bold-1", "qa-control-1"]  # the example's forced arms: "forced", not "experiment"
visitor_ids = st.none() | st.sampled_from([*FORCED, "v-1"]) | st.text("abcdef0123456789-", min_size=1, max_size=12)
attributes = st.fixed_dictionaries(
    {},
    optional={
        "country": st.sampled_from(["US", "DE", "FR", "GB"]),
        "orders_12m": st.integers(0, 12),
        "spend_12m": st.floats(0, 2000, allow_nan=False),
        "orders_total": st.integers(0, 40),
        "last_purchase_at": st.sampled_from(["2026-11-10T09:00:00Z", "2026-03-01T10:00:00Z"]),
    },
)
placements = st.none() | st.lists(st.sampled_from(["home_hero", "promo_banner", "flag_07", "made_up"]), min_size=1)


def _both(bundle_name: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    bundle = LOADED[bundle_name]
    data = msgspec.convert(body, wire.DecideRequest)
    decision = decide(bundle, to_core(data, Settings(), lambda: NOW, client_time=False))
    whole = msgspec.json.encode(decision_response(bundle, decision, "d" * 32))
    return FRAGMENTS[bundle_name].encode(bundle, decision, "d" * 32), whole


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(BUNDLES)), visitor_ids, attributes, st.booleans(), st.booleans(), placements, st.booleans()
)
def test_assembled_responses_are_the_encoded_ones(
    bundle_name: str,
    visitor: str | None,
    attrs: dict[str, Any],
    personalization: bool,
    analytics: bool,
    names: list[str] | None,
    explain: bool,
) -> None:
    consent = {"personalization": personalization, "analytics": analytics}
    body = {"visitor": {"id": visitor, "attributes": attrs, "consent": consent}, "explain": explain}
    if names is not None:
        body["placements"] = names
    assembled, whole = _both(bundle_name, body)
    assert assembled == whole


@pytest.mark.parametrize("index", range(0, 200, 7))
def test_assembled_page_views_are_the_encoded_ones(index: int) -> None:
    assembled, whole = _both("example", VIEWS[index])
    assert assembled == whole


def test_the_pieces_are_kept_for_the_bundle_s_placements_only() -> None:
    fragments = Fragments()
    bundle = LOADED["example"]
    data = wire.DecideRequest(wire.Visitor("v-1"), placements=["home_hero", "made_up", "also_made_up"])
    decision = decide(bundle, to_core(data, Settings(), lambda: NOW, client_time=False))
    fragments.encode(bundle, decision, "d" * 32)
    by_outcome = [key[0] for key in fragments._pieces]
    by_identity = [fragments._fixed[key][0] for key in fragments._heads]
    assert by_outcome + by_identity == ["home_hero"]


FIXED = {name: fixed_decisions(bundle) for name, bundle in LOADED.items()}
BUILT_AT_COMPILE = ("default", "targeting_match", "no_consent", "holdout")  # never made per request


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(BUNDLES)), visitor_ids, attributes, st.booleans(), placements)
def test_every_decision_built_at_compile_is_found_by_identity(
    bundle_name: str, visitor: str | None, attrs: dict[str, Any], personalization: bool, names: list[str] | None
) -> None:
    consent = {"personalization": personalization, "analytics": True}
    data = msgspec.convert({"visitor": {"id": visitor, "attributes": attrs, "consent": consent}}, wire.DecideRequest)
    if names is not None:
        data = msgspec.structs.replace(data, placements=names)
    decision = decide(LOADED[bundle_name], to_core(data, Settings(), lambda: NOW, client_time=False))
    for name, placed in decision.placements.items():
        found = FIXED[bundle_name].get(id(placed))
        if placed.reason in BUILT_AT_COMPILE:
            assert found is not None
            assert found == (name, placed)
            assert found[1] is placed
        elif placed.reason != "no_unit_id":  # a skipped rule's no_unit_id names the rule: made per request
            assert found is None
