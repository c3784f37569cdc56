"""Turns of a normalized transcript: their one index, the turn prefixes citations point at, and
speaker statistics computed without any model call.

Turn N is line N (1-based) of the stored normalized transcript (analysis/engine/transcripts.py renders one
turn a line: "[hh:mm:ss] Speaker: text"). Blank lines keep their number and are never shown. Pure
Python: no Django, no provider.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from analysis.engine.transcript_lines import split_speaker

# "[T12] " before every turn the model reads, also on every piece of a turn that chunking cuts.
TURN_PREFIX = re.compile(r"^\[T(\d+)\] ")
_LEADING_TIME = re.compile(r"^\[(\d{1,3}):(\d{2}):(\d{2})\]\s*")
# Corpus markers such as {vocalsound}, {disfmarker}: not words.
_MARKER = re.compile(r"^\{[^{}]*\}$")


@dataclass(frozen=True)
class ParsedTurn:
    index: int
    speaker: str | None
    start: float | None
    end: float | None
    text: str

    def stored(self) -> dict:
        """The shape kept with the job (Job.turns): no text, the transcript has it."""
        data = asdict(self)
        del data["text"]
        return data


def prefix(index: int) -> str:
    return f"[T{index}] "


def parse_turns(transcript: str) -> list[ParsedTurn]:
    """Every non-blank line of the normalized transcript, with its line number as index."""
    turns: list[ParsedTurn] = []
    for number, line in enumerate(transcript.split("\n"), 1):
        if not line.strip():
            continue
        start = None
        match = _LEADING_TIME.match(line)
        if match:
            start = float(int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3)))
            line = line[match.end():]
        speaker, text = split_speaker(line)
        turns.append(ParsedTurn(index=number, speaker=speaker, start=start, end=None, text=text.strip()))
    return turns


def stored_turns(transcript: str) -> list[dict]:
    return [turn.stored() for turn in parse_turns(transcript)]


def indexed_transcript(transcript: str) -> str:
    """The transcript with "[T<n>] " before every turn (blank lines dropped: they cite nothing)."""
    return "\n".join(prefix(number) + line for number, line in enumerate(transcript.split("\n"), 1)
                     if line.strip())


def turn_texts(transcript: str) -> dict[int, str]:
    """Turn index -> the turn as written (speaker and time included), for citation checks."""
    return {number: line for number, line in enumerate(transcript.split("\n"), 1) if line.strip()}


def word_count(text: str) -> int:
    return sum(1 for token in text.split() if not _MARKER.match(token) and any(c.isalnum() for c in token))


def speaker_stats(transcript: str) -> list[dict]:
    """Per speaker, in order of first appearance: turns, words, longest turn (words), and talk time in
    seconds where the transcript has times (a turn lasts until the next turn starts; the last timed
    turn, with nothing after it, adds nothing). Turns without a speaker count under null."""
    turns = parse_turns(transcript)
    stats: dict[str | None, dict] = {}
    timed = any(turn.start is not None for turn in turns)
    for position, turn in enumerate(turns):
        entry = stats.setdefault(turn.speaker, {"speaker": turn.speaker, "turns": 0, "words": 0,
                                                "longest_turn_words": 0, "longest_turn": None,
                                                "talk_time_s": 0.0 if timed else None})
        words = word_count(turn.text)
        entry["turns"] += 1
        entry["words"] += words
        if words > entry["longest_turn_words"] or entry["longest_turn"] is None:
            entry["longest_turn_words"], entry["longest_turn"] = words, turn.index
        if timed and turn.start is not None:
            end = turn.end
            if end is None:
                end = next((t.start for t in turns[position + 1:] if t.start is not None), None)
            if end is not None and end >= turn.start:
                entry["talk_time_s"] = round(entry["talk_time_s"] + (end - turn.start), 3)
    return list(stats.values())


def time_range(transcript: str) -> tuple[float, float] | None:
    """(first, last) turn start in seconds, or None without times."""
    times = [turn.start for turn in parse_turns(transcript) if turn.start is not None]
    return (min(times), max(times)) if times else None
