"""OpenFeature's Python SDK with the community OFREP provider, against a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.integration.server import Server, running_server
from tests.ofrep.bundle import CONSENTED, VIP, bundle_copy

pytestmark = pytest.mark.integration

KEY = "ofrep-test-pseudonym-key-0123456789"
API_KEY = "ofrep-test-api-key"
FALLBACK = {"headline": "from the code"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("ofrep-python")
    env = {
        "TAILOR_DECISION_LOG": str(tmp / "log" / "decisions.jsonl"),
        "TAILOR_PSEUDONYM_KEY": KEY,
        "TAILOR_OFREP_API_KEY": API_KEY,
    }
    with running_server(bundle_copy(tmp), env=env) as base:
        yield base, tmp / "log"


@pytest.fixture(scope="module")
def client(server: tuple[Server, Path]) -> OpenFeatureClient:
    provider = OFREPProvider(server[0], headers_factory=lambda: {"Authorization": f"Bearer {API_KEY}"})
    api.set_provider(provider, "tailor-test")
    return api.get_client("tailor-test")


def _experiment_visitor(base: str) -> str:
    """The first of a fixed list of ids that /v1/decide puts into the hero experiment."""
    with httpx.Client(base_url=base, timeout=10) as http:
        for n in range(400):
            visitor = {"id": f"visitor-{n}", **CONSENTED}
            placed = http.post("/v1/decide", json={"visitor": visitor, "placements": ["home_hero"]}).json()
            if placed["placements"]["home_hero"]["reason"] == "experiment":
                return f"visitor-{n}"
    raise AssertionError("no experiment visitor among 400 ids")


def test_a_targeted_visitor_gets_the_variants_content(client: OpenFeatureClient) -> None:
    details = client.get_object_details("home_hero", FALLBACK, EvaluationContext("v-vip", {**VIP, **CONSENTED}))
    assert (details.variant, details.reason, details.error_code) == ("hero_vip", Reason.TARGETING_MATCH, None)
    assert details.value["headline"] == "Thank you for being one of our best customers"  # type: ignore[call-overload]
    assert details.flag_metadata["tailorReason"] == "targeting_match"
    assert details.flag_metadata["rule"] == "vip_offer"


def test_an_experiment_visitor_gets_a_split(server: tuple[Server, Path], client: OpenFeatureClient) -> None:
    visitor = _experiment_visitor(server[0])
    details = client.get_object_details("home_hero", FALLBACK, EvaluationContext(visitor, CONSENTED))
    assert details.reason == Reason.SPLIT
    assert details.flag_metadata["experiment"] == "hero_layout_test"
    arm_variant = {"control": "hero_default", "bold": "hero_bold"}
    assert details.variant == arm_variant[str(details.flag_metadata["arm"])]
    assert isinstance(details.flag_metadata["revision"], str)


def test_a_visitor_without_consent_gets_the_default(client: OpenFeatureClient) -> None:
    for consent in ({}, {"consent": {"personalization": False}}, {"consent.personalization": False}):
        details = client.get_object_details("home_hero", FALLBACK, EvaluationContext("v-vip", {**VIP, **consent}))
        assert (details.variant, details.reason) == ("hero_default", Reason.DEFAULT)
        assert details.flag_metadata["tailorReason"] == "no_consent"


def test_dotted_keys_reach_nested_attributes(client: OpenFeatureClient) -> None:
    context = EvaluationContext("v-vip", {"orders_12m": 6, "spend_12m": 900, "consent.personalization": True})
    assert client.get_object_details("home_hero", FALLBACK, context).variant == "hero_vip"


def test_a_missing_flag_is_flag_not_found(client: OpenFeatureClient) -> None:
    details = client.get_object_details("no_such_placement", FALLBACK, EvaluationContext("v-1", CONSENTED))
    assert (details.value, details.error_code) == (FALLBACK, ErrorCode.FLAG_NOT_FOUND)


def test_bad_contexts_are_the_protocols_errors(client: OpenFeatureClient) -> None:
    no_key = client.get_object_details("home_hero", FALLBACK, EvaluationContext(None, CONSENTED))
    assert no_key.error_code == ErrorCode.TARGETING_KEY_MISSING
    bad_consent = client.get_object_details("home_hero", FALLBACK, EvaluationContext("v-1", {"consent": "yes"}))
    assert bad_consent.error_code == ErrorCode.INVALID_CONTEXT
    assert "$.context.consent" in str(bad_consent.error_message)


def test_a_body_over_the_size_limit_is_a_general_error_and_the_code_s_default(client: OpenFeatureClient) -> None:
    """70 attributes of 1,000 characters fit the attribute limits, not the 64 KiB body: a 413 problem+json."""
    big = {f"a{n}": "x" * 1000 for n in range(70)}
    details = client.get_object_details("home_hero", FALLBACK, EvaluationContext("v-1", {**big, **CONSENTED}))
    assert (details.value, details.error_code) == (FALLBACK, ErrorCode.GENERAL)
    assert "body-too-large" in str(details.error_message)


def test_without_the_api_key_nothing_is_evaluated(server: tuple[Server, Path]) -> None:
    provider = OFREPProvider(server[0])
    api.set_provider(provider, "tailor-test-no-key")
    details = api.get_client("tailor-test-no-key").get_object_details("home_hero", FALLBACK, EvaluationContext("v-1"))
    assert (details.value, details.error_code, details.error_message) == (FALLBACK, ErrorCode.GENERAL, "unauthorized")
    with_header = httpx.post(
        f"{server[0]}/ofrep/v1/evaluate/flags/home_hero", json={"context": {"targetingKey": "v-1"}},
        headers={"X-API-Key": API_KEY},
    )  # fmt: skip
    assert with_header.status_code == 200


def test_each_evaluation_is_a_logged_decision(server: tuple[Server, Path], client: OpenFeatureClient) -> None:
    details = client.get_object_details("promo_banner", FALLBACK, EvaluationContext("v-logged", CONSENTED))
    decision_id = details.flag_metadata["decisionId"]
    log = server[1] / "decisions.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not log.exists() or str(decision_id) not in log.read_text()):
        time.sleep(0.1)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    event = next(e for e in events if e["decision_id"] == decision_id)
    assert (event["placement"], event["variant"], event["revision"]) == (
        "promo_banner", details.variant, details.flag_metadata["revision"],
    )  # fmt: skip
    metrics = httpx.get(f"{server[0]}/metrics").text
    assert f'tailor_decisions_total{{placement="promo_banner",reason="default",variant="{details.variant}"}}' in metrics
