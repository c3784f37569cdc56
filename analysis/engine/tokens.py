"""Counting tokens before a request is sent, offline.

The counts decide whether a transcript fits a model's context or must be
chunked, so an error in the safe direction (counting a little too many) only
costs an extra chunk, while counting too few makes the provider reject the
request. Every approximation here therefore errs upwards.

- OpenAI: the real encodings (o200k_base, cl100k_base) through bpe-openai, a
  Rust port of tiktoken that ships its vocabularies and needs no network.
- Gemini and Anthropic publish no offline tokenizer (their count endpoints
  are network calls). Google documents about 4 characters a token for
  Gemini; Anthropic about 3.5 English characters a token for Claude, and
  Claude's tokenizers produce more tokens than o200k for the same text (up
  to about a third more for the newest models). Character ratios alone fail
  on languages where one character is one or more tokens (Chinese,
  Japanese), so the estimate is the larger of a character ratio and the
  o200k count times a margin:

      gemini:    max(ceil(chars / 4.0), ceil(o200k * 1.15))
      anthropic: max(ceil(chars / 3.5), ceil(o200k * 1.35))

  Both are never below ceil(chars / 4), which is what simple OpenAI-compatible
  servers and proxies often assume. On the QMSum meetings in
  shared/transcripts, o200k gives 3.7 to 4.9 characters a token, so the
  o200k term is the one that usually decides.
- OpenAI-compatible servers running other models (Llama, Mistral, Qwen, ...):
  max(o200k, ceil(chars / 4)).

Encodings load once per process (functools.cache); a process that forks per job
(an RQ work horse) calls preload_encodings() before forking. Timings: README.md, "Benchmarks".
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

O200K = "o200k_base"
CL100K = "cl100k_base"

# (characters a token, multiplier on the o200k count); see the module docstring.
APPROXIMATIONS: dict[str, tuple[float, float]] = {
    "gemini": (4.0, 1.15),
    "anthropic": (3.5, 1.35),
}
# A provider this module does not know gets the most conservative estimate.
DEFAULT_APPROXIMATION = APPROXIMATIONS["anthropic"]

# Framing around the text the caller counts, which the provider bills too:
# role markers and separators for each message (OpenAI's chat format uses 3
# or 4; the other providers do not document theirs, hence the margin) and
# the priming of the reply. MESSAGE_OVERHEAD_TOKENS is one whole request of
# up to three messages (system, transcript, instruction): a small fixed
# margin to subtract from a prompt budget.
TOKENS_PER_MESSAGE = 8
REPLY_PRIMING_TOKENS = 8
MESSAGE_OVERHEAD_TOKENS = REPLY_PRIMING_TOKENS + 3 * TOKENS_PER_MESSAGE

# bpe-openai refuses inputs of 1,000,000 characters or more and outputs over
# 200,000 tokens in one call. A piece of 40,000 characters stays under both
# even at 4 tokens a character (the UTF-8 worst case), so long texts are
# counted in pieces cut at line ends (see bpe_count).
_PIECE_CHARS = 40_000

_O_SERIES = re.compile(r"^o\d")  # o1, o3-mini, o4-mini


def _openai_encoding_name(model: str) -> str | None:
    """The encoding of an OpenAI model, or None for a model we don't know."""
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" from a router
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "gpt-oss", "codex-")):
        return O200K
    if _O_SERIES.match(name):
        return O200K
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-")):
        return CL100K
    return None


@functools.cache
def _tokenizer(name: str) -> Any:
    """bpe-openai's Rust tokenizer for an encoding, loaded on first use.

    bpe-openai has no public call that only counts: its Encoding builds the token list and keeps
    its own copy of the vocabulary. Its Rust tokenizer (what Encoding.encode_ordinary calls) has
    count(), the same number without either; it is reached here, once, not at import.
    """
    from bpe_openai import _bindings, registry

    _release_python_vocabularies(registry)
    return _bindings.tokenizer_for_encoding(name)


