"""The API docs: Swagger UI 5 at `/docs` and ReDoc at `/redoc`, from the copies the fastapi-offline
package ships (served under `/docs/assets`), so they render with no internet and load nothing from
anywhere else.

Nothing in the pages names another host, and a Content-Security-Policy makes the browser refuse any
load that is not from this origin: Swagger UI's validator badge (validator.swagger.io) is switched off,
and ReDoc's side-menu logo (an <img> from cdn.redoc.ly, which ReDoc has no option to hide) is blocked,
so it falls back to text. ReDoc's Google fonts are not linked; it uses the system's fonts."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs/assets"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    "validatorUrl": None,  # else Swagger UI asks validator.swagger.io about every public spec URL
    "displayRequestDuration": True,
    "filter": True,
    "docExpansion": "list",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(html: str) -> str:
    """Only this origin: scripts by file or by the hash of the page's own inline script, styles inline
    (both UIs set them at run time), images from here or data: URIs, fetches to this API only."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}".strip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _page(html: HTMLResponse) -> HTMLResponse:
    text = bytes(html.body).decode()
    return HTMLResponse(text, headers={"Content-Security-Policy": content_security_policy(text)})


def _models_with_examples(base: type[BaseModel] = BaseModel) -> Iterator[type[BaseModel]]:
    for model in base.__subclasses__():
        extra = model.model_config.get("json_schema_extra")
        if model.__module__.startswith("walletsvc.api.") and isinstance(extra, dict) and "examples" in extra:
            yield model
        yield from _models_with_examples(model)


def keep_example_nulls(app: FastAPI) -> None:
    """FastAPI writes the document with every null left out, examples included, so an example would
    lose `"hold": null` or `"credited": null` and stop matching its schema. Put the schemas' examples
    back as the models give them (FastAPI's documented way: replace `app.openapi`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        examples = {m.__name__: m.model_config["json_schema_extra"] for m in _models_with_examples()}
        for schema in document.get("components", {}).get("schemas", {}).values():
            extra = examples.get(schema.get("title", ""))
            if isinstance(extra, dict) and "examples" in schema:
                schema["examples"] = copy.deepcopy(extra["examples"])
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    keep_example_nulls(app)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return _page(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - API docs",
                swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{assets}/swagger-ui.css",
                swagger_favicon_url=f"{assets}/favicon.png",
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return _page(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - API reference",
                redoc_js_url=f"{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{assets}/favicon.png",
                with_google_fonts=False,
            )
        )
