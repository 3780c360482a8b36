from __future__ import annotations

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
    ("name", "value"), [("TAILOR_PORT", "eighty"), ("TAILOR_WORKERS", "-1"), ("TAILOR_LOG_LEVEL", "LOUD")]
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


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
