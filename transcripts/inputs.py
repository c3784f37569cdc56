"""A transcript as it arrives (text, SRT, WebVTT, a list of segments, or an uploaded file), read into the one
normalized form (analysis/engine/transcripts.py) and held to the size limits: for POST transcripts and for
every job submission given a transcript rather than a stored one's id.

Errors are ServiceErrors; a bad field's names the field, in the same words DRF would use.
"""

from __future__ import annotations

import json
from pathlib import PurePath

from django.conf import settings
from django.core.files import File

from analysis.engine.transcripts import TranscriptError, detect_format, normalize_transcript
from scriptripper.errors import PayloadTooLarge, field_errors

# Uploaded files by extension: the caption format they hold (None: detect; .txt files are often captions).
UPLOAD_FORMATS: dict[str, str | None] = {".txt": None, ".srt": "srt", ".vtt": "vtt", ".json": "segments"}
SEGMENTS_FORMAT = "segments"
TRANSCRIPT_REQUIRED = ("A transcript is required: send `transcript` (plain text, SRT or WebVTT), `segments`, "
                       "or upload a `file`.")


def read_transcript(*, text: str | None, segments: list | None, upload: File | None,
                    fmt: str | None) -> tuple[str, str]:
    """(the normalised transcript: one speaker turn a line, [hh:mm:ss] where the source had times; its
    source format), held to MAX_TRANSCRIPT_CHARS before and after normalising."""
    if text is not None and not text.strip() and (segments is not None or upload is not None):
        text = None  # an empty form field next to the real source
    given = [name for name, value in (("transcript", text), ("segments", segments), ("file", upload))
             if value is not None]
    if not given:
        raise field_errors({"transcript": [TRANSCRIPT_REQUIRED]})
    if len(given) > 1:
        raise field_errors({given[1]: [f"Send the transcript one way only; got {' and '.join(given)}."]})
    field = given[0]
    if upload is not None:
        text, segments, fmt = _read_upload(upload, fmt)
    if segments is not None:
        fmt = SEGMENTS_FORMAT
        source_chars = sum(len(s.get("text") or "") for s in segments if isinstance(s, dict)
                           and isinstance(s.get("text"), str))
    else:
        source_chars = len(text)
        if not text.strip():
            raise field_errors({field: ["The transcript is empty."]})
        if "\x00" in text:
            raise field_errors({field: ["must not contain NUL characters"]})
        fmt = fmt or detect_format(text)
    _check_chars(source_chars)
    try:
        normalized = normalize_transcript(segments=segments) if segments is not None else normalize_transcript(text, fmt)
    except TranscriptError as exc:
        raise field_errors({field: [exc.message]}) from None
    if not normalized.strip():
        raise field_errors({field: ["The transcript has no text (only timings or markup)."]})
    _check_chars(len(normalized))
    return normalized, fmt


def _read_upload(upload: File, fmt: str | None) -> tuple[str | None, list | None, str | None]:
    suffix = PurePath(upload.name or "").suffix.lower()
    if suffix not in UPLOAD_FORMATS:
        raise field_errors({"file": [
            f"Unsupported file type {suffix or '(no extension)'!r}: upload .txt, .srt, .vtt or .json (segments)."]})
    if upload.size is not None and upload.size > settings.MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"The uploaded file is {upload.size:,} bytes; the limit is "
                              f"{settings.MAX_REQUEST_BYTES:,} bytes (MAX_REQUEST_BYTES).")
    try:
        raw = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise field_errors({"file": [f"The file is not UTF-8 text (undecodable byte at position {exc.start})."]}) from None
    if UPLOAD_FORMATS[suffix] == SEGMENTS_FORMAT:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise field_errors({"file": [f"The file is not valid JSON: {exc}"]}) from None
        if isinstance(data, dict) and "segments" in data:
            data = data["segments"]  # {"segments": [...]}, as some exporters wrap it
        if not isinstance(data, list):
            raise field_errors({"file": ["A .json file must hold a list of segments "
                                         '[{"speaker"?, "start"?, "end"?, "text"}, ...].']})
        return None, data, SEGMENTS_FORMAT
    return raw, None, fmt or UPLOAD_FORMATS[suffix]


def _check_chars(chars: int) -> None:
    if chars > settings.MAX_TRANSCRIPT_CHARS:
        raise PayloadTooLarge(f"The transcript is {chars:,} characters long; the limit is "
                              f"{settings.MAX_TRANSCRIPT_CHARS:,} (MAX_TRANSCRIPT_CHARS).")
