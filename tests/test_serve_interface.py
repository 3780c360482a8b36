"""``tailor serve`` runs granian through the RSGI door by default, and through ASGI when asked."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from granian.constants import Interfaces

from service import cli
from service.settings import Settings


@pytest.mark.parametrize(
    ("env", "interface", "target"),
    [
        ({}, Interfaces.RSGI, "service.http.rsgi:create_door"),
        ({"TAILOR_INTERFACE": "rsgi"}, Interfaces.RSGI, "service.http.rsgi:create_door"),
        ({"TAILOR_INTERFACE": "asgi"}, Interfaces.ASGI, "service.http.app:create_app"),
    ],
)
def test_serve_starts_granian_through_the_chosen_interface(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], interface: Interfaces, target: str
) -> None:
    seen: dict[str, Any] = {}

    class Recorded:
        def __init__(self, target: str, **options: Any) -> None:
            seen.update(options, target=target)

        def serve(self) -> None:
            seen["served"] = True

    monkeypatch.setattr(cli, "Granian", Recorded)
    cli._run_granian(Settings.from_env(env))
    assert (seen["target"], seen["interface"], seen["factory"], seen["served"]) == (target, interface, True, True)
    assert seen["websockets"] is False
    module, _, name = target.partition(":")
    assert callable(getattr(importlib.import_module(module), name))


def test_an_unknown_interface_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="TAILOR_INTERFACE: 'wsgi' is not one of rsgi, asgi"):
        Settings.from_env({"TAILOR_INTERFACE": "wsgi"})
