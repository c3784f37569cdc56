"""Transcript parsing: plain text, SubRip (SRT), WebVTT and JSON segments.

Whatever the client sends, the LLM sees one normalized form, one turn a line:

    [00:01:02] Project Manager: So welcome .

The timestamp appears only where the source had one, the speaker only where
it was known. Everything here is pure Python: no Django, no database, so the
API can validate a transcript and the worker can render it with the same code.
SRT and WebVTT cues are read by analysis/engine/captions.py; what both share is
analysis/engine/transcript_lines.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from analysis.engine.captions import parse_captions
from analysis.engine.transcript_lines import (
    FORMATS, MERGE_SPAN_SECONDS, TEXT_TIMESTAMP, TIMING_LINE, TranscriptError, Turn, clean_spaces, detect_format,
    format_timestamp, is_vtt_header, merge_turns, parse_timestamp, split_speaker, text_lines,
)

__all__ = [
    "FORMATS", "MERGE_SPAN_SECONDS",
    "TIMING_LINE", "TranscriptError", "Turn", "clean_spaces", "detect_format", "format_timestamp", "is_vtt_header", "merge_turns", "parse_timestamp", "split_speaker", "text_lines",
]


# --- Plain text -------------------------------------------------------------


@dataclass
class _Draft:
    """A turn being read: continuation lines keep adding to its parts."""

    speaker: str | None
    start: float | None
    parts: list[str]


def _parse_text(text: str) -> list[Turn]:
    drafts: list[_Draft] = []
    pending_start: float | None = None  # a timestamp alone on its line dates the next turn
    for raw in text_lines(text):
        line = raw.strip()
        if not line:
            continue

        start = None
        match = TEXT_TIMESTAMP.match(line)
        if match is not None:
            start = parse_timestamp(match.group(1))
            if start is not None:
                line = line[match.end() :]
        if start is not None and not line:
            pending_start = start
            continue

        speaker, line = split_speaker(line)
        if start is None:
            start, pending_start = pending_start, None

        last = drafts[-1] if drafts else None
        if speaker is None and start is None and last is not None and (last.speaker or last.start is not None):
            # A line without a name of its own continues the current turn:
            # "Alice:" on one line and her words on the next, or a wrapped turn.
            last.parts.append(line)
            continue
        drafts.append(_Draft(speaker, start, [line]))

    return merge_turns([Turn(d.speaker, d.start, clean_spaces(" ".join(d.parts))) for d in drafts])


# --- Public API -------------------------------------------------------------


def parse_transcript(text: str, fmt: str | None = None) -> list[Turn]:
    """Turns of a transcript in plain text, SRT or WebVTT (detected when fmt is None)."""
    fmt = fmt or detect_format(text)
    if fmt == "srt":
        return parse_captions(text, vtt=False)
    if fmt == "vtt":
        return parse_captions(text, vtt=True)
    if fmt == "text":
        return _parse_text(text)
    raise TranscriptError(f"Unknown transcript format {fmt!r}: expected one of {', '.join(FORMATS)}")


def _segment_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):  # bool is an int subclass; True is not a time
        raise ValueError
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_timestamp(value)
        if seconds is None:
            seconds = float(value.strip())  # "12.5": raises ValueError when not a number
    else:
        raise ValueError
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError
    return seconds


def parse_segments(segments: list[dict[str, Any]]) -> list[Turn]:
    """Turns of a diarized transcript: [{"speaker"?, "start"?, "end"?, "text"}, ...]."""
    if not isinstance(segments, list):
        raise TranscriptError("segments must be a list of objects")
    turns = []
    for index, segment in enumerate(segments):
        where = f"segments[{index}]"
        if not isinstance(segment, dict):
            raise TranscriptError(f"{where}: expected an object with a text field", index=index)

        text = segment.get("text")
        if not isinstance(text, str) or not text.strip():
            raise TranscriptError(f"{where}: text must be a non-empty string", index=index)

        speaker = segment.get("speaker")
        if speaker is not None and not isinstance(speaker, str):
            raise TranscriptError(f"{where}: speaker must be a string", index=index)

        times: dict[str, float | None] = {}
        for key in ("start", "end"):
            try:
                times[key] = _segment_time(segment.get(key))
            except ValueError:
                raise TranscriptError(
                    f"{where}: {key} must be seconds (a number) or a timestamp like 00:01:02.500",
                    index=index,
                ) from None
        start, end = times["start"], times["end"]
        if start is not None and end is not None and end < start:
            raise TranscriptError(f"{where}: end is before start", index=index)

        turns.append(Turn(clean_spaces(speaker or "") or None, start, clean_spaces(text)))
    return merge_turns(turns)


def render_turns(turns: list[Turn]) -> str:
    """One turn a line: "[hh:mm:ss] Speaker: text", the form the LLM reads."""
    lines = []
    for turn in turns:
        line = clean_spaces(turn.text)
        if turn.speaker:
            line = f"{turn.speaker}: {line}"
        if turn.start is not None:
            line = f"[{format_timestamp(turn.start)}] {line}"
        lines.append(line)
    return "\n".join(lines)


def _tidy_text(text: str) -> str:
    """Plain text kept as written: paragraphs intact, line endings and blank runs tidied."""
    lines = [line.rstrip() for line in text_lines(text)]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return tidy.strip("\n")


def normalize_transcript(
    text: str | None = None,
    fmt: str | None = None,
    segments: list[dict[str, Any]] | None = None,
) -> str:
    """The transcript as the LLM will read it, from text (any format) or segments."""
    if (text is None) == (segments is None):
        raise TranscriptError("Give either a transcript text or segments, not both")
    if segments is not None:
        return render_turns(parse_segments(segments))

    fmt = fmt or detect_format(text)
    turns = parse_transcript(text, fmt)
    if fmt == "text" and all(turn.speaker is None and turn.start is None for turn in turns):
        # Nothing recognizable (an article, notes, a speakerless dump):
        # rendering would only flatten its paragraphs.
        return _tidy_text(text)
    return render_turns(turns)