def _release_python_vocabularies(registry: Any) -> None:
    """Drop the Python copies of the vocabularies that importing bpe_openai decodes.

    Counting does not need them (the Rust tokenizer has its own compact copy), and in a forking
    worker every MiB of the parent costs page-table work on each fork; get_encoding() reloads them.
    """
    for loader in (getattr(registry, "_load_mergeable_ranks", None),
                   *getattr(registry, "ENCODING_CONSTRUCTORS", {}).values()):
        clear = getattr(loader, "cache_clear", None)
        if clear is not None:
            clear()


def _count_piece(tokenizer: Any, text: str) -> int:
    try:
        return tokenizer.count(text)
    except UnicodeEncodeError:
        # Lone surrogates (from a badly decoded upload) cannot cross into Rust; count them
        # as the replacement character, as bpe-openai's Encoding does.
        return tokenizer.count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


def preload_encodings() -> None:
    """Load o200k now rather than on the first count.

    Every model in the catalogue uses o200k, and the Gemini and Anthropic estimates
    are o200k counts. cl100k only serves gpt-4 and gpt-3.5 models sent by name: it
    loads on their first count instead of living in every worker.
    """
    _tokenizer(O200K)


def bpe_count(text: str, encoding: str = O200K) -> int:
    """The exact token count of text in a tiktoken encoding."""
    tokenizer = _tokenizer(encoding)
    if len(text) <= _PIECE_CHARS:
        # Like encode_ordinary: "<|endoftext|>" in a transcript is text, not a special token.
        return _count_piece(tokenizer, text)

    total = 0
    start = 0
    while start < len(text):
        end = start + _PIECE_CHARS
        if end < len(text):
            # Cut after a newline: the tokenizer never merges across one, so
            # the pieces add up to the whole. A text without newlines is cut
            # before a space (a word keeps its leading space), which can only
            # add a token at the cut, never lose one.
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
            else:
                cut = text.rfind(" ", start, end)
                if cut > start:
                    end = cut
        total += _count_piece(tokenizer, text[start:end])
        start = end
    return total


def token_upper_bound(text: str) -> int:
    """A bound that no count_tokens() result exceeds, for any provider, without encoding.

    A BPE token covers at least one UTF-8 byte, so an exact count is at most the byte
    count, and the approximations are at most that times their largest multiplier
    (their characters-a-token term is below the byte count). Lets a size check skip
    the encoding when a text is clearly under a limit.
    """
    largest = max(multiplier for _, multiplier in APPROXIMATIONS.values())
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) * largest)


def count_tokens(text: str, *, provider: str, model: str) -> int:
    """Tokens of text for this provider and model: exact for OpenAI, else an upper estimate."""
    if not text:
        return 0
    provider = provider.lower()
    if provider == "openai":
        encoding = _openai_encoding_name(model)
        if encoding is not None:
            return bpe_count(text, encoding)
        # An OpenAI-compatible server running some other model.
        return max(bpe_count(text, O200K), math.ceil(len(text) / 4))

    chars_per_token, multiplier = APPROXIMATIONS.get(provider, DEFAULT_APPROXIMATION)
    return max(
        math.ceil(len(text) / chars_per_token),
        math.ceil(bpe_count(text, O200K) * multiplier),
    )


def context_tokens(text: str, *, provider: str, model: str) -> int:
    """Tokens of text when checking a request against a context limit: count_tokens, never below chars/4.

    The runner plans chunks and checks every request with this, not with count_tokens. For Gemini and
    Anthropic the two agree (their estimates are already >= chars/4). For OpenAI models the real encoding
    gives 4.2 to 4.9 characters a token on the English meetings in shared/transcripts, so the exact count
    is below chars/4; but proxies, OpenAI-compatible servers and test harnesses in front of a model often
    count chars/4 and reject on that. A request planned with the larger of the two fits however it is
    counted, at the price of OpenAI chunks up to ~20% smaller than strictly needed.
    """
    if not text:
        return 0
    return max(count_tokens(text, provider=provider, model=model), math.ceil(len(text) / 4))
