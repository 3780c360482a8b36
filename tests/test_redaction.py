"""Bundle origin URLs are shown without their credentials: user information, query values, fragments."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle.archive import build_archive
from service.bundle.origin import BundleOrigin, Outcome
from service.bundle.store import BundleStore, relative_to
from service.core.errors import Problem
from service.redaction import MASK, ScrubFilter, redact_url, scrub
from tests.fleet.conftest import OriginServer

ROOT = Path(__file__).parents[1]
INVALID = sorted(p for p in (ROOT / "tests" / "invalid").iterdir() if p.is_dir())

# Secrets are drawn from characters that hosts, paths and query keys below never use, so "not in" is exact.
SECRET = st.text(alphabet="QXZ0123456789!$'()*+,;~-._", min_size=6, max_size=24).map(lambda s: f"QZ{s}")
WORD = st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=8)
HOST = st.one_of(st.lists(WORD, min_size=1, max_size=3).map(".".join), st.just("127.0.0.1"), st.just("[::1]"))


@st.composite
def secret_urls(draw: st.DrawFn) -> tuple[str, list[str], str, str]:
    """A URL with secrets in some of: the password, query values, a bare query token, the fragment."""
    host, path = draw(HOST), "/" + "/".join(draw(st.lists(WORD, max_size=3))) + draw(st.sampled_from(["", ".gz"]))
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    netloc = host if port is None else f"{host}:{port}"
    password = draw(st.one_of(st.none(), SECRET))
    if password is not None:
        netloc = f"{draw(WORD)}:{_maybe_quoted(draw, password)}@{netloc}"
    pairs = draw(st.lists(st.tuples(WORD, SECRET), max_size=3))
    token = draw(st.one_of(st.none(), SECRET))
    fragment = draw(st.one_of(st.none(), SECRET))
    parts = [f"{key}={_maybe_quoted(draw, value)}" for key, value in pairs] + ([token] if token else [])
    url = f"{draw(st.sampled_from(['http', 'https']))}://{netloc}{path}"
    url += (f"?{'&'.join(parts)}" if parts else "") + (f"#{fragment}" if fragment else "")
    secrets = [s for s in (password, token, fragment, *(value for _, value in pairs)) if s is not None]
    return url, secrets, host, path


def _maybe_quoted(draw: st.DrawFn, secret: str) -> str:
    return quote(secret, safe="") if draw(st.booleans()) else secret


def _hidden(text: str, secrets: list[str]) -> bool:
    return not any(s in text or quote(s, safe="") in text for s in secrets)


@settings(max_examples=300, deadline=None)
@given(secret_urls())
def test_a_redacted_url_keeps_the_origin_and_loses_every_secret(case: tuple[str, list[str], str, str]) -> None:
    url, secrets, host, path = case
    shown = redact_url(url)
    assert _hidden(shown, secrets), shown
    assert host.lower() in shown
    assert path in shown
    assert redact_url(shown) == shown  # redacting twice changes nothing more


@settings(max_examples=200, deadline=None)
@given(secret_urls(), st.text(alphabet="abc :/", max_size=20))
def test_scrubbed_text_quotes_neither_the_url_nor_its_secrets(
    case: tuple[str, list[str], str, str], noise: str
) -> None:
    url, secrets, _, _ = case
    text = f"ConnectError: {noise} {url} {' '.join(secrets)} {noise}"
    assert _hidden(scrub(text, url), secrets)


@pytest.mark.parametrize("url", ["http://host:port/x", "http://[::1/x", "https://exa mple.com:99999/"])
def test_a_url_that_does_not_parse_is_not_shown_at_all(url: str) -> None:
    assert redact_url(url) == MASK


def test_a_log_record_with_an_exception_that_quotes_the_url_is_scrubbed() -> None:
    url = "https://ops:QZhunter2@bundles.example/b.tar.gz?sig=QZabc123"
    try:
        raise RuntimeError(f"failed to fetch {url}")
    except RuntimeError:
        record = logging.LogRecord("tailor.origin", logging.ERROR, __file__, 1, "polling %s", (url,), sys.exc_info())
    ScrubFilter(url).filter(record)
    handler_text = logging.Formatter().format(record)
    assert "QZhunter2" not in handler_text
    assert "QZabc123" not in handler_text
    assert "bundles.example/b.tar.gz" in handler_text


def test_no_log_line_of_a_failing_origin_shows_the_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = tmp_path / "bundle"
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, bundle / kind)
    build_archive(bundle, tmp_path / "b.tar.gz")
    server = OriginServer()
    server.publish((tmp_path / "b.tar.gz").read_bytes())
    host, port = server.server_address[:2]
    url = f"http://ops:QZhunter2@{host!s}:{port}/b.tar.gz?X-Amz-Signature=QZsig0123&X-Amz-Expires=QZ3600#QZfrag"
    secrets = ["QZhunter2", "QZsig0123", "QZ3600", "QZfrag"]
    caplog.set_level(logging.DEBUG)
    try:
        with BundleOrigin(url, tmp_path / "cache", lambda _: True, retries=1, sleep=lambda _: None) as origin:
            assert origin.poll_once().outcome is Outcome.APPLIED
            server.fail_always = True
            failed = origin.poll_once()
            server.stop()
            unreachable = origin.poll_once()
    finally:
        server.stop()
    assert (failed.outcome, unreachable.outcome) == (Outcome.FAILED, Outcome.FAILED)
    lines = [logging.Formatter("%(name)s %(message)s").format(r) for r in caplog.records]
    assert any(line.startswith("httpx HTTP Request") for line in lines)  # the library's own lines were seen
    assert all(_hidden(line, secrets) for line in [*lines, failed.detail, unreachable.detail]), lines
    assert origin.shown_url == f"http://***@{host!s}:{port}/b.tar.gz?X-Amz-Signature=***&X-Amz-Expires=***#***"


@pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])
def test_load_errors_name_files_inside_the_bundle_never_server_paths(case: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, bundle / kind)
    shutil.rmtree(bundle / "rules")
    source = case / "overlay" if (case / "overlay").is_dir() else case
    shutil.copytree(source, bundle, dirs_exist_ok=True, ignore=shutil.ignore_patterns("expected.txt"))
    if not (bundle / "rules").exists():
        shutil.copytree(ROOT / "rules", bundle / "rules")
    report = BundleStore().load(bundle)
    assert not report.ok
    for problem in report.problems:
        assert not problem.file.startswith("/")
        assert str(tmp_path) not in problem.file + problem.message


def test_a_message_quoting_a_path_inside_the_bundle_is_made_relative(tmp_path: Path) -> None:
    problem = Problem(f"{tmp_path}/rules/a.yaml", (), f"cannot read {tmp_path.resolve()}/rules/a.yaml")
    assert relative_to(tmp_path, [problem]) == (Problem("rules/a.yaml", (), "cannot read rules/a.yaml"),)
