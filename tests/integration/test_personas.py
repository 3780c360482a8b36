"""``GET /v1/bundle`` on a real server lists each cluster's persona with its card's very figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def _cards() -> dict[str, dict[str, Any]]:
    """The example bundle's cards as PyYAML reads them, by model name."""
    return {
        card["name"]: card
        for card in (yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "models").glob("*.yaml")))
    }


def test_the_bundle_endpoint_shows_every_persona_of_the_cards() -> None:
    with running_server() as base, httpx.Client(base_url=base, timeout=10.0) as http:
        info = http.get("/v1/bundle").json()
        document = http.get("/schema/openapi.json").json()
    cards = _cards()
    models = {m["name"]: m for m in info["models"]}
    assert set(models) == set(cards)
    fields = set(document["components"]["schemas"]["PersonaInfo"]["properties"])
    for name, card in cards.items():
        written = card["metrics"].get("personas", {})
        shown = models[name].get("personas", [])
        assert [p["name"] for p in shown] == list(written)  # the card's order; none when it has none
        for persona in shown:
            assert set(persona) == fields
            figures = written[persona["name"]]
            assert persona == {"name": persona["name"], **{key: figures[key] for key in fields - {"name"}}}
    rfm = {p["name"]: p for p in models["rfm"]["personas"]}
    assert set(rfm) == set(models["rfm"]["labels"])
    assert rfm["champions"]["description"].startswith("Champions: ")
    assert "personas" not in models["churn"]  # omitted, not an empty list
