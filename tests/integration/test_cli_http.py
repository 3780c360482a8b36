"""`tailor decide` and `POST /v1/decide` run one flow (service/serving.py): the same answer for the same body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.cli import EXIT_OK, main
from tests.integration.server import ROOT, running_server

NOW = "2026-12-01T12:00:00Z"


def _bodies() -> list[tuple[str, dict[str, Any]]]:
    """The example visitor and every visitor of the example bundle's rule tests (checks/), as request bodies."""
    example = json.loads((ROOT / "examples" / "visitors" / "cart-abandoner.json").read_text())
    bodies = [("examples/visitors/cart-abandoner.json", {"visitor": example, "context": {"now": NOW}})]
    for file in sorted((ROOT / "checks").glob("*.yaml")):
        for test in yaml.safe_load(file.read_text())["tests"]:
            context = {"now": NOW, **test.get("context", {})}
            bodies.append((f"checks/{file.name}: {test['name']}", {"visitor": test["visitor"], "context": context}))
    return bodies


def _cli(body: dict[str, Any], folder: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    file = folder / "body.json"
    file.write_text(json.dumps(body))
    capsys.readouterr()
    assert main(["decide", "--bundle", str(ROOT), "--visitor", str(file)]) == EXIT_OK
    answer: dict[str, Any] = json.loads(capsys.readouterr().out)
    return answer


def test_the_command_and_the_api_decide_alike_for_every_example_visitor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = _bodies()
    assert len(bodies) > 10
    with running_server(TAILOR_ALLOW_CLIENT_TIME="1") as base, httpx.Client(base_url=base, timeout=10.0) as client:
        for name, body in bodies:
            for render in (False, True):
                request = {**body, "explain": True, "render": render}  # the command always explains
                over_http = client.post("/v1/decide", json=request)
                assert over_http.status_code == 200, (name, over_http.text)
                api, command = over_http.json(), _cli(request, tmp_path, capsys)
                assert command.pop("decision_id") == "offline"
                api.pop("decision_id")
                assert command == api, f"{name}, render={render}"
