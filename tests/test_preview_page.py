"""The preview page's routes in process: who may use them, the page's security headers, its files, its data.

The page itself runs in a real browser in tests/integration/test_preview_browser.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient

from service.checks import command
from service.checks.samples import preview_samples
from service.http import preview
from service.http.app import create_app
from service.settings import Settings
from tests.integration.test_preview_browser import CHROMIUM

ROOT = Path(__file__).parents[1]
TOKEN = "preview-test-token-0123456789"
STATIC = ROOT / "service" / "http" / "static"
ROUTES = [("GET", "/preview"), ("GET", "/preview/static/preview.js"), ("GET", "/preview/visitors")]
NOW = "2026-12-01T12:00:00Z"


def _client(**overrides: object) -> TestClient[Any]:
    settings = Settings(bundle=ROOT, reload_interval=0, **overrides)  # type: ignore[arg-type]
    return TestClient(app=create_app(settings))


@pytest.fixture(scope="module")
def open_client() -> Iterator[TestClient[Any]]:
    with _client(preview=True, allow_client_time=True) as client:
        yield client


def _call(client: TestClient[Any], method: str, path: str, token: str | None = None) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if method == "GET":
        return client.get(path, headers=headers).status_code
    return client.post(path, content=b"{}", headers={**headers, "content-type": "application/json"}).status_code


@pytest.mark.parametrize(("method", "path"), [*ROUTES, ("POST", "/preview/check")])
def test_the_preview_does_not_exist_without_the_setting_or_an_admin_token(method: str, path: str) -> None:
    with _client() as client:
        assert _call(client, method, path) == 404
        assert _call(client, method, path, token=TOKEN) == 404


def test_with_only_an_admin_token_the_page_is_served_and_its_data_needs_the_token() -> None:
    with _client(admin_token=TOKEN) as client:
        assert _call(client, "GET", "/preview") == 200  # the page carries nothing secret: it asks for the token
        assert _call(client, "GET", "/preview/static/preview.css") == 200
        for method, path in [("GET", "/preview/visitors"), ("POST", "/preview/check")]:
            assert _call(client, method, path) == 401
            assert _call(client, method, path, token="wrong-token") == 401
        assert _call(client, "GET", "/preview/visitors", token=TOKEN) == 200
        assert _call(client, "POST", "/preview/check", token=TOKEN) == 400  # past the token: {} is not a check


def test_with_the_preview_setting_anyone_may_use_it(open_client: TestClient[Any]) -> None:
    assert [_call(open_client, method, path) for method, path in ROUTES] == [200, 200, 200]


class _Page(HTMLParser):
    """The page's tags and attributes, and any text inside script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_the_page_has_a_strict_policy_and_no_inline_script_or_token() -> None:
    with _client(admin_token=TOKEN) as client:
        page = client.get("/preview")
        files = [client.get(f"/preview/static/{name}") for name in preview.STATIC]
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert (policy["default-src"], policy["frame-ancestors"], policy["connect-src"]) == ("'none'", "'none'", "'self'")
    assert page.headers["x-content-type-options"] == "nosniff"
    parsed = _Page()
    parsed.feed(page.text)
    scripts = [attrs for tag, attrs in parsed.tags if tag == "script"]
    assert scripts
    assert all((attrs.get("src") or "").startswith("/preview/static/") for attrs in scripts)  # None: a bare src
    assert parsed.script_text == ""
    assert [name for _, attrs in parsed.tags for name in attrs if name.startswith("on") or name == "style"] == []
    for response in (page, *files):
        assert response.status_code == 200
        assert TOKEN not in response.text
    script = files[list(preview.STATIC).index("preview.js")].text
    assert "innerHTML" not in script
    assert "eval(" not in script
    assert "localStorage" not in script  # the token lives in the tab's sessionStorage only


def test_only_the_page_files_are_served(open_client: TestClient[Any]) -> None:
    for name in ("preview.html", "../app.py", "__init__.py", "missing.js"):
        assert open_client.get(f"/preview/static/{name}").status_code == 404
    assert open_client.get("/preview/static/preview.js").headers["content-type"].startswith("text/javascript")


