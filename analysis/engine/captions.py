"""SubRip (SRT) and WebVTT captions into turns (analysis/engine/transcripts.py parses the other shapes).

Cue timings become the turns' start times; markup, SSA overrides and entities are stripped; WebVTT
voices (<v Name>) and "Name:" prefixes name the speaker.
"""

from __future__ import annotations

import html
import re

from analysis.engine.transcript_lines import (
    TIMING_LINE, TranscriptError, Turn, clean_spaces, is_vtt_header, merge_turns, parse_timestamp, split_speaker,
    text_lines,
)

# Markup inside cue text: <i>, </b>, <font color="red">, <c.yellow>, <lang en>,
# </v>, and WebVTT's karaoke timestamps <00:00:01.000>. A "<" followed by a
# space or a digit run that is not a timestamp ("3 < 5") is text.
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9.\-]*(?:\s[^<>]*)?>|<\d{1,3}(?::\d{2}){1,2}\.\d{3}>")
# SSA/ASS override blocks that SRT files inherit, such as {\an8}; the corpus
# markers like {vocalsound} have no backslash and stay.
_ASS_OVERRIDE = re.compile(r"\{\\[^}]*\}")
# Only entities closed by ";": html.unescape alone would also turn "&notice"
# into "¬ice" (HTML5 legacy entities need no semicolon).
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# <v Name>, <v.loud Name>, <v.first.loud Name>; the name may be missing.
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:[ \t]+([^>]*))?>")


def _clean_cue_text(text: str) -> str:
    text = _TAG.sub("", text)
    text = _ASS_OVERRIDE.sub("", text)
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return clean_spaces(text)  # also turns &nbsp; into a plain space


def _cue_turns(text: str, start: float, *, voices: bool) -> list[Turn]:
    """Turns of one cue: several when WebVTT voice spans change speaker mid-cue."""
    pieces: list[tuple[str | None, str]] = [(None, text)]
    if voices and _VOICE.search(text):
        # re.split with one group: [before, name, after, name, after, ...]
        parts = _VOICE.split(text)
        pieces = [(None, parts[0])]
        for name, after in zip(parts[1::2], parts[2::2]):
            pieces.append((clean_spaces(name or "") or None, after))
    turns = []
    for speaker, piece in pieces:
        piece = _clean_cue_text(piece)
        if speaker is None:
            # Captions without voice tags often write "Name: text" instead.
            speaker, piece = split_speaker(piece)
        if piece:
            turns.append(Turn(speaker, start, piece))
    return turns


def _parse_timing(line: str, lineno: int, label: str, example: str) -> float:
    match = TIMING_LINE.match(line)
    start = end = None
    if match is not None:
        start = parse_timestamp(match.group(1))
        end = parse_timestamp(match.group(2))
    if start is None or end is None:
        raise TranscriptError(
            f"Malformed {label} at line {lineno}: expected a timestamp line like {example}, got {_quote(line)}",
            line=lineno,
        )
    return start


def _quote(line: str) -> str:
    line = line.strip()
    return repr(line if len(line) <= 60 else line[:57] + "...")


def parse_captions(text: str, *, vtt: bool) -> list[Turn]:
    label = "WebVTT" if vtt else "SRT"
    example = "00:00:01.000 --> 00:00:02.000" if vtt else "00:00:01,000 --> 00:00:02,000"
    lines = text_lines(text)
    n = len(lines)
    i = 0

    if vtt:
        if not is_vtt_header(lines[0]):
            raise TranscriptError(f"Malformed {label} at line 1: expected the WEBVTT header", line=1)
        # Header metadata ("Kind: captions") runs to the first blank line.
        i = 1
        while i < n and lines[i].strip() and "-->" not in lines[i]:
            i += 1

    turns: list[Turn] = []
    while True:
        while i < n and not lines[i].strip():
            i += 1
        if i >= n:
            break
        line = lines[i].strip()

        if vtt and line.split(maxsplit=1)[0] in ("NOTE", "STYLE", "REGION"):
            # Comments and styling: nothing for the transcript.
            while i < n and lines[i].strip():
                i += 1
            continue

        if "-->" not in line:
            # A cue number (SRT) or cue identifier (WebVTT) before the timing line.
            if not vtt and not line.isdigit():
                raise TranscriptError(
                    f"Malformed {label} at line {i + 1}: expected a cue number or a timestamp line "
                    f"like {example}, got {_quote(line)}",
                    line=i + 1,
                )
            i += 1
            if i >= n or not lines[i].strip():
                # Name the cue number's line: the line after it is blank or missing.
                raise TranscriptError(
                    f"Malformed {label} at line {i}: expected a timestamp line like {example} "
                    f"after {_quote(line)}",
                    line=i,
                )
        start = _parse_timing(lines[i], i + 1, label, example)
        i += 1

        cue: list[str] = []
        while i < n and lines[i].strip():
            # A missing blank line between cues: the next timing line (and,
            # in SRT, the cue number right before it) starts a new cue.
            if "-->" in lines[i]:
                break
            if not vtt and lines[i].strip().isdigit() and i + 1 < n and "-->" in lines[i + 1]:
                break
            cue.append(lines[i].strip())
            i += 1
        turns.extend(_cue_turns(" ".join(cue), start, voices=vtt))
    return merge_turns(turns)
