"""Events built from real decisions on the example bundle: what each holds, and what it never holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from service.core.decide import Decision
from service.telemetry import SCHEMA, DecisionEvent, JsonLinesSink, Pseudonymizer, events_for
from service.telemetry.sinks import encode_lines
from tests.telemetry.conftest import NOW, QA_BOLD, decision_for, visitor_with

VIP = {"orders_12m": 6, "spend_12m": 812.5, "orders_total": 14, "last_purchase_at": "2026-11-10T09:00:00Z"}
PII = {"email": "jane.doe@example.com", "phone": "+49 170 1234567", **VIP}


def build(
    decision: Decision, visitor_id: str | None, pseudonymizer: Pseudonymizer, *, analytics: bool = True
) -> list[DecisionEvent]:
    return events_for(
        decision,
        decision_id="d-1",
        revision="rev-1",
        time=NOW,
        visitor_id=visitor_id,
        analytics_consent=analytics,
        pseudonymizer=pseudonymizer,
    )


def fields(events: list[DecisionEvent], *names: str) -> list[dict[str, Any]]:
    return [{name: getattr(event, name) for name in names} for event in events]


def test_one_event_per_placement_with_the_decision_and_a_pseudonym(pseudonymizer: Pseudonymizer) -> None:
    events = build(decision_for("v-vip", VIP), "v-vip", pseudonymizer)
    assert fields(events, "placement", "variant", "reason", "rule", "segments") == [
        {"placement": "home_hero", "variant": "hero_vip", "reason": "targeting_match", "rule": "vip_offer",
         "segments": ("vip",)},
        {"placement": "promo_banner", "variant": "banner_newsletter", "reason": "default", "rule": None,
         "segments": ("vip",)},
    ]  # fmt: skip
    for event in events:
        assert (event.schema, event.decision_id, event.revision, event.time) == (SCHEMA, "d-1", "rev-1", NOW)
        assert event.visitor == pseudonymizer("v-vip")
        assert (event.experiment, event.arm, event.bucket, event.exposure) == (None, None, None, False)


# analytics consent, visitor id → is the event tied to a pseudonym (and so carries segments)?
CONSENT = [
    pytest.param(True, "v-vip", True, id="consent and an id: a pseudonym and segments"),
    pytest.param(False, "v-vip", False, id="no consent: tied to nobody, no segments"),
    pytest.param(True, None, False, id="consent but no id: nobody to tie to"),
    pytest.param(True, "", False, id="an empty id is no id"),
]


@pytest.mark.parametrize(("analytics", "visitor_id", "tied"), CONSENT)
def test_analytics_consent_decides_whether_an_event_is_tied_to_a_visitor(
    analytics: bool, visitor_id: str | None, tied: bool, pseudonymizer: Pseudonymizer
) -> None:
    decision = decision_for(visitor_id, VIP, placements=["home_hero"])
    [event] = build(decision, visitor_id, pseudonymizer, analytics=analytics)
    assert (event.visitor is not None, bool(event.segments)) == (tied, tied)
    placed = decision.placements["home_hero"]  # without an id the holdout gives the default: still logged
    assert (event.placement, event.variant, event.reason) == ("home_hero", placed.variant, placed.reason)


def test_without_personalization_consent_the_default_is_still_logged(pseudonymizer: Pseudonymizer) -> None:
    events = build(decision_for("v-vip", VIP, personalization=False), "v-vip", pseudonymizer)
    assert fields(events, "placement", "variant", "reason", "segments") == [
        {"placement": "home_hero", "variant": "hero_default", "reason": "no_consent", "segments": ()},
        {"placement": "promo_banner", "variant": "banner_newsletter", "reason": "no_consent", "segments": ()},
    ]


def test_unknown_placements_are_skipped(pseudonymizer: Pseudonymizer) -> None:
    decision = decision_for("v-vip", VIP, placements=["nowhere", "home_hero", "also_nowhere"])
    assert [event.placement for event in build(decision, "v-vip", pseudonymizer)] == ["home_hero"]


# visitor, analytics consent → the experiment fields of the home_hero event
EXPOSURES = [
    pytest.param(
        lambda: visitor_with("experiment", "bold"), True,
        {"reason": "experiment", "experiment": "hero_layout_test", "arm": "bold", "exposure": True},
        id="bucketed into an arm: an exposure with its bucket",
    ),
    pytest.param(
        lambda: QA_BOLD, True,
        {"reason": "forced", "experiment": "hero_layout_test", "arm": "bold", "bucket": None, "exposure": True},
        id="a forced QA arm: an exposure without a bucket",
    ),
    pytest.param(
        lambda: visitor_with("experiment", "control"), False,
        {"reason": "experiment", "experiment": "hero_layout_test", "arm": "control", "bucket": None,
         "exposure": False},
        id="no analytics consent: the arm is countable, but no bucket and no exposure",
    ),
    pytest.param(
        lambda: visitor_with("default"), True,
        {"reason": "default", "experiment": None, "arm": None, "bucket": None, "exposure": False},
        id="not in the experiment: no exposure",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("visitor", "analytics", "expected"), EXPOSURES)
def test_experiment_exposures(
    visitor: Any, analytics: bool, expected: dict[str, Any], pseudonymizer: Pseudonymizer
) -> None:
    visitor_id = visitor()
    [event] = build(decision_for(visitor_id, placements=["home_hero"]), visitor_id, pseudonymizer, analytics=analytics)
    assert {name: getattr(event, name) for name in expected} == expected
    if expected["reason"] == "experiment" and analytics:
        assert isinstance(event.bucket, int)


def test_the_time_is_utc_and_encoded_as_rfc3339(pseudonymizer: Pseudonymizer) -> None:
    in_berlin = NOW.astimezone(timezone(timedelta(hours=1)))
    events = events_for(
        decision_for("v-vip", VIP, placements=["home_hero"]),
        decision_id="d-1",
        revision="rev-1",
        time=in_berlin,
        visitor_id="v-vip",
        analytics_consent=True,
        pseudonymizer=pseudonymizer,
    )
    assert events[0].time.tzinfo is UTC
    assert msgspec.json.decode(encode_lines(events))["time"] == "2026-11-22T12:00:00Z"


def test_a_time_without_a_zone_is_refused(pseudonymizer: Pseudonymizer) -> None:
    with pytest.raises(ValueError, match="time zone"):
        events_for(
            decision_for("v-vip"),
            decision_id="d-1",
            revision="rev-1",
            time=datetime(2026, 11, 22, 12),  # naive: the mistake under test
            visitor_id="v-vip",
            analytics_consent=True,
            pseudonymizer=pseudonymizer,
        )


def test_the_event_format_is_frozen() -> None:
    """Changing these fields changes what consumers read: bump SCHEMA and tell them."""
    assert SCHEMA == "tailor.decision/1"
    assert DecisionEvent.__struct_fields__ == (
        "schema", "decision_id", "time", "revision", "placement", "variant", "reason", "rule",
        "experiment", "arm", "bucket", "segments", "visitor", "exposure",
    )  # fmt: skip


def test_an_encoded_event_decodes_to_the_same_event(pseudonymizer: Pseudonymizer) -> None:
    events = build(decision_for(QA_BOLD, VIP), QA_BOLD, pseudonymizer)
    lines = encode_lines(events).splitlines()
    assert [msgspec.json.decode(line, type=DecisionEvent) for line in lines] == events
    assert list(msgspec.json.decode(lines[0])) == list(DecisionEvent.__struct_fields__)  # the version first


@pytest.mark.parametrize("analytics", [True, False])
def test_no_raw_id_or_attribute_reaches_a_sink(analytics: bool, pseudonymizer: Pseudonymizer, tmp_path: Any) -> None:
    visitor_id = "customer-8812@shop"
    events = build(decision_for(visitor_id, PII), visitor_id, pseudonymizer, analytics=analytics)
    sink = JsonLinesSink(tmp_path / "decisions.jsonl")
    sink.write(events)
    sink.close()
    written = (tmp_path / "decisions.jsonl").read_bytes()
    assert written.count(b"\n") == 2
    for secret in (visitor_id, "jane.doe", "example.com", "1234567", "812.5", "orders_12m", "spend_12m"):
        assert secret.encode() not in written
