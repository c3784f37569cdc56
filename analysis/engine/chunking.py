"""Splitting a transcript that does not fit one request.

A transcript too long for the model is cut into chunks of whole turns (the
rendered transcript has one turn a line), each chunk repeating the last turns
of the previous one so that an exchange cut in two is still readable. The
partial answers are grouped for the reduce step with the same packing
(planning.group_partials).

The count function is the provider's (tokens.count_tokens bound to a model), passed in so
that this module stays free of any provider knowledge.

Lines are counted one by one and the counts summed, plus one token for each
line break, instead of recounting a growing chunk after every line (which
would be quadratic). For the tokenizers in use the sum is an upper bound in
practice, since they do not merge tokens across a line break; a small margin
covers the exceptions, and every finished chunk is checked once with count().
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# One token for each line break (or space) that joins two counted parts.
_JOIN_TOKENS = 1

# The turn number a cited task's transcript carries on every line ("[T12] "; analysis/engine/turns.py), or its
# meeting and turn in a question across meetings ("[M3 T12] "; analysis/engine/ask.py).
_TURN_PREFIX = re.compile(r"^\[(?:M\d+ )?T\d+\] ")

# Sentence ends: ". ", "? ", "! ", also after a closing quote or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def _budget(max_tokens: int) -> int:
    # The margin for summed counts: 0.5%, at least one token.
    return max_tokens - max(1, max_tokens // 200)


def _halves(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """A text with no space to split on, cut in halves until each fits."""
    if count(text) <= budget:
        return [text]
    middle = len(text) // 2
    if middle == 0:
        raise ValueError(f"a budget of {budget} tokens cannot hold a single character")
    return _halves(text[:middle], budget, count) + _halves(text[middle:], budget, count)


def _joined_within(parts: list[str], joiner: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """parts joined into one text, checked once with count(); halved if that finds it over limit.

    A single part is returned as is: callers only pass parts that fit alone.
    """
    joined = joiner.join(parts)
    if len(parts) == 1 or count(joined) <= limit:
        return [joined]
    middle = len(parts) // 2
    return _joined_within(parts[:middle], joiner, limit, count) + _joined_within(
        parts[middle:], joiner, limit, count
    )


def _split_line(line: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Pieces of one over-long line (turn), each with count(piece) <= budget.

    Split on sentences, then on words; a single "word" over the budget (a
    URL, base64, a language written without spaces) is cut in halves.
    """
    parts = [part for part in _SENTENCE_END.split(line) if part]
    if len(parts) <= 1:
        parts = line.split()
    if len(parts) <= 1:
        return _halves(line, budget, count)

    # Splitting dropped the whitespace between parts; one space rejoins them.
    items: list[tuple[str, int]] = []
    for part in parts:
        cost = count(part) + _JOIN_TOKENS
        if cost <= budget:
            items.append((part, cost))
        else:
            # A sentence over the budget on its own: split on words, each piece a group of its own (costed
            # as the whole budget, nothing joins it).
            items += [(piece, budget) for piece in _split_line(part, budget - _JOIN_TOKENS, count)]
    return [piece for group in pack(items, budget) for piece in _joined_within(group, " ", budget, count)]


def pack(items: list[tuple[T, int]], limit: int) -> list[list[T]]:
    """Consecutive (item, cost) pairs in order, in as few groups as keep each group's cost within `limit`;
    an item that costs more than `limit` is a group of its own."""
    groups: list[list[T]] = []
    total = 0
    for item, cost in items:
        if groups and total + cost <= limit:
            groups[-1].append(item)
            total += cost
        else:
            groups.append([item])
            total = cost
    return groups


def split_transcript(
    text: str,
    *,
    max_tokens: int,
    count: Callable[[str], int],
    overlap_tokens: int = 200,
) -> list[str]:
    """Chunks of text, each with count(chunk) <= max_tokens, cut between lines.

    Every chunk after the first starts with the last lines of the previous
    one, up to overlap_tokens, and never with so many that the chunk would go
    over max_tokens. A single line over the limit is split on sentences, then
    on words. Blank lines are dropped from split text (they carry nothing).
    """
    if max_tokens <= 0:
        raise ValueError("max_tokens must be positive")
    if count(text) <= max_tokens:
        return [text]

    budget = _budget(max_tokens)
    units: list[str] = []
    costs: list[int] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        cost = count(line) + _JOIN_TOKENS
        if cost <= budget:
            units.append(line)
            costs.append(cost)
            continue
        # A turn cut in pieces keeps its turn number (analysis/engine/turns.py) on every piece, so a citation
        # of any piece points at the right turn.
        turn = _TURN_PREFIX.match(line)
        label = turn.group(0) if turn else ""
        for piece in _split_line(line, budget - _JOIN_TOKENS - (count(label) if label else 0), count):
            if label and not piece.startswith(label):
                piece = label + piece
            units.append(piece)
            costs.append(count(piece) + _JOIN_TOKENS)

    # A chunk is (unit indexes, how many of them are overlap from the previous chunk).
    chunks: list[tuple[list[int], int]] = []
    current: list[int] = []
    overlap = 0
    total = 0
    for index, cost in enumerate(costs):
        if current and total + cost > budget:
            chunks.append((current, overlap))
            # Carry the tail of the finished chunk over as context, but only
            # as much as leaves room for the unit that did not fit.
            room = min(overlap_tokens, budget - cost)
            tail: list[int] = []
            tail_total = 0
            for previous in reversed(current):
                if tail_total + costs[previous] > room:
                    break
                tail.insert(0, previous)
                tail_total += costs[previous]
            current, overlap, total = tail, len(tail), tail_total
        current.append(index)
        total += cost
    chunks.append((current, overlap))

    result: list[str] = []
    for indexes, overlap in chunks:
        chunk = "\n".join(units[i] for i in indexes)
        if count(chunk) <= max_tokens:
            result.append(chunk)
            continue
        # The summed counts fell short (a tokenizer merged across lines):
        # give up the overlap, then halve what is left until it fits.
        fresh = [units[i] for i in indexes[overlap:]]
        result.extend(_joined_within(fresh, "\n", max_tokens, count))
    return result
