"""Every error is JSON: ``{"error": {"code": "STABLE_CODE", "message": "for humans"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from server.jobs.disk import CODE as STORAGE_CODE
from server.jobs.disk import is_disk_full
from server.jobs.store import StoreUnavailable

log = logging.getLogger("latentsync.server")


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def insufficient_storage(reason: str) -> APIError:
    """507: the data folder has no room for an upload (``server.jobs.disk`` says why)."""
    return APIError(507, STORAGE_CODE, f"the server has no room for this upload: {reason}", {"Retry-After": "60"})


STORE_RETRY_AFTER_S = 10


def store_unavailable() -> APIError:
    """503: the job records cannot be read or written now (a damaged database, Redis down)."""
    message = "the job records cannot be read now; try again later"
    return APIError(503, "STORE_UNAVAILABLE", message, {"Retry-After": str(STORE_RETRY_AFTER_S)})


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


_STATUS_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHORIZED", 413: "PAYLOAD_TOO_LARGE"}


def _allowed_methods(request: Request) -> list[str]:
    def walk(routes: list, scope: dict) -> set[str]:
        found: set[str] = set()
        for route in routes:
            match, child = route.matches(scope)
            if match == Match.NONE:
                continue
            if isinstance(route, Route) and route.methods:
                found |= route.methods
            else:  # an included router (FastAPI wraps it; its routes are the original router's)
                inner = getattr(route, "routes", None) or getattr(getattr(route, "original_router", None), "routes", [])
                found |= walk(inner, {**scope, **child})
        return found

    return sorted(walk(request.app.router.routes, dict(request.scope)))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        return JSONResponse(error_body("INVALID_PARAMETER", f"{where}: {first.get('msg', 'invalid')}"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110: Allow lists every method of the path, not one route's
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StoreUnavailable)
    async def _store(request: Request, exc: StoreUnavailable) -> JSONResponse:
        """Whatever route touched the records: 503 with Retry-After (507 when the disk is full)."""
        log.error("job store unavailable on %s %s: %s", request.method, request.url.path, exc)
        error = insufficient_storage("the data folder is full") if is_disk_full(exc) else store_unavailable()
        return await _api_error(request, error)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        """A bug: logged with its traceback, answered as JSON (never a plain-text 500)."""
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("INTERNAL", "internal error; see the service log"), status_code=500)
