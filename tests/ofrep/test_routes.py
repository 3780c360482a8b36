"""The OFREP routes in-process (real bundle, real app), and the pieces they translate with."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from service.http import ofrep, wire
from service.http.app import create_app
from service.settings import Settings
from tests.ofrep.bundle import CONSENTED, VIP, bundle_copy

TOKEN = "ofrep-admin-token-0123456789"
BULK = "/ofrep/v1/evaluate/flags"
VIP_CONTEXT = {"context": {"targetingKey": "v-vip", **VIP, **CONSENTED}}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return bundle_copy(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    with _client(bundle_copy(tmp_path_factory.mktemp("ofrep-routes"))) as client:
        yield client


def _client(bundle: Path, **changes: Any) -> TestClient[Any]:
    return TestClient(create_app(Settings(bundle=bundle, reload_interval=0, admin_token=TOKEN, **changes)))


def test_a_repeated_context_is_304_and_a_reload_a_new_etag(bundle: Path) -> None:
    with _client(bundle) as client:
        first = client.post(BULK, json=VIP_CONTEXT)
        etag = first.headers["etag"]
        again = client.post(BULK, json=VIP_CONTEXT, headers={"if-none-match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
        other = client.post(BULK, json={"context": {"targetingKey": "v-other"}}, headers={"if-none-match": etag})
        assert other.status_code == 200  # another context, other flags
        rules = bundle / "rules" / "placements.yaml"
        rules.write_text(rules.read_text().replace("serve: hero_vip }", "serve: hero_bold }"))
        assert client.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}).json()["ok"]
        after = client.post(BULK, json=VIP_CONTEXT, headers={"if-none-match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    hero = next(f for f in after.json()["flags"] if f["key"] == "home_hero")
    assert hero["variant"] == "hero_bold"


def test_the_bulk_response_lists_every_placement_and_the_event_stream(bundle: Path) -> None:
    with _client(bundle) as client:
        body = client.post(BULK, json=VIP_CONTEXT).json()
        placements = [p["name"] for p in client.get("/v1/bundle").json()["placements"]]
    assert [f["key"] for f in body["flags"]] == placements
    assert body["eventStreams"] == [
        {"type": "sse", "endpoint": {"requestUri": "/ofrep/v1/events"}, "inactivityDelaySec": 120}
    ]
    assert set(body["metadata"]) == {"revision", "decisionId"}


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        (b"{", "PARSE_ERROR", "$"),
        (b'{"context": 1}', "INVALID_CONTEXT", "$.context"),
        (b'{"context": {}, "extra": 1}', "PARSE_ERROR", "extra"),
        (b'{"context": {"targetingKey": "v"}, "context": {"targetingKey": "w"}}', "PARSE_ERROR",
         "duplicate key 'context'"),  # the body's keys, as README's table has it
        (b'{"context": {"targetingKey": "v", "a": 1, "a": 2}}', "INVALID_CONTEXT", "$.context.a: duplicate key 'a'"),
        (b'{"context": {}}', "TARGETING_KEY_MISSING", "$.context.targetingKey"),
        (b"{}", "TARGETING_KEY_MISSING", "$.context.targetingKey"),  # what the Python provider sends without a context
        (b'{"context": {"targetingKey": ""}}', "TARGETING_KEY_MISSING", "$.context.targetingKey"),
        (b'{"context": {"targetingKey": 7}}', "INVALID_CONTEXT", "$.context.targetingKey"),
        (b'{"context": {"targetingKey": "v", "consent": {"personalization": "yes"}}}', "INVALID_CONTEXT",
         "$.context.consent.personalization"),
        (b'{"context": {"targetingKey": "v", "a": 1, "a.b": 2}}', "INVALID_CONTEXT", "a.b"),
        (b'{"context": {"targetingKey": "v", "t": "' + b"x" * 5000 + b'"}}', "INVALID_CONTEXT", "$.context.t"),
    ],
)  # fmt: skip
def test_bad_requests_are_the_protocols_400s(shared: TestClient[Any], body: bytes, code: str, where: str) -> None:
    headers = {"content-type": "application/json"}
    one = shared.post(f"{BULK}/home_hero", content=body, headers=headers)
    every = shared.post(BULK, content=body, headers=headers)
    assert (one.status_code, one.json()["errorCode"], one.json()["key"]) == (400, code, "home_hero")
    assert (every.status_code, every.json()["errorCode"]) == (400, code)
    assert where in one.json()["errorDetails"]


def test_the_api_key_is_asked_as_bearer_or_header(bundle: Path) -> None:
    with _client(bundle, ofrep_api_key="k-123") as client:
        refused = client.post(BULK, json=VIP_CONTEXT)
        assert (refused.status_code, refused.headers["content-type"]) == (401, "application/json")
        assert list(refused.json()) == ["errorDetails"]  # OFREP's error shape, as README's table says
        assert client.post(BULK, json=VIP_CONTEXT, headers={"x-api-key": "wrong"}).status_code == 401
        assert client.post(BULK, json=VIP_CONTEXT, headers={"x-api-key": "k-123"}).status_code == 200
        bearer = client.post(BULK, json=VIP_CONTEXT, headers={"authorization": "Bearer k-123"})
        assert client.get("/ofrep/v1/events").status_code == 401
    stream = bearer.json()["eventStreams"][0]["endpoint"]["requestUri"]
    assert stream == f"/ofrep/v1/events?token={ofrep.stream_token('k-123')}"


def test_cors_lets_browsers_send_the_etag_and_read_it(bundle: Path) -> None:
    with _client(bundle, cors_origins="https://shop.example") as client:
        preflight = client.options(
            BULK, headers={"origin": "https://shop.example", "access-control-request-method": "POST",
                           "access-control-request-headers": "content-type, if-none-match, x-api-key"},
        )  # fmt: skip
        answer = client.post(BULK, json=VIP_CONTEXT, headers={"origin": "https://shop.example"})
    assert preflight.status_code in (200, 204)
    assert "if-none-match" in preflight.headers["access-control-allow-headers"].lower()
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    ("raw_path", "key"),
    [
        (b"/ofrep/v1/evaluate/flags", None),
        (b"/ofrep/v1/evaluate/flags/home_hero", "home_hero"),
        (b"/ofrep/v1/evaluate/flags/home_hero%2F", "home_hero/"),  # granian's ASGI: the path as sent
        (b"/ofrep/v1/evaluate/flags/home_hero/", "home_hero/"),  # the RSGI bridge: decoded, quoted again
        (b"/ofrep/v1/evaluate/flags/%2F", "/"),
        (b"/ofrep/v1/evaluate/flags/", ""),
        (b"/ofrep/v1/evaluate/flags/h%C3%A9ro", "h\u00e9ro"),
        (b"//ofrep/v1/evaluate/flags/home_hero", "home_hero"),  # a base URL that ends in a slash
    ],
)  # fmt: skip
def test_the_flag_key_is_the_decoded_path_after_flags(raw_path: bytes, key: str | None) -> None:
    assert ofrep.flag_key(raw_path) == key


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_any_key_a_client_encodes_is_the_key_the_route_reads(key: str) -> None:
    """As a provider sends it (every byte encoded, ASGI's raw path) and as the RSGI bridge re-quotes granian's
    decoded path ("/" kept): both decode to the key, slashes, "%", "?" and "#" included."""
    sent = f"{ofrep.FLAG_PREFIX}{quote(key, safe='')}".encode()
    bridged = quote(f"{ofrep.FLAG_PREFIX}{key}").encode()
    assert ofrep.flag_key(sent) == ofrep.flag_key(bridged) == key


def test_the_connect_message_names_the_revision_only_once_there_is_one() -> None:
    """ADR 0018: with no bundle yet there is nothing to catch up to, so no id for the client to send back."""
    assert ofrep._connected(None) == b"retry: 1000\n: connected\n\n"
    assert ofrep._connected("r1") == b"retry: 1000\nid: r1\nevent: connected\ndata: r1\n\n"


def test_the_document_lists_the_streams_resume_header(bundle: Path) -> None:
    with TestClient(app=create_app(Settings(bundle=bundle, reload_interval=0))) as client:
        events = client.get("/schema/openapi.json").json()["paths"]["/ofrep/v1/events"]["get"]
    assert {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}} in events[
        "parameters"
    ]


def test_a_placement_without_a_variant_is_a_per_flag_failure() -> None:
    unknown = wire.PlacementOut(variant=None, reason="unknown_placement")
    assert ofrep.flag_of("gone", unknown, "r1", None) == ofrep.FlagError(
        "gone", "GENERAL", "placement 'gone' has no variant (unknown_placement)"
    )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("targeting_match", "TARGETING_MATCH"), ("forced", "TARGETING_MATCH"), ("experiment", "SPLIT"),
     ("default", "DEFAULT"), ("no_consent", "DEFAULT"), ("holdout", "DEFAULT"), ("no_unit_id", "DEFAULT")],
)  # fmt: skip
def test_reasons_map_and_ours_stays_in_the_metadata(ours: wire.Reason, theirs: str) -> None:
    flag = ofrep.flag_of("p", wire.PlacementOut(variant="v", reason=ours, content={"a": 1}), "r1", None)
    assert isinstance(flag, ofrep.FlagOut)
    assert (flag.reason, flag.metadata["tailorReason"], flag.value) == (theirs, ours, {"a": 1})


keys = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=5)
nested = st.recursive(
    st.integers() | st.text(max_size=3),
    lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=3),
    max_leaves=6,
)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(keys, nested, max_size=4))
def test_dotted_keys_expand_to_the_nested_objects(tree: dict[str, Any]) -> None:
    assert ofrep.expand_dotted(_flatten(tree)) == tree


def test_one_notifier_wakes_thousands_of_idle_streams() -> None:
    revision = ["r1"]
    notifier = ofrep.ChangeNotifier(lambda: revision[0], cap=5000)

    async def listen() -> bytes:
        chunks = notifier.stream()
        assert (await anext(chunks)).startswith(b"retry:")
        return await anext(chunks)

    async def run() -> list[bytes]:
        listeners = [asyncio.create_task(listen()) for _ in range(3000)]
        await asyncio.sleep(0.5)
        assert notifier.open == 3000
        revision[0] = "r2"
        got = await asyncio.wait_for(asyncio.gather(*listeners), timeout=30)
        notifier.close()
        return got

    got = asyncio.run(run())
    assert set(got) == {b'id: r2\nevent: message\ndata: {"type":"refetchEvaluation","etag":"r2"}\n\n'}


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """A no-op SIGTERM handler, as the worker has one, and every handler as it was afterwards."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, lambda number, frame: None)
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.usefixtures("signal_handlers")
def test_a_sigterm_as_soon_as_the_first_line_is_out_ends_the_stream() -> None:
    """A supervisor may stop the server the moment a provider has connected: nothing may wait for the stream."""
    notifier = ofrep.ChangeNotifier(lambda: "r1", cap=1)

    async def run() -> list[bytes]:
        chunks = notifier.stream()
        assert (await anext(chunks)).startswith(b"retry:")
        signal.raise_signal(signal.SIGTERM)
        return [chunk async for chunk in chunks]

    assert asyncio.run(asyncio.wait_for(run(), timeout=10)) == []
    assert notifier.open == 0


def test_the_openapi_document_describes_the_ofrep_routes(shared: TestClient[Any]) -> None:
    document = shared.get("/schema/openapi.json").json()
    paths = document["paths"]
    body = {"408", "413", "415", "503"}  # problem+json, as on every route that reads a body
    assert set(paths["/ofrep/v1/evaluate/flags"]["post"]["responses"]) == {"200", "304", "400", "401"} | body
    assert set(paths["/ofrep/v1/evaluate/flags/{key}"]["post"]["responses"]) == {"200", "400", "401", "404"} | body
    assert set(paths["/ofrep/v1/events"]["get"]["responses"]) == {"200", "401", "503"}
    flag = document["components"]["schemas"]["FlagOut"]
    assert sorted(flag["properties"]["reason"]["enum"]) == ["DEFAULT", "SPLIT", "TARGETING_MATCH"]


def test_past_the_stream_cap_a_stream_is_503(bundle: Path) -> None:
    with _client(bundle, ofrep_max_streams=0) as client:
        refused = client.get("/ofrep/v1/events")
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "30")
    assert "TAILOR_OFREP_MAX_STREAMS" in refused.json()["errorDetails"]
