"""The app in process (Litestar's test client): CORS, JSON logs with the decision id, settings checks."""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.http.app import create_app
from service.http.decisions import decision_ids
from service.logs import JsonFormatter, decision_id
from service.settings import Settings

ROOT = Path(__file__).parents[1]


def _settings(**overrides: object) -> Settings:
    return Settings(bundle=ROOT, reload_interval=0, **overrides)  # type: ignore[arg-type]


def test_cors_allows_only_the_configured_origins() -> None:
    app = create_app(_settings(cors_origins="https://shop.example, https://preview.shop.example"))
    headers = {"origin": "https://shop.example", "access-control-request-method": "POST"}
    with TestClient(app=app) as client:
        allowed = client.options("/v1/decide", headers=headers)
        denied = client.options("/v1/decide", headers={**headers, "origin": "https://evil.example"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in denied.headers


def test_without_cors_origins_no_cors_headers_are_sent() -> None:
    with TestClient(app=create_app(_settings())) as client:
        response = client.post("/v1/decide", json={"visitor": {"id": "a"}}, headers={"origin": "https://shop.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_json_log_lines_carry_the_decision_id() -> None:
    record = logging.LogRecord("tailor.http", logging.ERROR, __file__, 1, "model failed: %s", ("rfm",), None)
    token = decision_id.set("abc123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        decision_id.reset(token)
    assert line["decision_id"] == "abc123"
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "tailor.http", "model failed: rfm")


def test_a_decision_log_needs_a_pseudonym_key() -> None:
    with pytest.raises(ValueError, match="TAILOR_PSEUDONYM_KEY must be at least 16 bytes"):
        Settings.from_env({"TAILOR_DECISION_LOG": "/tmp/decisions.jsonl", "TAILOR_PSEUDONYM_KEY": "short"})


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = Settings(admin_token="s3cret-admin", pseudonym_key="s3cret-key-0123456789")
    assert "s3cret" not in repr(settings)


def test_decision_ids_are_unique_and_ordered_within_a_worker() -> None:
    first, second = decision_ids(), decision_ids()
    ids = [first() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert first()[:16] != second()[:16]  # each worker draws its own prefix


def test_client_time_is_a_flag_named_when_malformed() -> None:
    assert Settings.from_env({"TAILOR_ALLOW_CLIENT_TIME": "on"}).allow_client_time is True
    assert Settings.from_env({"TAILOR_ALLOW_CLIENT_TIME": "0"}).allow_client_time is False
    assert Settings.from_env(Settings(allow_client_time=True).to_env()).allow_client_time is True
    with pytest.raises(ValueError, match="TAILOR_ALLOW_CLIENT_TIME: 'maybe' is not one of"):
        Settings.from_env({"TAILOR_ALLOW_CLIENT_TIME": "maybe"})


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [f.name for f in fields(Settings) if f"| `TAILOR_{f.name.upper()}` |" not in readme]
    assert missing == []


def test_make_run_serves_previews_that_may_name_a_time() -> None:
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "TAILOR_ALLOW_CLIENT_TIME=1 " in dry
    off = subprocess.run(
        ["make", "-n", "run", "ALLOW_CLIENT_TIME=0"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "TAILOR_ALLOW_CLIENT_TIME=0 " in off.stdout


def test_health_checks_answer_head_without_a_body(tmp_path: Path) -> None:
    """Load balancers that check with HEAD get GET's status (RFC 9110 wants HEAD wherever GET is)."""
    with TestClient(create_app(_settings())) as client:
        assert (client.head("/healthz").status_code, client.head("/healthz").content) == (200, b"")
        assert (client.head("/readyz").status_code, client.head("/readyz").content) == (200, b"")
    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_app(Settings(bundle=empty, reload_interval=0))) as client:
        assert client.head("/readyz").status_code == client.get("/readyz").status_code == 503
        assert client.head("/healthz").status_code == 200
