"""Pages for people. The page to try the service: ``GET /`` (plain HTML and JavaScript from
``server/static``, no build step, nothing loaded from elsewhere), public like ``/health``: the
page itself holds no data; the API key is typed into it and sent by its script with every API
call. The API's documentation (``/docs``, ``/openapi.json``), behind the key like the API it
describes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from server.api.deps import keyed_router

STATIC = Path(__file__).resolve().parent.parent / "static"
# The page runs only its own script and talks only to this origin (CSP), and is never framed.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; connect-src 'self' blob:; "
    "img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

web = APIRouter(include_in_schema=False)


@web.get("/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


@web.get("/static/app.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "app.js", media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@web.get("/static/live.js")
async def live_script() -> FileResponse:
    return FileResponse(STATIC / "live.js", media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@web.get("/static/style.css")
async def style() -> FileResponse:
    return FileResponse(STATIC / "style.css", media_type="text/css; charset=utf-8", headers=_HEADERS)


docs = keyed_router()


@docs.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@docs.get("/docs", include_in_schema=False)
async def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title)
