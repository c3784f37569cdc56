"""The prompt-cache simulation's shared parts: prefix hashing, the store of prefixes seen, and the
reading of a configured amount (each protocol's cache policy is tested with its protocol)."""

from __future__ import annotations

from emulator.caching import PrefixCache, prefix_keys, resolve_amount
from emulator.prompt import Prompt, Segment


def test_prefix_keys_are_cut_at_the_offsets_and_depend_on_role_model_and_text() -> None:
    first = Prompt("openai", "gpt-4o", [Segment("system", "a" * 8), Segment("user", "b" * 8)])
    keys = prefix_keys(first, [12, 4, 0, 4, 100])
    assert [tokens for tokens, _ in keys] == [1, 3]  # sorted, deduplicated; 0 and past-the-end left out
    same = prefix_keys(Prompt("openai", "gpt-4o", [Segment("system", "a" * 8), Segment("user", "b" * 4 + "c")]),
                       [4, 12])
    assert same == keys  # the first 12 characters are the same prefix
    as_user = prefix_keys(Prompt("openai", "gpt-4o", [Segment("user", "a" * 8), Segment("user", "b" * 8)]), [4])
    other_model = prefix_keys(Prompt("openai", "gpt-4.1", first.segments), [4])
    assert as_user[0][1] != keys[0][1] and other_model[0][1] != keys[0][1]


def test_the_store_reads_the_longest_prefix_seen_within_the_ttl() -> None:
    cache = PrefixCache()
    assert cache.lookup_and_store([(1024, b"a"), (1152, b"b")], ttl=300) == 0
    assert cache.lookup_and_store([(1024, b"a"), (1152, b"b"), (1280, b"c")], ttl=300) == 1152
    assert cache.lookup_and_store([(1024, b"a")], ttl=-1) == 0  # expired (a ttl no age is within)
    cache.clear()
    assert cache.lookup_and_store([(1024, b"a")], ttl=300) == 0


def test_the_store_forgets_the_oldest_past_its_capacity() -> None:
    cache = PrefixCache(capacity=2)
    cache.lookup_and_store([(1, b"a"), (2, b"b")], ttl=300)
    cache.lookup_and_store([(3, b"c")], ttl=300)
    assert cache.lookup_and_store([(1, b"a")], ttl=300) == 0
    assert cache.lookup_and_store([(3, b"c")], ttl=300) == 3


def test_an_amount_is_tokens_or_a_fraction_clamped_to_the_prompt() -> None:
    assert [resolve_amount(v, 100) for v in (30, 0.25, 1.0, 500, -3, 1.5, None, True, "x")] == \
        [30, 25, 100, 100, 0, 1, 0, 0, 0]
