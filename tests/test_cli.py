"""The tailor command, run as a process."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import duckdb
import pytest

from service import cli
from service.settings import PREFIX, Settings

ROOT = Path(__file__).parents[1]


def _tailor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = None if env is None else {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=environ,
        timeout=120,
    )


def test_decide_prints_the_decision_with_its_trace() -> None:
    done = _tailor(
        "decide",
        "--visitor", "examples/visitors/cart-abandoner.json",
        "--placement", "promo_banner",
        "--now", "2026-11-22T12:00:00+00:00",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    assert decision["placements"]["promo_banner"]["variant"] == "banner_free_shipping"
    assert decision["trace"] == [{"placement": "promo_banner", "rule": "cart_reminder", "outcome": "matched"}]
    assert "cart_abandoner" in decision["segments"]


def test_decide_prints_why_each_rule_did_not_match(tmp_path: Path) -> None:
    visitor = tmp_path / "visitor.json"
    visitor.write_text(
        json.dumps({"id": "vip-1", "attributes": {"orders_12m": 2}, "consent": {"personalization": True}})
    )
    done = _tailor("decide", "--visitor", str(visitor), "--placement", "home_hero", "--now", "2026-11-22T12:00:00Z")
    assert done.returncode == 0, done.stderr
    step = json.loads(done.stdout)["trace"][0]
    assert step["rule"] == "vip_offer"
    assert step["why_not"] == {
        "text": "rules/segments.yaml:11: segments.vip.when.all[0]: orders_12m gte 5, got 2",
        "file": "rules/segments.yaml",
        "line": 11,
        "path": "segments.vip.when.all[0]",
        "operator": "gte",
        "expected": 5,
        "source": "attr",
        "name": "orders_12m",
        "actual": 2,
        "via": ["vip"],
    }
    assert "why not home_hero vip_offer: rules/segments.yaml:11: segments.vip.when.all[0]: orders_12m gte 5, got 2" in (
        done.stderr.splitlines()
    )
    assert "why not home_hero eu_localized: rules/segments.yaml:33: segments.eu_visitor.when: country in" in done.stderr


def test_decide_rejects_a_malformed_visitor_file(tmp_path: Path) -> None:
    visitor = tmp_path / "visitor.json"
    visitor.write_text('{"id": 5}')
    done = _tailor("decide", "--visitor", str(visitor))
    assert done.returncode == 2
    assert "Expected `str | null`, got `int` - at `$.id`" in done.stderr


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"note": "x" * 5000}, "text longer than 4096 characters - at `$.visitor.attributes.note`"),
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}, "attributes nest deeper than 6 levels"),
    ],
)
def test_decide_refuses_a_visitor_over_the_api_s_limits(
    tmp_path: Path, attributes: dict[str, object], message: str
) -> None:
    visitor = tmp_path / "visitor.json"
    visitor.write_text(json.dumps({"id": "v-1", "attributes": attributes}))
    done = _tailor("decide", "--visitor", str(visitor))
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_broken_bundle_before_starting(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tests" / "invalid" / "segment_cycle", tmp_path / "b")
    shutil.copytree(ROOT / "content", tmp_path / "b" / "content")
    done = _tailor("serve", "--bundle", str(tmp_path / "b"), "--port", "1")
    assert done.returncode == 1
    assert "refers to itself" in done.stdout
    assert "nothing was served" in done.stderr


SETTINGS_SERVE_REFUSES = [
    ({"TAILOR_HEADER_TIMEOUT_S": "inf"}, [], "TAILOR_HEADER_TIMEOUT_S: 'inf' is not a finite number"),
    ({"TAILOR_BODY_TIMEOUT_S": "1e400"}, [], "TAILOR_BODY_TIMEOUT_S: '1e400' is not a finite number"),
    ({"TAILOR_RELOAD_INTERVAL": "nan"}, [], "TAILOR_RELOAD_INTERVAL: 'nan' is not a finite number"),
    ({"TAILOR_STATE_DIR": "{file}"}, [], "TAILOR_STATE_DIR={file} is not a folder this server can write to"),
    ({"TAILOR_STATE_DIR": "{file}/below"}, [], "TAILOR_STATE_DIR={file}/below is not a folder this server can"),
    ({"TAILOR_BUNDLE_CACHE": "{file}"}, [], "TAILOR_BUNDLE_CACHE={file} is not a folder this server can write"),
    ({"TAILOR_DECISION_LOG": "{folder}"}, [], "TAILOR_DECISION_LOG={folder} is a folder: name a file in it"),
    ({"TAILOR_HOST": "-1"}, [], "TAILOR_HOST: '-1' is not an IP address to listen on"),
    ({"TAILOR_HOST": "localhost"}, [], "TAILOR_HOST: 'localhost' is not an IP address to listen on"),
    ({}, ["--host", "é€"], "TAILOR_HOST: 'é€' is not an IP address to listen on"),
    ({"TAILOR_BUNDLE_URL": "-1"}, [], "TAILOR_BUNDLE_URL is not an http:// or https:// URL with a host"),
    ({"TAILOR_BUNDLE_URL": "ftp://origin/b.tar.gz"}, [], "TAILOR_BUNDLE_URL is not an http:// or https:// URL"),
    ({"TAILOR_DECISION_LOG_URL": "collector:9000"}, [], "TAILOR_DECISION_LOG_URL is not an http:// or https://"),
    ({}, ["--port", "70000"], "argument --port: '70000' is above 65535"),
    ({}, ["--workers", "0"], "argument --workers: '0' is below 1"),
]


@pytest.mark.parametrize(("env", "flags", "message"), SETTINGS_SERVE_REFUSES)
def test_serve_refuses_unusable_settings_by_name_before_starting(
    tmp_path: Path, env: dict[str, str], flags: list[str], message: str
) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    places = {"{file}": str(file), "{folder}": str(tmp_path)}
    filled = {name: _placed(value, places) for name, value in env.items()}
    filled["TAILOR_PSEUDONYM_KEY"] = "a key of sixteen bytes or more"  # the decision log needs one
    done = _tailor("serve", "--bundle", "tests/bench/flags20", *flags, env=filled)
    assert done.returncode == 2
    assert _placed(message, places) in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_port_something_listens_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = _tailor("serve", "--bundle", "tests/bench/flags20", "--host", "127.0.0.1", "--port", port)
    assert done.returncode == 2
    assert f"tailor: cannot listen on 127.0.0.1:{port}: Address already in use (is another server" in done.stderr
    assert "Traceback" not in done.stderr
    assert "tailor: serving" not in done.stderr


def _placed(text: str, places: dict[str, str]) -> str:
    for mark, value in places.items():
        text = text.replace(mark, value)
    return text


def test_schema_writes_every_schema(tmp_path: Path) -> None:
    assert _tailor("schema", "--out", str(tmp_path)).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checks.v1.schema.json",
        "content.v1.schema.json",
        "locale.v1.schema.json",
        "model-card.v1.schema.json",
        "rules.v1.schema.json",
    ]


def test_decide_renders_a_preview() -> None:
    done = _tailor(
        "decide", "--visitor", "examples/visitors/cart-abandoner.json", "--placement", "promo_banner",
        "--now", "2026-11-22T12:00:00+00:00", "--locale", "de-DE", "--currency", "EUR", "--render",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    banner = json.loads(done.stdout)["placements"]["promo_banner"]
    assert banner["render_status"] == "rendered"
    assert "Anna, Ihr Warenkorb (129,90\u00a0€) wartet" in banner["html"]


def _http_body() -> dict[str, object]:
    visitor = json.loads((ROOT / "examples/visitors/cart-abandoner.json").read_text())
    return {
        "visitor": visitor,
        "placements": ["promo_banner"],
        "context": {"locale": "de-DE", "currency": "EUR", "now": "2026-11-22T12:00:00Z"},
        "render": True,
    }


def test_decide_takes_the_http_body_as_it_is(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps(_http_body()))
    from_body = _tailor("decide", "--visitor", str(body))
    from_options = _tailor(
        "decide", "--visitor", "examples/visitors/cart-abandoner.json", "--placement", "promo_banner",
        "--now", "2026-11-22T12:00:00+00:00", "--locale", "de-DE", "--currency", "EUR", "--render",
    )  # fmt: skip
    assert from_body.returncode == from_options.returncode == 0, from_body.stderr + from_options.stderr
    decided, expected = json.loads(from_body.stdout), json.loads(from_options.stdout)
    assert list(decided["placements"]) == ["promo_banner"]
    assert "Anna, Ihr Warenkorb (129,90\u00a0€) wartet" in decided["placements"]["promo_banner"]["html"]
    assert decided["trace"] == expected["trace"]
    assert decided["placements"] == expected["placements"]


def test_decide_options_override_the_body_and_standard_input_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "decide", "--visitor", "-", "--locale", "en-US", "--currency", "USD"],
        input=json.dumps(_http_body()),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    html = json.loads(done.stdout)["placements"]["promo_banner"]["html"]
    assert "Anna, your cart ($129.90) is waiting" in html


def test_decide_reports_a_malformed_http_body_with_its_path(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"visitor": {"id": "a"}, "placements": "promo_banner"}))
    done = _tailor("decide", "--visitor", str(body))
    assert done.returncode == 2
    assert "Expected `array | null`, got `str` - at `$.placements`" in done.stderr


def test_serve_help_names_every_setting_with_its_default() -> None:
    shown = _tailor("serve", "--help").stdout
    for f in fields(Settings):
        assert f"{PREFIX}{f.name.upper()} (default: " in shown, f.name
    assert "TAILOR_RELOAD_INTERVAL (default: 0.5; 0 to 86400)" in shown
    assert "TAILOR_PORT (default: 8080; 1 to 65535)" in shown
    assert "TAILOR_DECISION_LOG_BACKUPS (default: 5; 0 or more)" in shown
    assert "TAILOR_PREVIEW (default: off)" in shown


# Each command that takes the bundle folder by position takes it as --bundle too, as serve and decide do.
BY_FLAG = [
    ("validate",),
    ("test",),
    ("simulate", "--population", "{population}", "--now", "2026-11-22T12:00:00+00:00"),
    ("bundle", "build", "--out", "{out}"),
]


@pytest.mark.parametrize("command", BY_FLAG, ids=lambda c: " ".join(c[:2]))
def test_commands_take_the_bundle_by_position_or_by_flag(command: tuple[str, ...], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for part in ("rules", "content", "models", "checks"):
        shutil.copytree(ROOT / part, bundle / part)
    population = tmp_path / "population.parquet"  # 500 of the example's 23,570 visitors: the flags are what is tested
    duckdb.sql(f"COPY (FROM '{ROOT / 'examples' / 'population.parquet'}' LIMIT 500) TO '{population}'")
    args = [part.format(out=tmp_path / "out.tar.gz", population=population) for part in command]
    by_position, by_flag = _tailor(*args, str(bundle)), _tailor(*args, "--bundle", str(bundle))
    assert (by_position.returncode, by_flag.returncode) == (0, 0), by_flag.stderr
    assert by_flag.stdout == by_position.stdout
    twice = _tailor(*args, "--bundle", str(bundle), str(tmp_path))
    assert twice.returncode == 2
    assert f"the bundle is named twice: --bundle {bundle} and {tmp_path}" in twice.stderr


# (bytes free in the state folder, what serve says): its metrics files are memory-mapped (SIGBUS on a full disk)
ROOM = [
    (0, "TAILOR_STATE_DIR={state} has 0.0 MiB free; a server needs 16 MiB there (its metrics files are memory-mapped"),
    ((16 << 20) - 4096, "TAILOR_STATE_DIR={state} has 16.0 MiB free; a server needs 16 MiB there"),
    (16 << 20, None),
]


@pytest.mark.parametrize(("free", "message"), ROOM)
def test_a_state_folder_without_room_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int, message: str | None
) -> None:
    real = os.statvfs

    def statvfs(path: object) -> object:
        found = real(path)  # type: ignore[arg-type]
        return found if Path(str(path)) != tmp_path else type("Room", (), {"f_bavail": free // 4096, "f_frsize": 4096})

    monkeypatch.setattr(os, "statvfs", statvfs)
    settings = replace(Settings(), state_dir=tmp_path)
    if message is None:
        cli._check_folders(settings)
        return
    with pytest.raises(ValueError, match=re.escape(message.format(state=tmp_path))):
        cli._check_folders(settings)


@pytest.mark.parametrize(
    ("host", "shown"), [("127.0.0.1", "127.0.0.1:8080"), ("::1", "[::1]:8080"), ("::", "[::]:8080")]
)
def test_an_address_is_shown_as_a_url_writes_it(host: str, shown: str) -> None:
    assert cli._address(host, 8080) == shown  # "cannot listen on :::8080" read as nothing
