"""Checking an answer's citations against the transcript.

A cited item is any JSON object with a `citations` list; a citation is `{"turn": N, "quote"?: "..."}`
(a bare integer N is taken as `{"turn": N}`). A citation stands when turn N exists and its quote, if
any, occurs in that turn once both are normalised (case, Unicode NFKC, quotes and apostrophes, the
corpus's spaced "I 'm", whitespace, punctuation, markers such as {disfmarker}) and the quote is at
least MIN_QUOTE_CHARS long after normalising. Failing citations are removed and counted; duplicates
(chunk overlap makes them) are merged. An answer over several transcripts (analysis/engine/ask.py) cites
`{"transcript", "turn", "quote"}`, each checked the same way against that transcript's turns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from analysis.engine.turns import TURN_PREFIX

MIN_QUOTE_CHARS = 8

_MARKERS = re.compile(r"\{[^{}]*\}|\[(?:inaudible|laughter|noise|crosstalk)[^\]]*\]", re.IGNORECASE)
_LEADING_TIME = re.compile(r"^\[\d{1,3}:\d{2}:\d{2}\]\s*")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "ʼ": "'", "`": "'", "´": "'",
                         "“": '"', "”": '"', "„": '"', "‟": '"'})
# Anything that is neither a letter nor a digit separates words; apostrophes join ("I 'm" -> "im").
_APOSTROPHE = re.compile(r"\s*'\s*")
_NON_WORD = re.compile(r"[^\w]+|_+")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _MARKERS.sub(" ", text)
    text = _APOSTROPHE.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def quote_span(text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` stands in `text` as the check reads it (both normalised): (start, end) of the quoted words
    in `text` as written, for highlighting; None when it does not stand there (or is too short to check)."""
    wanted = normalise(quote)
    if len(wanted) < MIN_QUOTE_CHARS:
        return None
    # `text` normalised character by character, each output character keeping the index it came from.
    blanked = list(text)
    for marker in _MARKERS.finditer(text):
        blanked[marker.start():marker.end()] = " " * (marker.end() - marker.start())
    chars: list[tuple[str, int]] = [(out, index) for index, char in enumerate(blanked)
                                    for out in unicodedata.normalize("NFKC", char).translate(_QUOTES)]
    flat = "".join(char for char, _ in chars)
    kept = [True] * len(chars)
    for apostrophe in _APOSTROPHE.finditer(flat):
        kept[apostrophe.start():apostrophe.end()] = [False] * (apostrophe.end() - apostrophe.start())
    chars = [pair for pair, keep in zip(chars, kept) if keep]
    words: list[tuple[str, int]] = []  # the normalised text, one space between words
    for char, index in chars:
        for out in char.casefold():
            if _NON_WORD.fullmatch(out):
                if words and words[-1][0] != " ":
                    words.append((" ", index))
            else:
                words.append((out, index))
    normalised = "".join(char for char, _ in words)
    found = f" {normalised} ".find(f" {wanted} ")
    if found < 0:
        return None
    return words[found][1], words[found + len(wanted) - 1][1] + 1


@dataclass
class CitationReport:
    checked: int = 0
    rejected: int = 0
    reasons: list[str] | None = None

    def note(self, reason: str) -> None:
        self.rejected += 1
        if self.reasons is None:
            self.reasons = []
        if len(self.reasons) < 5:
            self.reasons.append(reason)


def _turn_body(line: str) -> str:
    line = TURN_PREFIX.sub("", line)
    return _LEADING_TIME.sub("", line)


def check_value(value, turns: Mapping[int, str], report: CitationReport | None = None):
    """A copy of `value` with every failing citation removed (and duplicates merged), and the report."""
    return _checked(value, lambda citation: (turns, ""), report)


def check_across(value, transcripts: Mapping[str, Mapping[int, str]], report: CitationReport | None = None):
    """check_value for an answer over several transcripts: a citation names its transcript as well,
    `{"transcript", "turn", "quote"?}`, and is checked exactly so against that transcript's turns; one naming
    no transcript given here is removed."""

    def turns_of(citation: dict) -> tuple[Mapping[int, str] | None, str]:
        name = citation.get("transcript")
        if not isinstance(name, str) or name not in transcripts:
            return None, f"transcript {name!r} is not one of the meetings read"
        return transcripts[name], f" of {name}"

    return _checked(value, turns_of, report, bare_turns=False)


def _checked(value, turns_of: Callable[[dict], tuple[Mapping[int, str] | None, str]],
             report: CitationReport | None, *, bare_turns: bool = True):
    """The walk of check_value: `turns_of(citation)` gives the turns a citation is checked against and how
    reasons name them (None and the reason: the citation is removed)."""
    report = report or CitationReport()
    normalised: dict[tuple[int, int], str] = {}

    def body(turns: Mapping[int, str], index: int) -> str:
        key = (id(turns), index)
        if key not in normalised:
            normalised[key] = normalise(_turn_body(turns[index]))
        return normalised[key]

    def citation_ok(citation) -> tuple[object | None, str]:
        if isinstance(citation, bool):
            return None, "not a citation"
        original = citation
        if isinstance(citation, int) and bare_turns:
            citation = {"turn": citation}
        if not isinstance(citation, dict):
            return None, "not a citation"
        turns, where = turns_of(citation)
        if turns is None:
            return None, where
        turn = citation.get("turn")
        if isinstance(turn, bool) or not isinstance(turn, int):
            return None, f"turn {turn!r}{where} is not a turn number"
        if turn not in turns:
            return None, f"turn {turn}{where} does not exist"
        quote = citation.get("quote")
        if quote is not None and quote != "":
            if not isinstance(quote, str):
                return None, f"the quote of turn {turn}{where} is not text"
            wanted = normalise(quote)
            if len(wanted) < MIN_QUOTE_CHARS:
                return None, f"the quote {quote[:40]!r} of turn {turn}{where} is too short to check"
            if f" {wanted} " not in f" {body(turns, turn)} ":
                return None, f"turn {turn}{where} does not say {quote[:60]!r}"
        return original, ""

    def walk(node):
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: walk(item) for key, item in node.items() if key != "citations"}
        if "citations" in node:
            kept, seen = [], set()
            raw = node["citations"]
            for citation in raw if isinstance(raw, list) else [raw]:
                report.checked += 1
                good, reason = citation_ok(citation)
                if good is None:
                    report.note(reason)
                    continue
                key = ((good.get("transcript"), good["turn"], normalise(good.get("quote") or ""))
                       if isinstance(good, dict) else (None, good, ""))
                if key in seen:
                    continue  # the same citation twice (overlapping chunks): merged, not rejected
                seen.add(key)
                kept.append(good)
            out["citations"] = kept
            # Keep the original key order.
            out = {key: (out[key]) for key in node if key in out}
        return out

    return walk(value), report