def test_the_api_document_does_not_list_the_preview(open_client: TestClient[Any]) -> None:
    paths = open_client.get("/schema/openapi.json").json()["paths"]
    assert paths
    assert [path for path in paths if path.startswith("/preview")] == []


def test_the_visitors_are_every_example_visitor_and_every_check_test(open_client: TestClient[Any]) -> None:
    listed = open_client.get("/preview/visitors").json()
    assert listed["problems"] == []
    examples = sorted((ROOT / "examples" / "visitors").glob("*.json"))
    checks = sorted((ROOT / "checks").glob("*.yaml"))
    tests = [t for path in checks for t in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]]
    assert len(listed["samples"]) == len(examples) + len(tests)
    by_name = {sample["name"]: sample for sample in listed["samples"]}
    for path in examples:
        assert by_name[path.stem]["visitor"] == json.loads(path.read_text(encoding="utf-8"))
    for test in tests:
        listed_test = by_name[test["name"]]
        assert (listed_test["visitor"], listed_test["context"]) == (test["visitor"], test["context"])
    for sample in listed["samples"][len(examples) :]:
        file, line = sample["source"].rsplit(":", 1)
        text = (ROOT / file).read_text(encoding="utf-8").splitlines()[int(line) - 1]
        assert text.strip() == f"- name: {sample['name']}"  # the line a reader jumps to


def test_a_file_that_cannot_be_read_is_named_and_the_others_still_listed(tmp_path: Path) -> None:
    (tmp_path / "examples" / "visitors").mkdir(parents=True)
    (tmp_path / "checks").mkdir()
    (tmp_path / "examples" / "visitors" / "good.json").write_text('{"id": "v-1"}', encoding="utf-8")
    (tmp_path / "examples" / "visitors" / "broken.json").write_text('{"id": "v-1",\n}', encoding="utf-8")
    (tmp_path / "examples" / "visitors" / "list.json").write_text("[]", encoding="utf-8")
    (tmp_path / "checks" / "bad.yaml").write_text("version: 1\ntests: [\n", encoding="utf-8")
    (tmp_path / "checks" / "wrong.yaml").write_text("version: 2\ntests: []\n", encoding="utf-8")
    samples, problems = preview_samples(tmp_path)
    assert [(s.source, s.visitor) for s in samples] == [("examples/visitors/good.json", {"id": "v-1"})]
    shown = sorted(p.render() for p in problems)
    assert [line.split(":")[0] for line in shown] == [
        "checks/bad.yaml", "checks/wrong.yaml", "examples/visitors/broken.json", "examples/visitors/list.json",
    ]  # fmt: skip
    assert "examples/visitors/broken.json:2" in shown[2]


def _page_request(sample: dict[str, Any]) -> dict[str, Any]:
    """What the page sends to POST /v1/decide for a picked sample (preview.js, decide)."""
    context = {"now": NOW, **sample["context"]}
    return {"visitor": sample["visitor"], "context": context, "explain": True, "render": True}


