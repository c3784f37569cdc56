"""The prompt-cache simulation's shared parts: the store of prefixes seen, the hashing of a prompt's
prefixes, and the reading of a configured amount. Which prefixes a provider caches is its protocol's
business (``Protocol.cache_usage``: OpenAI and Gemini cache automatically, Anthropic at breakpoints)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any, Iterable

from emulator.prompt import Prompt, estimate_tokens


class PrefixCache:
    """Remembers prompt-prefix hashes to emulate provider prompt caching ("auto")."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def lookup_and_store(self, keys: list[tuple[int, bytes]], ttl: float) -> int:
        """Return the largest token count whose key was seen within ttl; store all keys."""
        now = time.monotonic()
        best = 0
        with self._lock:
            for tokens, key in keys:
                seen_at = self._seen.get(key)
                if seen_at is not None and now - seen_at <= ttl:
                    best = max(best, tokens)
            for _tokens, key in keys:
                self._seen[key] = now
                self._seen.move_to_end(key)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
        return best


def prefix_keys(prompt: Prompt, boundaries: Iterable[int]) -> list[tuple[int, bytes]]:
    """Hash the prompt's prefixes ending at the given text offsets, in one pass.

    Offsets count the characters of the segments' text only (what the token estimate
    counts); each segment's role is hashed too, so the same words under another role
    are another prefix. One incremental hash with copy() at each boundary keeps this
    O(prompt length) even for long transcripts with hundreds of 128-token steps.
    """
    h = hashlib.sha256(f"{prompt.provider}\0{prompt.model}\0".encode())
    wanted = sorted(set(b for b in boundaries if b > 0))
    keys: list[tuple[int, bytes]] = []
    i = 0
    offset = 0
    for seg in prompt.segments:
        h.update(f"\x1e{seg.role}\x1f".encode())
        pos = 0
        end = offset + len(seg.text)
        while i < len(wanted) and wanted[i] <= end:
            cut = wanted[i] - offset
            h.update(seg.text[pos:cut].encode())
            pos = cut
            keys.append((estimate_tokens(wanted[i]), h.copy().digest()))
            i += 1
        h.update(seg.text[pos:].encode())
        offset = end
    return keys


def resolve_amount(value: Any, total: int) -> int:
    """An int is a token count, a float in [0, 1] a fraction of ``total``; clamped."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return min(total, int(total * value))
    if isinstance(value, (int, float)):
        return max(0, min(total, int(value)))
    return 0
