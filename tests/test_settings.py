from __future__ import annotations

import re
from dataclasses import Field, fields
from pathlib import Path

import pytest

from service.settings import Settings


def test_defaults_serve_the_current_folder_on_loopback() -> None:
    settings = Settings.from_env({})
    assert (settings.bundle, settings.host, settings.port, settings.workers) == (Path("."), "127.0.0.1", 8080, 1)


def test_environment_overrides_and_round_trips() -> None:
    settings = Settings.from_env({"TAILOR_PORT": "9000", "TAILOR_BUNDLE": "/srv/bundle", "TAILOR_MAX_ATTRIBUTES": "10"})
    assert (settings.port, settings.bundle, settings.max_attributes) == (9000, Path("/srv/bundle"), 10)
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("TAILOR_PORT", "eighty", "is not a whole number"),
        ("TAILOR_WORKERS", "-1", "is below 1"),
        ("TAILOR_WORKERS", "0", "is below 1"),
        ("TAILOR_LOG_LEVEL", "LOUD", "is not one of"),
        ("TAILOR_PORT", "70000", "is above 65535"),
        ("TAILOR_HEADER_TIMEOUT_S", "inf", "is not a finite number"),
        ("TAILOR_HEADER_TIMEOUT_S", "0", "is below 0.001"),
        ("TAILOR_BODY_TIMEOUT_S", "1e400", "is not a finite number"),
        ("TAILOR_BODY_TIMEOUT_S", "1e9", "is above 86400"),
        ("TAILOR_RELOAD_INTERVAL", "nan", "is not a finite number"),
        ("TAILOR_RELOAD_INTERVAL", "-0.5", "is below 0"),
        ("TAILOR_BUNDLE_POLL_SECONDS", "0", "is below 0.1"),
        ("TAILOR_RENDER_CACHE_MB", "-inf", "is not a finite number"),
        ("TAILOR_DECISION_LOG_QUEUE", "0", "is below 1"),
        ("TAILOR_DECISION_LOG_MAX_BYTES", "0", "is below 1"),
        ("TAILOR_DECISION_LOG_BACKUPS", "1.5", "is not a whole number"),
        ("TAILOR_MAX_BATCH", "0", "is below 1"),
        ("TAILOR_MAX_EVENTS", "0", "is below 1"),
        ("TAILOR_ASSIGNMENT_MAX_AGE_DAYS", "1e300", "is above 36500"),
        ("TAILOR_STOP_TIMEOUT_S", "0", "is below 1"),
        ("TAILOR_STOP_TIMEOUT_S", "2.5", "is not a whole number"),
    ],
)
def test_malformed_values_name_the_variable_and_the_reason(name: str, value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: '{re.escape(value)}' {reason}"):
        Settings.from_env({name: value})


@pytest.mark.parametrize("field", [f for f in fields(Settings) if f.type in ("int", "float")], ids=lambda f: f.name)
def test_every_number_takes_its_default_and_refuses_what_float_lets_through(field: Field[object]) -> None:
    variable = f"TAILOR_{field.name.upper()}"
    assert getattr(Settings.from_env({variable: str(field.default)}), field.name) == field.default
    for value in ("inf", "-inf", "nan", "1e400", "-1", "", " "):
        if value.strip():
            with pytest.raises(ValueError, match=f"^{variable}: "):
                Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("log", "key", "message"),
    [
        ({"TAILOR_DECISION_LOG": "/tmp/decisions.jsonl"}, {}, "TAILOR_PSEUDONYM_KEY is required when the decision log"),
        ({"TAILOR_DECISION_LOG_URL": "http://collector"}, {}, "TAILOR_PSEUDONYM_KEY is required when the decision log"),
        ({"TAILOR_DECISION_LOG": "/tmp/d.jsonl"}, {"TAILOR_PSEUDONYM_KEY": ""}, "TAILOR_PSEUDONYM_KEY is required"),
        ({"TAILOR_DECISION_LOG": "/tmp/d.jsonl"}, {"TAILOR_PSEUDONYM_KEY": "short"}, "must be at least 16 bytes"),
    ],
)
def test_a_decision_log_without_a_usable_pseudonym_key_is_refused_with_the_reason(
    log: dict[str, str], key: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({**log, **key})
