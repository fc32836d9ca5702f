"""The test set of ``eval run``: a text file with one test per line.

``VIDEO<TAB>SPEECH`` pairs a video with a speech track (the dubbing case: often another
clip's audio); a lone ``VIDEO`` is scored with its own audio, so a ``fileslist_val.txt``
from ``latentsync preprocess`` (held-out clips) is a test set as it is. Blank lines and
lines starting with ``#`` are skipped; relative paths are read from the list's folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from latentsync_core.common.errors import CodedError
from latentsync_core.media.probe import probe_audio, probe_video


@dataclass(frozen=True)
class EvalPair:
    """One test: a source video and the speech to lip-sync it to (None: its own audio)."""

    line: int  # 1-based line of the list, for messages
    video: Path
    speech: Path | None

    @property
    def own_audio(self) -> bool:
        return self.speech is None

    @property
    def key(self) -> str:
        """A name that stays the same when the list is reordered: stems plus a short hash of
        both absolute paths (two clips with one name in different folders stay apart)."""
        speech = self.speech or self.video
        digest = hashlib.sha1(f"{self.video.resolve()}\n{speech.resolve()}".encode()).hexdigest()[:8]
        return f"{self.video.stem}__{speech.stem}-{digest}"

    @property
    def speech_path(self) -> Path:
        return self.speech or self.video


def _resolve(text: str, folder: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else folder / path


def read_test_set(path: str | Path) -> list[EvalPair]:
    """The tests of ``path``. Raises :class:`CodedError` ``TEST_SET_NOT_FOUND``,
    ``INVALID_TEST_SET`` (a line with more than two columns, a test listed twice) or
    ``EMPTY_TEST_SET``."""
    path = Path(path)
    if not path.is_file():
        raise CodedError("TEST_SET_NOT_FOUND", f"test list not found: {path}")
    tests: list[EvalPair] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        columns = [c.strip() for c in text.split("\t")]
        if len(columns) > 2 or not all(columns):
            raise CodedError(
                "INVALID_TEST_SET", f"{path}:{number}: expected VIDEO or VIDEO<TAB>SPEECH, got {len(columns)} columns"
            )
        video = _resolve(columns[0], path.parent)
        speech = _resolve(columns[1], path.parent) if len(columns) == 2 else None
        if speech is not None and speech.resolve() == video.resolve():
            speech = None  # a video with its own file as speech is the own-audio case
        test = EvalPair(number, video, speech)
        if test.key in seen:
            raise CodedError("INVALID_TEST_SET", f"{path}:{number}: the same test as line {seen[test.key]}")
        seen[test.key] = number
        tests.append(test)
    if not tests:
        raise CodedError("EMPTY_TEST_SET", f"{path} lists no tests (one VIDEO or VIDEO<TAB>SPEECH per line)")
    return tests


def check_pairs(tests: list[EvalPair]) -> None:
    """Probe every video and speech track before any model is loaded, so that a bad line
    fails the run at once. Raises :class:`CodedError` ``UNREADABLE_PAIR`` naming the line
    and the media error (missing file, not media, no video or no audio stream)."""
    for test in tests:
        try:
            info = probe_video(test.video)
            if test.speech is None:
                if not info.has_audio:
                    raise CodedError("NO_AUDIO_STREAM", f"{test.video.name} has no audio to lip-sync it to")
            else:
                probe_audio(test.speech)
        except CodedError as exc:
            raise CodedError(
                "UNREADABLE_PAIR", f"line {test.line} ({test.video.name}): [{exc.code}] {exc.message}"
            ) from exc
