"""The preview page in a real browser: Debian's chromium, driven by playwright, against a real server.

One browser for the whole module (it is the slow part); each test opens its own tab. The
server runs as a production server would with the page on: an admin token set, no
``TAILOR_PREVIEW`` and no client time for anonymous clients, so the page works only with the
token pasted into it. ``make test`` installs chromium when it is missing; playwright never
downloads a browser here (``executable_path`` names the system one).

``TAILOR_PREVIEW_SCREENSHOT=docs/preview.png`` saves the README's screenshot (``make preview-screenshot``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Playwright, Route, expect, sync_playwright

from tests.integration.server import ROOT, Server, running_server

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TOKEN = "preview-browser-token-0123456789"
WAIT_MS = 30_000  # generous: two cores shared by many processes
VIP = "a German VIP sees the VIP hero, in German"
CART = "cart-abandoner"
SCREENSHOT = os.environ.get("TAILOR_PREVIEW_SCREENSHOT")


def _message(locale: str, key: str) -> str:
    path = ROOT / "content" / "locales" / f"{locale}.yaml"
    return str(yaml.safe_load(path.read_text(encoding="utf-8"))["messages"][key])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server(TAILOR_ADMIN_TOKEN=TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    profile = tmp_path_factory.mktemp("chromium-profile")  # a new, empty profile
    with sync_playwright() as playwright:
        context = _launch(playwright, profile)
        expect.set_options(timeout=WAIT_MS)
        yield context
        context.close()


def _launch(playwright: Playwright, profile: Path) -> BrowserContext:
    return playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1280, "height": 900},
        timeout=WAIT_MS,
    )  # fmt: skip


@pytest.fixture
def tab(browser: BrowserContext, server: Server) -> Iterator[tuple[Page, list[str]]]:
    """A new tab on the preview page, and the console messages it logs."""
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    console: list[str] = []

    def remember(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", remember)
    page.goto(f"{server}/preview")
    yield page, console
    page.close()


def _use_token(page: Page) -> None:
    page.locator("#token-box summary").click()
    page.fill("#token", TOKEN)
    page.click("#token-use")
    expect(page.locator("#sample option").nth(1)).to_be_attached()


def _pick(page: Page, name: str) -> None:
    value = page.locator("#sample option", has_text=f"{name} (").first.get_attribute("value")
    assert value is not None
    page.select_option("#sample", value=value)


def _decide(page: Page, decision_id_before: str = "") -> None:
    page.click("#decide")
    expect(page.locator("#decision-id")).not_to_have_text(decision_id_before)
    expect(page.locator("#error")).to_be_hidden()


def _placement(page: Page, name: str) -> Any:
    return page.locator(f'article.placement[data-placement="{name}"]')


def test_picking_a_visitor_shows_the_hero_rendered_and_the_trace(tab: tuple[Page, list[str]]) -> None:
    page, console = tab
    _use_token(page)
    _pick(page, VIP)
    assert json.loads(page.input_value("#visitor"))["id"] == "v-vip-de"
    assert (page.input_value("#now"), page.input_value("#locale")) == ("2026-12-01T12:00:00Z", "de-DE")
    _decide(page)
    hero = _placement(page, "home_hero")
    expect(hero.locator(".fact-variant")).to_have_text("hero_vip")
    expect(hero.locator(".fact-reason")).to_have_text("targeting_match")
    expect(hero.locator(".fact-rule")).to_have_text("vip_offer")
    frame = hero.locator("iframe.block")
    assert frame.get_attribute("sandbox") == ""  # no scripts, no same origin
    expect(frame.content_frame.locator("body")).to_contain_text(_message("de", "hero.vip.headline"))
    expect(hero.locator("table.trace tr.outcome-matched")).to_contain_text("vip_offer")
    expect(hero.locator("table.trace")).to_contain_text("matched")
    expect(page.locator("#segments")).to_contain_text("vip")

    page.fill("#locale", "en-US")  # the same visitor, in English
    _decide(page, page.inner_text("#decision-id"))
    expect(hero.locator("iframe.block").content_frame.locator("body")).to_contain_text(
        _message("en", "hero.vip.headline")
    )
    assert [text for text in console if "Content Security Policy" in text] == []


def test_save_as_check_gives_a_check_that_tailor_test_passes(tab: tuple[Page, list[str]], tmp_path: Path) -> None:
    page, console = tab
    _use_token(page)
    _pick(page, CART)
    page.click("#now-button")
    page.fill("#currency", "USD")
    _decide(page)
    email = _placement(page, "cart_email")
    expect(email.locator(".fact-experiment")).to_contain_text("cart_email_test → ")
    expect(email.locator("iframe.block").content_frame.locator("body")).to_contain_text("$")
    page.click("#save-check")
    expect(page.locator("#check-yaml")).to_be_visible()
    text = page.input_value("#check-yaml")
    assert f"name: {CART} (preview)" in text
    check = tmp_path / "preview.yaml"
    check.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "test", str(ROOT), str(check)],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, text + done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "1 passed, 0 failed"
    assert [text for text in console if "Content Security Policy" in text] == []
    if SCREENSHOT:
        page.set_viewport_size({"width": 1280, "height": 1400})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / SCREENSHOT))


def test_a_decide_that_fails_leaves_no_results_of_the_visitor_before(tab: tuple[Page, list[str]]) -> None:
    """Else the VIP's decision would read as the broken visitor's, and "save as check" would save it so."""
    page, _ = tab
    _use_token(page)
    _pick(page, VIP)
    _decide(page)
    expect(_placement(page, "home_hero")).to_be_visible()
    for broken in ('{"id": 7}', "{not json"):  # the API refuses it (400); the page cannot parse it
        _pick(page, VIP)
        _decide(page, page.inner_text("#decision-id"))
        page.fill("#visitor", broken)
        page.click("#decide")
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator("article.placement")).to_have_count(0)
        expect(page.locator("#save")).to_be_hidden()
        expect(page.locator("#summary")).to_be_hidden()
        expect(page.locator("#empty")).to_be_visible()


def test_any_other_field_of_a_trace_entry_is_shown_as_text(tab: tuple[Page, list[str]]) -> None:
    """Fields a trace entry gains (why a rule did not match, …) show as they come, never as markup."""
    page, _ = tab
    hostile = '<img src=x onerror="window.pwned=1">'
    why_not = {"file": "rules/home.yaml", "line": 14, "operator": "gte", "expected": 5, "actual": hostile}

    def with_why_not(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for step in body["trace"]:
            if step["outcome"] == "no_match":
                step |= {"why_not": why_not, "note": hostile}
        route.fulfill(response=response, json=body)

    page.route("**/v1/decide", with_why_not)
    _use_token(page)
    _pick(page, VIP)
    _decide(page)
    skipped = page.locator("tr.outcome-no_match").first
    expect(skipped.locator('[data-field="why_not"]')).to_contain_text("operator")
    expect(skipped.locator('[data-field="why_not"]')).to_contain_text("rules/home.yaml")
    expect(skipped.locator('[data-field="note"]')).to_have_text(f"note: {hostile}")
    assert page.evaluate("window.pwned") is None
    assert page.locator("img[src=x]").count() == 0


def test_the_token_stays_in_the_tab_and_out_of_the_page(tab: tuple[Page, list[str]], server: Server) -> None:
    page, _ = tab
    expect(page.locator("#error")).to_contain_text("Paste the admin token")  # the visitors need it
    _use_token(page)
    assert page.evaluate("sessionStorage.getItem('tailor.preview.token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0
    assert TOKEN not in page.content()
    assert page.input_value("#token") == ""
    page.locator("#token-box summary").click()
    page.click("#token-forget")
    assert page.evaluate("sessionStorage.length") == 0
