"""The front door: ``GET /``, ``/favicon.ico`` and the interactive API docs, all offline.

``GET /`` sends a browser (``Accept: text/html``) to the console at ``/ui`` and anything else
to ``/docs``.  ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from
``/docs/assets/``: files shipped in the ``fastapi-offline`` package, never a CDN, so they work
on a machine without internet access.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from flagstaff.errors import NotFound

FAVICON = Path(__file__).parent / "console" / "static" / "favicon.ico"
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}
_CACHE = {"Cache-Control": "public, max-age=86400"}


def landing(accept: Annotated[str, Header()] = "") -> Response:
    if "text/html" in accept:
        return RedirectResponse("/ui", status_code=302)
    return RedirectResponse("/docs", status_code=302)


def favicon() -> Response:
    return FileResponse(FAVICON, media_type="image/x-icon", headers=_CACHE)


def docs_asset(name: str) -> Response:
    media_type = _ASSET_TYPES.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(_assets() / name, media_type=media_type, headers=_CACHE)


@cache
def _assets() -> Path:
    # Looked up on first use, so an environment installed before this dependency still
    # starts (and says what is missing on /docs) instead of failing to import the app.
    try:
        return Path(str(files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        raise NotFound(
            "the API documentation assets are not installed: pip install 'flagstaff[server]'"
        ) from None


def install(app: FastAPI) -> None:
    """Add the routes; the app must be created with ``docs_url=None, redoc_url=None``."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"
    router = APIRouter(include_in_schema=False)
    router.get("/")(landing)
    router.get("/favicon.ico")(favicon)
    router.get("/docs/assets/{name}")(docs_asset)

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            oauth2_redirect_url=redirect_url,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    @router.get(redirect_url)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/favicon.ico",
            with_google_fonts=False,
        )

    app.include_router(router)
