"""The one error type the library raises for outcomes a caller should report as they are."""

from __future__ import annotations


class CodedError(Exception):
    """A failure with a stable machine-readable ``code`` and a sentence for people.

    Raised for what the inputs caused (unusable media, no face, an empty audio track): a
    service reports it to its client as it is. Anything else that escapes the library is
    an internal error: a bug or a broken installation, to be logged with its traceback.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class MediaError(CodedError):
    """A media file cannot be used (not media, no stream of the needed kind, too long...)."""


class Cancelled(Exception):
    """The caller asked to stop; partial outputs were removed."""
