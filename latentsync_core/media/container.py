"""Which container a file is, read from its first bytes (never from its name), and the
ffmpeg input arguments that open exactly that file with exactly that demuxer.

ffmpeg left to itself picks a demuxer from the name and the contents: a client's
``x.m3u8`` becomes an HLS playlist that opens other local files, an ``ffconcat`` script
chains files for hours. We accept only the media containers listed here, refuse text
playlists and scripts outright, name the demuxer with ``-f`` and whitelist the ``file``
protocol alone, so ffmpeg opens the one file it was given and nothing it names.
"""

from __future__ import annotations

from pathlib import Path

from latentsync_core.common.errors import MediaError
from latentsync_core.media.ffmpeg_bin import input_arg
from latentsync_core.media.input_file import display_name, held_open

HEAD_BYTES = 4096
# ISO base media (MP4, MOV, M4A, 3GP): a box type at offset 4 of the first box.
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"}
# Text that ffmpeg would read as a list of other files (or streams) to open.
_PLAYLIST_MARKERS = (b"#EXTM3U", b"#EXT-X-", b"#EXTINF", b"ffconcat", b"v=0", b"[playlist]", b"<?xml", b"<MPD")
_PLAYLIST_MARKERS += (b"<smil", b"<ASX", b"[Reference]", b"file ", b"file:", b"http:", b"https:")
TS_PACKET = 188


def detect_demuxer(path: str | Path) -> str:
    """The ffmpeg demuxer for the file's bytes: ``mov``, ``matroska``, ``avi``, ``mpegts``,
    ``mpeg``, ``flv``, ``wav``, ``aiff``, ``mp3``, ``aac``, ``flac`` or ``ogg``.

    Raises MediaError ``PLAYLIST_NOT_ALLOWED`` for playlists and scripts, ``INVALID_MEDIA``
    for anything else that is not one of those containers."""
    with held_open(path) as held, open(held, "rb") as f:  # never blocks on a FIFO
        head = f.read(HEAD_BYTES)
        if head[:3] == b"ID3":  # an ID3v2 tag: what follows it decides
            f.seek(_id3_size(head))
            head = f.read(HEAD_BYTES)
            found = _audio_stream(head)
        else:
            found = sniff(head)
    if found:
        return found
    if _is_playlist(head):
        raise MediaError("PLAYLIST_NOT_ALLOWED", f"{display_name(path)} is a playlist or script, not a media file")
    raise MediaError("INVALID_MEDIA", f"{display_name(path)} is not a readable media file")


def sniff(head: bytes) -> str | None:
    """The demuxer for a file starting with ``head`` (a few KB), or None."""
    if head[4:8] in _ISO_BOXES:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska and WebM
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"\x00\x00\x01\xba":  # MPEG program stream pack header
        return "mpeg"
    if head[:4] == b"FLV\x01":
        return "flv"
    if _is_transport_stream(head):
        return "mpegts"
    return _audio_stream(head)


def _audio_stream(head: bytes) -> str | None:
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame sync
        layer = (head[1] >> 1) & 3
        if layer == 0:
            return "aac" if head[1] & 0xF6 == 0xF0 else None  # ADTS
        return "mp3"
    return None


def _is_transport_stream(head: bytes) -> bool:
    """Sync byte 0x47 every 188 bytes (or every 192, M2TS's timecode prefix), at least twice."""
    for offset, step in ((0, TS_PACKET), (4, TS_PACKET + 4)):
        starts = range(offset, min(len(head), offset + 4 * step), step)
        if len(starts) >= 2 and all(head[i] == 0x47 for i in starts):
            return True
    return False


def _id3_size(head: bytes) -> int:
    """Bytes of an ID3v2 tag: 10 of header, a "syncsafe" size (7 bits a byte), 10 of footer."""
    size = 0
    for b in head[6:10]:
        size = (size << 7) | (b & 0x7F)
    footer = 10 if len(head) > 5 and head[5] & 0x10 else 0
    return 10 + size + footer


def _is_playlist(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return any(text.startswith(m) or b"\n" + m in text for m in _PLAYLIST_MARKERS)


def input_args(path: str | Path) -> list[str]:
    """ffmpeg/ffprobe arguments that open ``path`` as its detected container, with the
    ``file`` protocol alone: ``-protocol_whitelist file -f <demuxer> -i file:<path>``."""
    return ["-protocol_whitelist", "file", "-f", detect_demuxer(path), "-i", input_arg(path)]
