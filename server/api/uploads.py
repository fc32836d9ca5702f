"""Streaming multipart uploads straight into a job's own folder.

The body is parsed as it arrives (python-multipart's push parser): files never pass
through a shared temporary folder or sit whole in memory, and the size limit is enforced
while reading, so an oversize upload is refused after at most ``limit`` bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from server.api.errors import APIError
from server.jobs.folder import UPLOAD_PREFIX

FILE_FIELDS = ("video", "audio")
MAX_FIELD_BYTES = 4096
_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,5}$")


@dataclass
class ParsedUpload:
    files: dict[str, Path] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # SHA-256 of each file, when asked for


class _Sink:
    """Per-part state for the parser callbacks."""

    def __init__(self, folder: Path, limit: int, hash_files: bool = False):
        self.folder, self.limit, self.hash_files = folder, limit, hash_files
        self._hash: hashlib._Hash | None = None
        self.total = 0
        self.result = ParsedUpload()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._file: BinaryIO | None = None
        self._value = bytearray()

    def on_part_begin(self) -> None:
        self._headers, self._name, self._file, self._value = {}, None, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode(errors="replace")
        filename = opts.get(b"filename")
        self._name = name
        if filename is not None:
            if name not in FILE_FIELDS:
                raise APIError(400, "UNEXPECTED_FILE", f"unexpected file field '{name}' (expected video and audio)")
            if name in self.result.files:
                raise APIError(400, "DUPLICATE_FILE", f"more than one '{name}' file")
            ext = Path(filename.decode(errors="replace")).suffix
            # The user's file name never reaches a path: only a short alphanumeric suffix.
            path = self.folder / f"{UPLOAD_PREFIX}{name}{ext.lower() if _SAFE_EXT.match(ext) else ''}"
            self._file = open(path, "wb")  # noqa: SIM115 (closed in on_part_end or close)
            self.result.files[name] = path
            self._hash = hashlib.sha256() if self.hash_files else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        self.total += n
        if self.total > self.limit:
            raise APIError(413, "PAYLOAD_TOO_LARGE", f"upload larger than {self.limit // (1024 * 1024)} MB")
        if self._file is not None:
            self._file.write(data[start:end])
            if self._hash is not None:
                self._hash.update(data[start:end])
        else:
            if len(self._value) + n > MAX_FIELD_BYTES:
                raise APIError(400, "FIELD_TOO_LARGE", f"form field '{self._name}' is too large")
            self._value += data[start:end]

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self._hash is not None and self._name:
                self.result.digests[self._name] = self._hash.hexdigest()
        elif self._name:
            self.result.fields[self._name] = self._value.decode(errors="replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_multipart(request: Request, folder: Path, limit: int, hash_files: bool = False) -> ParsedUpload:
    content_type, opts = parse_options_header(request.headers.get("content-type", ""))
    boundary = opts.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise APIError(415, "UNSUPPORTED_MEDIA_TYPE", "send multipart/form-data (video, audio) or application/json")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise APIError(413, "PAYLOAD_TOO_LARGE", f"upload larger than {limit // (1024 * 1024)} MB")
    sink = _Sink(folder, limit, hash_files)
    callbacks = {
        name: getattr(sink, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except (APIError, OSError):  # OSError: writing the part failed (a full disk: the route's 507)
        raise
    except Exception as exc:  # the parser's own errors: a malformed body
        raise APIError(400, "MALFORMED_UPLOAD", f"malformed multipart body: {exc}") from exc
    finally:
        sink.close()
    return sink.result
