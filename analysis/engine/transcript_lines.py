"""What every transcript format shares: the Turn, timestamps, speaker names, lines, format detection.

Pure Python, read by the plain-text parser (transcripts.py) and the caption parser (captions.py) alike."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

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
TEXT_TIMESTAMP = re.compile(r"^[\[(](\d{1,3}(?::\d{1,2}){1,2}(?:[.,]\d{1,3})?)[\])]\s*")


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
