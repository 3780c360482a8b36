"""The browsable API description works offline: every file the Swagger page needs is served by Tailor."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.testing import TestClient

from service.http.app import create_app
from service.settings import Settings

ROOT = Path(__file__).parents[1]
# Every place an HTML page names another resource.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""", re.IGNORECASE)


def _client() -> TestClient:  # type: ignore[type-arg]
    return TestClient(app=create_app(Settings(bundle=ROOT, reload_interval=0)))


def test_the_swagger_page_names_no_other_host_and_every_file_it_names_is_served() -> None:
    with _client() as client:
        page = client.get("/schema/swagger")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        references = [a or b for a, b in REFERENCE.findall(html)]
        assert len(references) == 4  # the favicon, the styles and two scripts
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE)
        for reference in references:
            asset = client.get(reference)
            assert asset.status_code == 200, reference
            assert len(asset.content) > 500, reference
        assert "SwaggerUIBundle" in client.get("/schema/assets/swagger-ui-bundle.js").text


def test_only_the_named_assets_are_served_and_cdn_pages_are_gone() -> None:
    with _client() as client:
        assert client.get("/schema/assets/index.html").status_code == 404
        assert client.get("/schema/assets/..%2F__init__.py").status_code == 404
        for page in ("/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/scalar"):
            assert client.get(page).status_code == 404, page
        assert client.get("/schema/openapi.json").json()["info"]["title"] == "Tailor decision API"
