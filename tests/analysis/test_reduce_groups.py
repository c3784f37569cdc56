"""Grouping the partial answers of a chunked task for its reduce requests (planning.group_partials, which the
Runner uses), and the packing it shares with the chunker (chunking.pack).

Pure Python: no database.
"""

from __future__ import annotations

import pytest

from analysis.engine.chunking import pack
from analysis.engine.planning import PARTIAL_WRAPPER_TOKENS, group_partials


def words(text: str) -> int:
    """A tokenizer stand-in that makes the arithmetic of a test easy to follow."""
    return len(text.split())


def request_tokens(group: list[str]) -> int:
    """What a group puts into one reduce request: each answer plus its wrapper."""
    return sum(words(text) + PARTIAL_WRAPPER_TOKENS for text in group)


def test_partials_are_grouped_in_order_within_the_limit() -> None:
    partials = [f"Answer {n}: " + "point " * (5 + n % 7) for n in range(20)]

    groups = group_partials(partials, max_tokens=100, count=words)

    assert 1 < len(groups) < len(partials)
    assert all(request_tokens(group) <= 100 for group in groups)
    assert [text for group in groups for text in group] == partials


def test_groups_are_filled_greedily() -> None:
    # 10 words + 20 of wrapper each: three fit 100 tokens, a fourth does not.
    partials = ["w " * 10] * 7

    groups = group_partials(partials, max_tokens=100, count=words)

    assert [len(group) for group in groups] == [3, 3, 1]


def test_everything_that_fits_is_one_group() -> None:
    assert group_partials(["a b", "c d"], max_tokens=100, count=words) == [["a b", "c d"]]
    assert group_partials([], max_tokens=100, count=words) == []


def test_a_partial_over_the_limit_is_cut_between_lines() -> None:
    long = "\n".join(f"Line {n} of a long partial answer ." for n in range(40))  # 320 words

    groups = group_partials(["short one", long, "short two"], max_tokens=100, count=words)

    assert all(request_tokens(group) <= 100 for group in groups)
    assert groups[0][0] == "short one" and groups[-1][-1] == "short two"
    pieces = [text for group in groups for text in group]
    assert len(pieces) > 3
    assert " ".join(" ".join(pieces).split()) == " ".join(f"short one {long} short two".split())


def test_no_room_for_an_answer_is_refused() -> None:
    with pytest.raises(ValueError):
        group_partials(["text"], max_tokens=PARTIAL_WRAPPER_TOKENS, count=words)


def test_pack_keeps_order_and_gives_an_oversized_item_a_group_of_its_own() -> None:
    items = [("a", 3), ("b", 3), ("c", 9), ("d", 2), ("e", 2), ("f", 5)]

    assert pack(items, 6) == [["a", "b"], ["c"], ["d", "e"], ["f"]]
    assert pack([], 6) == []
