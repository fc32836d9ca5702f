"""Range requests on a job's result checked before the file is sent: a Range header the file
response would refuse is a JSON error (416 with a code, ``Content-Range: bytes */SIZE``), as
every other error of the API, not Starlette's plain-text answer."""

from __future__ import annotations

import re

from server.api.errors import APIError

_SPEC = re.compile(r"^(?:(\d+)-(\d*)|-(\d+))$")  # first-[last] or -suffix (RFC 9110 14.1.1)


def check_range(header: str, size: int) -> None:
    """Raises 416 ``INVALID_RANGE`` (not a byte range set, or first > last) or
    ``RANGE_NOT_SATISFIABLE`` (a range starts at or past the end of the ``size`` bytes)."""
    unsatisfiable = {"Content-Range": f"bytes */{size}"}
    unit, sep, specs = header.partition("=")
    parts = [p.strip() for p in specs.split(",")]
    matches = [_SPEC.match(p) for p in parts]
    if not sep or unit.strip().lower() != "bytes" or not all(matches):
        raise APIError(416, "INVALID_RANGE", f"not a byte range: {header[:100]!r}", unsatisfiable)
    for part, (first, last, suffix) in zip(parts, [m.groups() for m in matches if m], strict=True):
        if first is not None and last and int(last) < int(first):
            raise APIError(416, "INVALID_RANGE", f"the range {part} ends before it starts", unsatisfiable)
        start = int(first) if first is not None else size - int(suffix)
        if start >= size:
            message = f"the range {part} is outside the result ({size} bytes)"
            raise APIError(416, "RANGE_NOT_SATISFIABLE", message, unsatisfiable)
