"""The browsable API description: Swagger UI, with its scripts and styles served by Tailor itself.

Litestar's pages load Swagger UI from a CDN, so offline (a laptop on a train, a closed
network) ``/schema/swagger`` was blank. The files come from the ``swagger-ui-bundle``
package instead, pinned like every other dependency, and only the Swagger page is
offered: the other renderers would fetch from a CDN too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

ASSETS_PATH = "/schema/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
ASSET_MAX_AGE = 86_400  # the files change only with the pinned package


SWAGGER = SwaggerRenderPlugin(
    js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
    css_url=f"{ASSETS_PATH}/swagger-ui.css",
    standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
    favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
)


def swagger_page(request: Request[Any, Any, Any], document: dict[str, Any]) -> bytes:
    """The Swagger UI page for ``document``, naming only files this server serves."""
    return SWAGGER.render(request, document)


@lru_cache(maxsize=len(ASSETS))
def _asset(name: str) -> bytes:
    return (swagger_ui_path / name).read_bytes()  # type: ignore[no-any-return]


@get(f"{ASSETS_PATH}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
def swagger_asset(name: FromPath[str]) -> Response[bytes]:
    """One of Swagger UI's files; nothing else of the package is served."""
    if name not in ASSETS:
        raise NotFoundException(f"no asset {name!r}")
    headers = {"cache-control": f"public, max-age={ASSET_MAX_AGE}"}
    return Response(_asset(name), media_type=ASSETS[name], headers=headers)
