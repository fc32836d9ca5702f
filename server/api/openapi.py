"""The published contract: what FastAPI cannot infer from the routes is added here (the two
request bodies of ``POST /lipsync``, the error responses, the ``status`` enum, the bearer
scheme), so that a client generated from ``/openapi.json`` works and a schema fuzzer agrees."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from server.api.schemas import ErrorResponse, FacesPathRequest, JobParams, PathRequest
from server.jobs.model import JobStatus

_ERROR_TEXT = {
    400: "The request or its files cannot be used (the code says why)",
    401: "A valid 'Authorization: Bearer <key>' header is required",
    403: "Path inputs are disabled, or the path is outside the allowed folders",
    404: "No such job (or it belongs to another API key)",
    408: "The request body did not arrive within the body timeout",
    409: "The job has no result yet",
    410: "The result was removed after its retention time",
    413: "The upload or the JSON body is too large, or the job would need more disk than MAX_JOB_DISK_GB",
    415: "Neither multipart/form-data nor application/json",
    416: "The Range header is malformed or outside the file",
    422: "A parameter is invalid",
    429: "The queue is full; retry after the Retry-After header's seconds",
    503: "The service is shutting down, or not ready",
    507: "The data folder is full (below its free-space threshold, or a write failed); retry later",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error statuses, all with the error schema."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _ERROR_TEXT[status]}
        if status in (429, 503, 507):
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
        out[status] = entry
    return out


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` -> X (a form field is either sent or not)."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**options[0], **rest}
    return schema


def _lipsync_body() -> dict[str, Any]:
    form = {name: _without_null(s) for name, s in JobParams.model_json_schema()["properties"].items()}
    for s in form.values():
        s.pop("default", None)
    binary = {"type": "string", "format": "binary"}
    multipart = {
        "type": "object",
        "required": ["video", "audio"],
        "additionalProperties": False,  # other fields are refused (422)
        "properties": {
            "video": {**binary, "description": "the video (a real media file: MP4, MOV, MKV, WebM, ...)"},
            "audio": {**binary, "description": "the speech track (WAV, MP3, AAC, ... or a file with audio)"},
            **form,
        },
    }
    json_form = PathRequest.model_json_schema()
    json_form.pop("title", None)
    return {
        "required": True,
        "description": "Either the two files (multipart/form-data), or, for co-located backends, paths "
        "inside LATENTSYNC_INPUT_DIRS (application/json). Optional job parameters in both.",
        "content": {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": json_form}},
    }


def _faces_body() -> dict[str, Any]:
    multipart = {
        "type": "object",
        "required": ["video"],
        "additionalProperties": False,
        "properties": {"video": {"type": "string", "format": "binary", "description": "the video to scan"}},
    }
    json_form = FacesPathRequest.model_json_schema()
    json_form.pop("title", None)
    return {
        "required": True,
        "description": "The video (multipart/form-data), or a path inside LATENTSYNC_INPUT_DIRS (application/json).",
        "content": {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": json_form}},
    }


def install_openapi(app: FastAPI, bearer: bool) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        spec = copy.deepcopy(spec)
        paths = spec["paths"]
        paths["/lipsync"]["post"]["requestBody"] = _lipsync_body()
        paths["/faces"]["post"]["requestBody"] = _faces_body()
        for param in paths["/jobs"]["get"].get("parameters", []):
            if param["name"] == "status":  # free text in the code (a bad one is 400 INVALID_PARAMETER)
                param["schema"] = {"type": "string", "enum": [s.value for s in JobStatus]}
        error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for ops in paths.values():
            for op in ops.values():
                for status, response in op["responses"].items():
                    if status[0] in "45":  # errors are JSON whatever the route's own media type
                        response["content"] = error_content
        if bearer:
            spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
            }
            for path, ops in paths.items():
                if path != "/health":
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
