"""Transcript parsing: plain text, SubRip (SRT), WebVTT and JSON segments.

Whatever the client sends, the LLM sees one normalized form, one turn a line:

    [00:01:02] Project Manager: So welcome .

The timestamp appears only where the source had one, the speaker only where
it was known. Everything here is pure Python: no Django, no database, so the
API can validate a transcript and the worker can render it with the same code.
SRT and WebVTT cues are read by analysis/captions.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

FORMATS = ("text", "srt", "vtt")

# Consecutive pieces of the same speaker become one turn, but a merged turn is
# closed once the next piece starts this long after it: a long monologue (or a
# video without speakers) then keeps a timestamp every couple of minutes
# instead of one timestamp for half an hour of text.
MERGE_SPAN_SECONDS = 120.0

# A "Name:" prefix is taken for a speaker only when it looks like a name.
# "Right Hon. Justin Trudeau" is 4 words; particles such as "van der" push
# some real names to 5. The parenthetical that parliamentary records add
# ("Hon. Bill Blair (Minister of Public Safety and Emergency Preparedness)")
# is allowed on top, up to MAX_SPEAKER_CHARS in all.
MAX_NAME_WORDS = 5
MAX_NAME_CHARS = 40
MAX_SPEAKER_CHARS = 80

# Lowercase words that may appear inside a capitalized name.
NAME_PARTICLES = frozenset(
    {"al", "bin", "da", "de", "del", "della", "der", "di", "du", "la", "le", "of", "the", "van", "von", "y"}
)


@dataclass(frozen=True)
class Turn:
    speaker: str | None
    start: float | None  # seconds from the beginning of the recording
    text: str


class TranscriptError(ValueError):
    """A transcript that cannot be parsed; the message is meant for the client."""

    def __init__(self, message: str, *, line: int | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line  # 1-based line of a caption file
        self.index = index  # position in a segments list


# --- Timestamps -------------------------------------------------------------

# hh:mm:ss,mmm (SRT), hh:mm:ss.mmm and mm:ss.mmm (WebVTT). Both separators are
# accepted in both formats, and the fraction may be missing, because
# hand-edited and tool-generated files are sloppy about both. "1000" is
# accepted as a fraction: some generators (among them the one that produced
# the sample captions in shared/transcripts) round 999.6 ms up to "1000"
# instead of carrying into the seconds, and the meaning is unambiguous.
_TIMESTAMP = re.compile(r"(?:(\d{1,3}):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}|1000))?")

# The cue timing line: "start --> end", then optional WebVTT cue settings
# ("align:start position:10%") or SRT coordinates ("X1:100 X2:200 ...").
TIMING_LINE = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:\s+.*)?$")

# A timestamp at the start of a plain-text line: [00:01:02] or (1:02.5).
_TEXT_TIMESTAMP = re.compile(r"^[\[(](\d{1,3}(?::\d{1,2}){1,2}(?:[.,]\d{1,3})?)[\])]\s*")


def parse_timestamp(value: str) -> float | None:
    """Seconds for "hh:mm:ss.mmm" / "mm:ss.mmm", or None when it is not one."""
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    if fraction == "1000":
        return total + 1.0
    if fraction:
        total += int(fraction) / 10 ** len(fraction)
    return float(total)


def format_timestamp(seconds: float) -> str:
    """Seconds as hh:mm:ss, rounded down (the LLM needs no milliseconds)."""
    whole = int(math.floor(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# --- Speakers ---------------------------------------------------------------

# "Name: text": the first colon followed by whitespace or the end of the line,
# so "10:30" and "https://" never split a line.
_SPEAKER_PREFIX = re.compile(r"^([^:]{1,%d}):(?:\s+|$)" % MAX_SPEAKER_CHARS)
# The name itself, then an optional parenthetical, nested at most one level:
# "The Chair (Hon. Anthony Rota (Nipissing, Lib.))".
_NAME_AND_NOTE = re.compile(r"^([^()]+?)\s*(\((?:[^()]|\([^()]*\))*\))?$")
_NAME_WORD = re.compile(r"^[\w][\w'’.\-]*$")


def _looks_like_name(prefix: str) -> bool:
    """Whether "prefix" in "prefix: rest" is a speaker rather than a sentence.

    "Project Manager", "Grad F", "SPEAKER_01", "Hon. Bill Blair (Minister of
    Finance)" are names; "So the plan is", "Yes, and then" and "Why?" are not.
    """
    match = _NAME_AND_NOTE.match(prefix.strip())
    if match is None:
        return False
    name = match.group(1)
    words = name.split()
    if not words or len(words) > MAX_NAME_WORDS or len(name) > MAX_NAME_CHARS:
        return False
    for word in words:
        if not _NAME_WORD.match(word):
            return False  # sentence punctuation: , ; ? ! " and the like
        if "." in word and len(word) > 5:
            return False  # "Hon.", "Dr.", "J.R." are abbreviations; "there." ends a sentence
        if not (word[0].isupper() or word[0].isdigit() or word in NAME_PARTICLES):
            return False
    return True


def split_speaker(line: str) -> tuple[str | None, str]:
    """("Name", "text") for "Name: text"; (None, line) when there is no name."""
    match = _SPEAKER_PREFIX.match(line)
    if match is None or not _looks_like_name(match.group(1)):
        return None, line
    return clean_spaces(match.group(1)), line[match.end() :]


def clean_spaces(value: str) -> str:
    # Turns are rendered one a line, so no newline may survive in a turn.
    return " ".join(value.split())


# --- Turns ------------------------------------------------------------------


def merge_turns(turns: list[Turn]) -> list[Turn]:
    """Merge consecutive turns of the same speaker, keeping the first start.

    Speakerless pieces are merged only when both are timed (caption cues
    without voices: a cue is a line of subtitle, not a turn); untimed
    speakerless lines of a plain text keep the lines their author chose.
    """
    merged: list[Turn] = []
    for turn in turns:
        if not turn.text:
            continue
        previous = merged[-1] if merged else None
        if previous is not None and previous.speaker == turn.speaker:
            if previous.start is not None and turn.start is not None:
                mergeable = turn.start - previous.start < MERGE_SPAN_SECONDS
            else:
                mergeable = turn.speaker is not None
            if mergeable:
                merged[-1] = replace(previous, text=f"{previous.text} {turn.text}")
                continue
        merged.append(turn)
    return merged


# --- Format detection -------------------------------------------------------


def text_lines(text: str) -> list[str]:
    # Not str.splitlines(): it also splits on form feeds and \u2028, which would
    # make our line numbers disagree with the client's editor.
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def is_vtt_header(line: str) -> bool:
    line = line.removeprefix("\ufeff")
    return line == "WEBVTT" or line.startswith(("WEBVTT ", "WEBVTT\t"))


def _is_timing_line(line: str) -> bool:
    match = TIMING_LINE.match(line)
    return match is not None and _TIMESTAMP.fullmatch(match.group(1)) is not None


def detect_format(text: str) -> str:
    """The transcript's format, "vtt", "srt" or "text", from its first lines."""
    lines = text_lines(text.lstrip("\ufeff \t\r\n"))
    if is_vtt_header(lines[0]):
        return "vtt"
    first = lines[0].strip()
    second = lines[1].strip() if len(lines) > 1 else ""
    if first.isdigit() and _is_timing_line(second):
        return "srt"
    # Some SRT writers leave out the cue numbers.
    if _is_timing_line(first):
        return "srt"
    return "text"


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
        match = _TEXT_TIMESTAMP.match(line)
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
    from analysis.captions import parse_captions  # here: captions builds on this module's turns

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