def _page_check(name: str, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """What the page sends to POST /preview/check for what it shows (preview.js, saveCheck)."""
    placements = {}
    for key, placed in response["placements"].items():
        shown = {"reason": placed["reason"]}
        shown |= {k: placed[k] for k in ("variant", "rule") if placed.get(k)}
        if placed.get("experiment"):
            shown["experiment"] = {"key": placed["experiment"]["key"], "arm": placed["experiment"]["arm"]}
        if placed.get("render_status"):
            shown["rendered"] = placed["render_status"] == "rendered"
        placements[key] = shown
    return {
        "name": name, "visitor": request["visitor"], "context": request["context"], "placements": placements,
        "segments": response["segments"], "revision": response["revision"],
    }  # fmt: skip


def test_save_as_check_gives_a_check_that_passes_for_every_visitor_offered(
    open_client: TestClient[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = open_client.get("/preview/visitors").json()["samples"]
    files = []
    for index, sample in enumerate(samples):
        request = _page_request(sample)
        response = open_client.post("/v1/decide", json=request)
        assert response.status_code == 200, response.text
        shown = _page_check(f"{sample['name']} (preview)", request, response.json())
        saved = open_client.post("/preview/check", json=shown)
        assert saved.status_code == 200, saved.text
        assert saved.headers["content-type"].startswith("application/yaml")
        assert saved.text.startswith("# yaml-language-server: $schema=../schema/checks.v1.schema.json\n")
        files.append(tmp_path / f"preview-{index}.yaml")
        files[-1].write_text(saved.text, encoding="utf-8")
    status = command.run(argparse.Namespace(paths=[ROOT, *files], junit=None, coverage=False))
    output = capsys.readouterr().out
    assert output.splitlines()[-1] == f"{len(samples)} passed, 0 failed", output
    assert status == command.EXIT_PASSED


def test_a_saved_check_fails_when_the_decision_changes(open_client: TestClient[Any], tmp_path: Path) -> None:
    """The saved expectations are real: another visitor's decision does not pass them."""
    samples = {s["name"]: s for s in open_client.get("/preview/visitors").json()["samples"]}
    vip = _page_request(samples["a German VIP sees the VIP hero, in German"])
    shown = _page_check("vip", vip, open_client.post("/v1/decide", json=vip).json())
    shown["visitor"] = samples["an EU visitor without purchases sees the EU hero"]["visitor"]
    path = tmp_path / "checks" / "preview.yaml"
    path.parent.mkdir()
    path.write_text(open_client.post("/preview/check", json=shown).text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "test", str(ROOT), str(path)],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == command.EXIT_FAILED, done.stdout + done.stderr
    assert "home_hero: expected {variant: hero_vip, reason: targeting_match, rule: vip_offer}, got" in done.stdout
    assert done.stdout.splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"placements": {"home_hero": {"reason": "requested"}}}, "$.placements[...].reason"),
        ({"name": ""}, "$.name"),
        ({"visitor": {"id": "v", "atributes": {}}}, "$.visitor"),
        ({"extra": 1}, "$"),
    ],
)
def test_a_check_request_the_format_cannot_take_is_a_400_saying_where(
    open_client: TestClient[Any], change: dict[str, Any], where: str
) -> None:
    body = {"name": "t", "visitor": {"id": "v"}, "placements": {"home_hero": {"reason": "default"}}} | change
    response = open_client.post("/preview/check", json=body)
    assert response.status_code == 400
    assert [error["loc"] for error in response.json()["errors"]] == [where]


def test_the_page_files_are_in_the_built_package(tmp_path: Path) -> None:
    """What setuptools puts in a wheel (build_py), built from a clean copy of the sources."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "service", source / "service", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-W", "ignore", "-c", "from setuptools import setup; setup()", "-q", "build_py"]
    subprocess.run([*build, "--build-lib", "out"], cwd=source, check=True, capture_output=True, timeout=300)
    packaged = {path.name for path in (source / "out" / "service" / "http" / "static").iterdir()}
    assert packaged == {path.name for path in STATIC.iterdir()} == {preview.PAGE, *preview.STATIC}


def test_make_run_serves_the_preview_and_make_test_installs_chromium() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "PREVIEW ?= 1" in makefile
    assert "TAILOR_PREVIEW=$(PREVIEW) $(BIN)/tailor serve" in makefile
    assert "unit: $(VENV)/.dev browser\n\t$(BIN)/pytest -n $(TEST_WORKERS)\n" in makefile
    assert f"CHROMIUM := {CHROMIUM}\n" in makefile
    assert "apt-get install -y -q chromium" in makefile
    assert Settings.from_env({"TAILOR_PREVIEW": "1"}).preview
    assert not Settings.from_env({}).preview
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/preview.png)" in readme
    assert (ROOT / "docs" / "preview.png").read_bytes().startswith(b"\x89PNG")
