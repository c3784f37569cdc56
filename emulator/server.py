"""A loopback HTTP server that speaks the OpenAI, Anthropic and Gemini wire protocols.

Why it exists: the provider SDKs installed here sit on ``httpx2``, which respx and
pytest-httpx cannot intercept, and the workers that call providers run in other
processes. So tests and benchmarks need a *real* HTTP server that the official SDKs
accept byte for byte, that answers deterministically (so a test can tell which prompt
arrived), and that can be told over HTTP to misbehave in the ways real providers do
(429s with Retry-After, 529 overload, quota errors, malformed bodies, dropped
connections, truncated or blocked output, context overflow, cache/reasoning usage).

Standard library only, so it starts anywhere the project's Python does.

Python API::

    emu = Emulator(port=0, latency=0.0).start()
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x")
    emu.add_faults([{"kind": "status", "status": 429, "retry_after": 1, "provider": "openai"}])
    emu.requests(); emu.stats(); emu.configure(latency=0.2); emu.reset(); emu.stop()

Over HTTP (``EmulatorClient(url)`` wraps these): ``GET /_emulator/requests``,
``POST /_emulator/reset``, ``GET|POST /_emulator/config``, ``GET|POST /_emulator/faults``,
``GET /_emulator/stats``, ``GET /_emulator/health``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

from emulator import batches as emulator_batches
from emulator import structured as emulator_structured

__all__ = [
    "DEFAULT_CONFIG",
    "Emulator",
    "EmulatorClient",
    "EmulatorServer",
    "FAULT_KINDS",
    "PROVIDERS",
    "faults",
    "estimate_tokens",
]

PROVIDERS = ("openai", "anthropic", "gemini")
FAULT_KINDS = ("status", "malformed", "drop", "delay", "truncated", "blocked") + emulator_structured.FAULT_KINDS

# Realistic default: no latency, no context cap, no caching, no reasoning. Every key
# here can be changed with configure() / POST /_emulator/config.
DEFAULT_CONFIG: dict[str, Any] = {
    # Seconds slept in the handler thread before every provider response.
    "latency": 0.0,
    # Prompt-token cap for every model (None or 0: unlimited) and per-model caps.
    "max_context": None,
    "max_context_per_model": {},
    # Cache reads reported in usage: an int (tokens, clamped to the prompt), a float
    # in [0, 1] (fraction of the prompt), or "auto" (emulate prefix caching: a
    # prompt prefix seen before within cache_ttl seconds is reported as cached).
    "cached_tokens": 0,
    # Anthropic cache_creation_input_tokens (int or fraction, like cached_tokens).
    "cache_write_tokens": 0,
    "cache_ttl": 300.0,
    # Reasoning/thinking tokens reported on every answer.
    "reasoning_tokens": 0,
    # Pad every answer to this many output tokens (None: the natural length), so a
    # test can make answers long enough to hit max_tokens or to weigh on cost.
    "pad_output_tokens": None,
    # How many request records to keep (oldest dropped first): each holds its whole
    # body, and benchmarks send thousands of requests carrying whole transcripts.
    # 0 keeps none (the stats still count everything).
    "max_recorded": 2000,
    # Print one access-log line per request to stderr.
    "verbose": False,
}

_SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
_REDACTED = "[REDACTED]"

OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini")
ANTHROPIC_MODELS = ("claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-6", "claude-opus-4-5")
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite")


def estimate_tokens(chars: int) -> int:
    """The emulator's tokenizer: ceil(chars / 4), the usual rule of thumb."""
    return (chars + 3) // 4


# --------------------------------------------------------------------------- faults


class faults:  # noqa: N801 - used as a namespace: faults.rate_limit("openai")
    """Presets that build fault dicts, so tests read like the failure they provoke.

    Every preset takes ``provider`` (None: any), ``match`` (substring of the prompt),
    ``model`` (exact model name) and ``times`` (how many requests it hits; -1: all
    until reset).
    """

    @staticmethod
    def _base(kind: str, provider: str | None, match: str | None, times: int,
              model: str | None, **extra: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": kind, "provider": provider, "times": times}
        if match is not None:
            spec["match"] = match
        if model is not None:
            spec["model"] = model
        spec.update({k: v for k, v in extra.items() if v is not None})
        return spec

    @staticmethod
    def status(status: int, provider: str | None = None, *, code: str | None = None,
               retry_after: float | None = None, retry_after_ms: float | None = None,
               message: str | None = None, body: Any = None,
               headers: dict[str, str] | None = None, match: str | None = None, times: int = 1,
               model: str | None = None) -> dict[str, Any]:
        """Any error status; ``code`` picks a provider variant (see error_body), ``body``
        replaces the default realistic body, ``headers`` are added to the response."""
        return faults._base("status", provider, match, times, model, status=status, code=code,
                            retry_after=retry_after, retry_after_ms=retry_after_ms,
                            message=message, body=body, headers=headers)

    @staticmethod
    def rate_limit(provider: str | None = None, retry_after: float | None = None,
                   **kw: Any) -> dict[str, Any]:
        """429: OpenAI rate_limit_exceeded, Anthropic rate_limit_error, Gemini RESOURCE_EXHAUSTED."""
        return faults.status(429, provider, retry_after=retry_after, **kw)

    @staticmethod
    def insufficient_quota(provider: str = "openai", **kw: Any) -> dict[str, Any]:
        """Out of credit: OpenAI 429 insufficient_quota; Anthropic 400 credit balance too low;
        Gemini 429 RESOURCE_EXHAUSTED with a per-day QuotaFailure."""
        if provider == "anthropic":
            return faults.status(400, provider, code="credit_balance", **kw)
        if provider == "gemini":
            return faults.status(429, provider, code="per_day", **kw)
        return faults.status(429, provider, code="insufficient_quota", **kw)

    @staticmethod
    def spend_limit(provider: str = "anthropic", **kw: Any) -> dict[str, Any]:
        """Anthropic 429 rate_limit_error with details.error_code enforced_spend_limit_reached."""
        if provider == "openai":
            return faults.status(429, provider, code="organization_spend_limit_exceeded", **kw)
        return faults.status(429, provider, code="enforced_spend_limit_reached", **kw)

    @staticmethod
    def overloaded(provider: str | None = "anthropic", **kw: Any) -> dict[str, Any]:
        """Anthropic 529 overloaded_error; for OpenAI/Gemini a 503."""
        return faults.status(529 if provider == "anthropic" else 503, provider, **kw)

    @staticmethod
    def server_error(provider: str | None = None, status: int = 500, **kw: Any) -> dict[str, Any]:
        return faults.status(status, provider, **kw)

    @staticmethod
    def malformed(provider: str | None = None, *, body_text: str | None = None,
                  content_type: str | None = None, match: str | None = None,
                  times: int = 1, model: str | None = None) -> dict[str, Any]:
        return faults._base("malformed", provider, match, times, model,
                            body_text=body_text, content_type=content_type)

    @staticmethod
    def drop(provider: str | None = None, *, match: str | None = None, times: int = 1,
             model: str | None = None) -> dict[str, Any]:
        return faults._base("drop", provider, match, times, model)

    @staticmethod
    def delay(seconds: float, provider: str | None = None, *, match: str | None = None,
              times: int = 1, model: str | None = None) -> dict[str, Any]:
        return faults._base("delay", provider, match, times, model, seconds=seconds)

    @staticmethod
    def truncated(provider: str | None = None, *, match: str | None = None, times: int = 1,
                  model: str | None = None) -> dict[str, Any]:
        return faults._base("truncated", provider, match, times, model)

    @staticmethod
    def blocked(provider: str | None = None, *, where: str | None = None,
                match: str | None = None, times: int = 1,
                model: str | None = None) -> dict[str, Any]:
        """``where="prompt"`` (Gemini only): promptFeedback.blockReason and no candidates."""
        return faults._base("blocked", provider, match, times, model, where=where)


def _normalize_fault(raw: Any, seq: int) -> dict[str, Any]:
    """Validate a fault spec early, so a typo fails the test that adds it, not a later call."""
    if not isinstance(raw, dict):
        raise ValueError(f"a fault must be a JSON object, got {raw!r}")
    spec = dict(raw)
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
    provider = spec.get("provider")
    if provider not in (None, *PROVIDERS):
        raise ValueError(f"fault provider must be one of {PROVIDERS} or null, got {provider!r}")
    if kind == "status":
        status = spec.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599 or status == 200:
            raise ValueError(f"a status fault needs an error 'status' (int), got {status!r}")
    if kind == "delay" and not isinstance(spec.get("seconds"), (int, float)):
        raise ValueError("a delay fault needs 'seconds'")
    times = spec.get("times", 1)
    if times is None:
        times = -1
    if not isinstance(times, int) or times == 0 or times < -1:
        raise ValueError(f"fault 'times' must be a positive int or -1 (forever), got {times!r}")
    spec["times"] = times
    spec["provider"] = provider
    spec["id"] = seq
    return spec


# --------------------------------------------------------------------------- prompt model


@dataclass
class Segment:
    role: str  # "system", "user", "assistant"
    text: str
    cache_breakpoint: bool = False  # Anthropic cache_control on this block


@dataclass
class Prompt:
    provider: str
    model: str
    segments: list[Segment] = field(default_factory=list)
    max_output: int | None = None

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.segments)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.chars)

    @property
    def text(self) -> str:
        return "\n".join(s.text for s in self.segments)


class BadRequest(Exception):
    """The request is malformed for the provider: answered with its 400 body."""


def _text_of_content(content: Any, segments: list[Segment], role: str) -> None:
    """Append the text of an OpenAI/Anthropic message content (string or list of blocks)."""
    if content is None:
        return
    if isinstance(content, str):
        segments.append(Segment(role, content))
        return
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                segments.append(Segment(role, block))
            elif isinstance(block, dict):
                text = block.get("text")
                if not isinstance(text, str) and isinstance(block.get("content"), (str, list)):
                    # tool_result blocks nest their content
                    _text_of_content(block["content"], segments, role)
                    continue
                segments.append(Segment(role, text if isinstance(text, str) else "",
                                        cache_breakpoint=bool(block.get("cache_control"))))
        return
    raise BadRequest(f"content must be a string or a list of blocks, got {type(content).__name__}")


def parse_openai(body: dict[str, Any]) -> Prompt:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array")
    if body.get("stream"):
        raise BadRequest("the emulator does not stream; call without stream=True")
    segments: list[Segment] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise BadRequest("each message must be an object")
        role = msg.get("role", "user")
        role = "system" if role in ("system", "developer") else role
        _text_of_content(msg.get("content"), segments, role)
    # Reasoning models take max_completion_tokens; the older name still works.
    max_out = body.get("max_completion_tokens", body.get("max_tokens"))
    return Prompt("openai", model, segments, max_out if isinstance(max_out, int) else None)


def parse_anthropic(body: dict[str, Any]) -> Prompt:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    if not isinstance(body.get("max_tokens"), int):
        raise BadRequest("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required")
    if body.get("stream"):
        raise BadRequest("the emulator does not stream; call without stream=True")
    segments: list[Segment] = []
    _text_of_content(body.get("system"), segments, "system")
    for msg in messages:
        if not isinstance(msg, dict):
            raise BadRequest("messages: each message must be an object")
        _text_of_content(msg.get("content"), segments, msg.get("role", "user"))
    return Prompt("anthropic", model, segments, body["max_tokens"])


def _gemini_parts(content: Any, segments: list[Segment], role: str) -> None:
    if isinstance(content, str):
        segments.append(Segment(role, content))
        return
    if not isinstance(content, dict):
        return
    for part in content.get("parts") or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            segments.append(Segment(role, part["text"]))


def parse_gemini(body: dict[str, Any], model: str) -> Prompt:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    segments: list[Segment] = []
    # REST uses camelCase; proto-JSON also accepts snake_case.
    _gemini_parts(body.get("systemInstruction", body.get("system_instruction")), segments, "system")
    for content in contents:
        role = content.get("role", "user") if isinstance(content, dict) else "user"
        _gemini_parts(content, segments, "assistant" if role == "model" else "user")
    gen = body.get("generationConfig", body.get("generation_config")) or {}
    max_out = gen.get("maxOutputTokens", gen.get("max_output_tokens")) if isinstance(gen, dict) else None
    return Prompt("gemini", model, segments, max_out if isinstance(max_out, int) else None)


def compose_answer(prompt: Prompt) -> str:
    """A deterministic answer that proves which prompt arrived.

    It quotes the last line of the last user message (the task instruction, when the
    layout is system / transcript / question) and counts the words of the whole
    prompt, so a test can assert both the question and the size of what was sent.
    """
    user = [s for s in prompt.segments if s.role == "user" and s.text.strip()]
    instruction = ""
    if user:
        lines = [ln.strip() for ln in user[-1].text.splitlines() if ln.strip()]
        instruction = lines[-1] if lines else ""
    n_words = sum(len(s.text.split()) for s in prompt.segments)
    body_words: list[str] = []
    for s in prompt.segments:
        if s.role != "system":
            body_words.extend(s.text.split()[:6 - len(body_words)])
            if len(body_words) >= 6:
                break
    return (f"[emulated {prompt.provider}/{prompt.model}] Answer to: {instruction[:80]!r} "
            f"(read {n_words} words; first words: {' '.join(body_words)!r})")


# --------------------------------------------------------------------------- state


class _PrefixCache:
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


def _prefix_keys(prompt: Prompt, boundaries: Iterable[int]) -> list[tuple[int, bytes]]:
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


def _min_cacheable(prompt: Prompt) -> int:
    # Minimum cacheable prefixes as documented (providers.md): Anthropic Haiku/Opus 4.5
    # and Gemini Pro need 4096 tokens, the rest 1024.
    m = prompt.model
    if prompt.provider == "anthropic" and ("haiku-4-5" in m or "opus-4-5" in m):
        return 4096
    if prompt.provider == "gemini" and "pro" in m:
        return 4096
    return 1024


def _resolve_amount(value: Any, total: int) -> int:
    """An int is a token count, a float in [0, 1] a fraction of ``total``; clamped."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return min(total, int(total * value))
    if isinstance(value, (int, float)):
        return max(0, min(total, int(value)))
    return 0


class EmulatorState:
    """Everything the handler threads share, behind one lock (cheap at 1000s req/s)."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.defaults = copy.deepcopy(defaults)
        self.prefix_cache = _PrefixCache()
        self._fault_seq = itertools.count(1)
        self._req_seq = itertools.count(1)
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.config: dict[str, Any] = copy.deepcopy(self.defaults)
            self.faults: list[dict[str, Any]] = []
            self.records: deque[dict[str, Any]] = deque(maxlen=self.config["max_recorded"])
            self.stats: dict[str, Any] = self._empty_stats()
            # Requests still in flight across a reset will leave() later: keep counting.
            self.stats["in_flight"] = self.stats["in_flight_max"] = self.in_flight
        self.prefix_cache.clear()

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {
            "requests": 0,
            "by_provider": {p: 0 for p in PROVIDERS},
            "by_status": {},
            "rejected_over_context": 0,
            "faults_fired": 0,
            "dropped": 0,
            "max_prompt_tokens_seen": 0,
            "prompt_tokens_total": 0,
            "output_tokens_total": 0,
            "in_flight": 0,
            "in_flight_max": 0,
        }

    def configure(self, updates: dict[str, Any]) -> dict[str, Any]:
        unknown = set(updates) - set(DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULT_CONFIG)}")
        with self.lock:
            for key, value in updates.items():
                if key == "max_context_per_model":
                    if value is None:
                        self.config[key] = {}
                        continue
                    if not isinstance(value, dict):
                        raise ValueError("max_context_per_model must be an object {model: tokens}")
                    # Merge model by model; null removes a model's cap.
                    per_model = dict(self.config[key])
                    for model, cap in value.items():
                        if cap is None:
                            per_model.pop(model, None)
                        else:
                            per_model[model] = int(cap)
                    self.config[key] = per_model
                elif key == "cached_tokens" and not (
                        value == "auto" or value is None or isinstance(value, (int, float))):
                    raise ValueError("cached_tokens must be an int, a fraction or 'auto'")
                elif key == "max_recorded":
                    self.config[key] = int(value)
                    self.records = deque(self.records, maxlen=int(value))
                else:
                    self.config[key] = value
            return copy.deepcopy(self.config)

    def add_faults(self, specs: Iterable[Any]) -> list[dict[str, Any]]:
        normalized = [_normalize_fault(s, next(self._fault_seq)) for s in specs]
        with self.lock:
            self.faults.extend(normalized)
        return normalized

    def take_fault(self, prompt: Prompt) -> dict[str, Any] | None:
        """FIFO: the first pending fault that fits this request is used (and counted down)."""
        text: str | None = None
        with self.lock:
            for i, spec in enumerate(self.faults):
                if spec["provider"] not in (None, prompt.provider):
                    continue
                if spec.get("model") not in (None, prompt.model):
                    continue
                if spec.get("match"):
                    if text is None:
                        text = prompt.text
                    if spec["match"] not in text:
                        continue
                if spec["times"] > 0:
                    spec["times"] -= 1
                    if spec["times"] == 0:
                        del self.faults[i]
                self.stats["faults_fired"] += 1
                return spec
        return None

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.stats["in_flight"] = self.in_flight
            self.stats["in_flight_max"] = max(self.stats["in_flight_max"], self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.stats["in_flight"] = self.in_flight

    def record(self, rec: dict[str, Any]) -> None:
        with self.lock:
            rec["seq"] = next(self._req_seq)
            self.records.append(rec)
            st = self.stats
            st["requests"] += 1
            if rec.get("provider") in st["by_provider"]:
                st["by_provider"][rec["provider"]] += 1
            key = str(rec.get("status"))
            st["by_status"][key] = st["by_status"].get(key, 0) + 1
            pt = rec.get("prompt_tokens") or 0
            st["max_prompt_tokens_seen"] = max(st["max_prompt_tokens_seen"], pt)
            if rec.get("status") == 200:
                st["prompt_tokens_total"] += pt
                st["output_tokens_total"] += rec.get("output_tokens") or 0
            if rec.get("rejected_over_context"):
                st["rejected_over_context"] += 1
            if rec.get("status") is None:
                st["dropped"] += 1

    def snapshot_requests(self, provider: str | None = None, since: int = 0,
                          limit: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            out = [r for r in self.records
                   if r["seq"] > since and (provider is None or r["provider"] == provider)]
        return out[-limit:] if limit else out


# --------------------------------------------------------------------------- error bodies

_OPENAI_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: ("invalid_request_error", "Incorrect API key provided: x. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_api_key"),
    403: ("invalid_request_error", "Project does not have access to this model.", "model_not_found"),
    404: ("invalid_request_error", "The model does not exist or you do not have access to it.",
          "model_not_found"),
    429: ("requests", "Rate limit reached for requests in organization org-emulator on requests "
          "per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s.",
          "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request. Sorry about that!",
          None),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The engine is currently overloaded, please try again later.", None),
}

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your organization has a billing problem."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit "
          "(https://docs.anthropic.com/en/api/rate-limits); see the response headers for current "
          "usage. Please reduce the prompt length or the maximum tokens requested, or try again later."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}

_GEMINI_STATUS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "API key not valid. Please pass a valid API key."),
    403: ("PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
    404: ("NOT_FOUND", "models/unknown is not found for API version v1beta."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
          "billing details. For more information on this error, head to: "
          "https://ai.google.dev/gemini-api/docs/rate-limits."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
          "https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def _retry_delay(seconds: float) -> str:
    return f"{seconds:g}s"


def error_body(provider: str, status: int, *, code: str | None = None, message: str | None = None,
               model: str = "", retry_after: float | None = None) -> dict[str, Any]:
    """The body a real provider sends for this status (and variant ``code``)."""
    if provider == "openai":
        etype, emsg, ecode = _OPENAI_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error",
                     f"Error {status}", None))
        if code in ("insufficient_quota", "credit_balance_exhausted",
                    "organization_spend_limit_exceeded", "project_spend_limit_exceeded",
                    "organization_usage_limit_exceeded"):
            # Billing problems share type insufficient_quota; only code tells them apart.
            etype, ecode = "insufficient_quota", code
            emsg = ("You exceeded your current quota, please check your plan and billing details. "
                    "For more information on this error, read the docs: "
                    "https://platform.openai.com/docs/guides/error-codes/api-errors.")
        elif code is not None:
            ecode = code
        if status == 429 and ecode == "rate_limit_exceeded":
            emsg = emsg.replace("for requests", f"for {model or 'requests'}")
            if retry_after is not None:
                emsg = emsg.replace("try again in 1s", f"try again in {retry_after:g}s")
        return {"error": {"message": message or emsg, "type": etype, "param": None, "code": ecode}}

    if provider == "anthropic":
        etype, emsg = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}"))
        details: dict[str, Any] | None = None
        if code == "credit_balance":
            etype, emsg = "invalid_request_error", (
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
                "Billing to upgrade or purchase credits.")
        elif code == "spend_limit":
            etype, emsg = "invalid_request_error", (
                "You have reached your specified API usage limits. You will regain access on "
                "2026-12-01 at 00:00 UTC.")
        elif code is not None:
            # anthropic 2.x maps error.details.error_code to its own exception classes
            # (e.g. EnforcedSpendLimitReachedError for 429 enforced_spend_limit_reached).
            details = {"error_code": code}
            if code.endswith("spend_limit_reached"):
                emsg = "Your organization has reached its monthly spend limit for its usage tier."
        err: dict[str, Any] = {"type": etype, "message": message or emsg}
        if details:
            err["details"] = details
        return {"type": "error", "error": err, "request_id": f"req_emu{uuid.uuid4().hex[:20]}"}

    gstatus, gmsg = _GEMINI_STATUS.get(
        status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", f"Error {status}"))
    gerr: dict[str, Any] = {"code": status, "message": message or gmsg, "status": gstatus}
    if status == 429:
        det: list[dict[str, Any]] = []
        if code in ("per_minute", "per_day"):
            # QuotaFailure is what tells a daily (come back tomorrow) from a per-minute quota.
            quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if code == "per_day"
                        else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
            metric = ("generativelanguage.googleapis.com/generate_content_free_tier_requests")
            det.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaMetric": metric, "quotaId": quota_id,
                                        "quotaDimensions": {"location": "global",
                                                            "model": model or "gemini-2.5-flash"},
                                        "quotaValue": "250" if code == "per_day" else "10"}]})
            det.append({"@type": "type.googleapis.com/google.rpc.Help",
                        "links": [{"description": "Learn more about Gemini API quotas",
                                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]})
        if code != "per_day" or retry_after is not None:
            det.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": _retry_delay(retry_after if retry_after is not None else 2)})
        gerr["details"] = det
    return {"error": gerr}


def context_error(provider: str, tokens: int, limit: int) -> tuple[int, dict[str, Any]]:
    if provider == "openai":
        return 400, {"error": {
            "message": (f"This model's maximum context length is {limit} tokens. However, your "
                        f"messages resulted in {tokens} tokens. Please reduce the length of the "
                        f"messages."),
            "type": "invalid_request_error", "param": "messages",
            "code": "context_length_exceeded"}}
    if provider == "anthropic":
        return 400, {"type": "error", "error": {
            "type": "invalid_request_error",
            "message": f"prompt is too long: {tokens} tokens > {limit} maximum"},
            "request_id": f"req_emu{uuid.uuid4().hex[:20]}"}
    return 400, {"error": {
        "code": 400,
        "message": (f"The input token count ({tokens}) exceeds the maximum number of tokens "
                    f"allowed ({limit})."),
        "status": "INVALID_ARGUMENT"}}


# --------------------------------------------------------------------------- responses


@dataclass
class Usage:
    prompt: int
    output: int  # visible output tokens
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


def openai_response(prompt: Prompt, text: str | None, finish: str, u: Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-emu{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": prompt.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None,
                        "annotations": []},
            "logprobs": None,
            "finish_reason": finish,
        }],
        "usage": {
            # prompt_tokens includes cached_tokens; completion_tokens includes reasoning.
            "prompt_tokens": u.prompt,
            "completion_tokens": u.output + u.reasoning,
            "total_tokens": u.prompt + u.output + u.reasoning,
            "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_emulator",
    }


def anthropic_response(prompt: Prompt, text: str | None, stop: str, u: Usage) -> dict[str, Any]:
    usage: dict[str, Any] = {
        # input_tokens excludes cache reads and cache writes: the three add up.
        "input_tokens": max(0, u.prompt - u.cached - u.cache_write),
        "output_tokens": u.output + u.reasoning,
        "cache_read_input_tokens": u.cached,
        "cache_creation_input_tokens": u.cache_write,
        "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write,
                           "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
    }
    if u.reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    body: dict[str, Any] = {
        "id": f"msg_emu{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": [{"type": "text", "text": text, "citations": None}] if text else [],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if stop == "refusal":
        body["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
    return body


def gemini_response(prompt: Prompt, text: str | None, finish: str, u: Usage,
                    prompt_blocked: bool = False) -> dict[str, Any]:
    usage: dict[str, Any] = {
        # promptTokenCount INCLUDES cachedContentTokenCount; candidatesTokenCount EXCLUDES
        # thoughtsTokenCount; the total adds them all.
        "promptTokenCount": u.prompt,
        "totalTokenCount": u.prompt + u.output + u.reasoning,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.prompt}],
    }
    if text is not None:
        usage["candidatesTokenCount"] = u.output
    if u.cached:
        usage["cachedContentTokenCount"] = u.cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cached}]
    if u.reasoning:
        usage["thoughtsTokenCount"] = u.reasoning
    body: dict[str, Any] = {"usageMetadata": usage, "modelVersion": prompt.model,
                            "responseId": uuid.uuid4().hex[:22]}
    if prompt_blocked:
        body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}
        return body
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if text is not None:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    if finish == "SAFETY":
        candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                       "probability": "HIGH", "blocked": True}]
    body["candidates"] = [candidate]
    return body


_FINISH = {
    "openai": {"stop": "stop", "length": "length", "blocked": "content_filter"},
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "blocked": "refusal"},
    "gemini": {"stop": "STOP", "length": "MAX_TOKENS", "blocked": "SAFETY"},
}


# --------------------------------------------------------------------------- HTTP


class _Dropped(Exception):
    """Raised to close the connection without answering (fault kind "drop")."""


# status, payload, content type, extra headers
_Reply = tuple[int, bytes, str, dict[str, str]]


def _json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Reply:
    return (status, json.dumps(obj, separators=(",", ":")).encode(), "application/json",
            headers or {})


class EmulatorServer(ThreadingHTTPServer):
    # Handler threads must not keep the process alive, and stop() must not wait for
    # requests sleeping through a configured latency.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # Benchmarks open many connections at once; the default backlog of 5 refuses some.
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(addr, EmulatorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        # Keep-alive handler threads block reading the next request; without this a
        # stopped emulator would keep answering on pooled connections.
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: SDK connection pools reuse sockets
    server_version = "ScriptRipperEmulator/1.0"
    sys_version = ""
    # Headers and body go out as two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per request on keep-alive connections).
    disable_nagle_algorithm = True
    server: EmulatorServer

    # ----- plumbing

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.state.config.get("verbose"):
            sys.stderr.write("emulator: %s - %s\n" % (self.address_string(), format % args))

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        # Always a Content-Length: HTTP/1.1 keep-alive clients need it to find the end.
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), headers=headers)

    def _redacted_headers(self) -> tuple[dict[str, str], bool]:
        out: dict[str, str] = {}
        present = False
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in _SECRET_HEADERS:
                present = present or bool(v)
                out[lk] = _REDACTED
            else:
                out[lk] = v
        return out, present

    # ----- routing

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        query = urllib.parse.parse_qs(parts.query)
        try:
            raw = self._read_body() if method in ("POST", "DELETE") else b""
            if emulator_batches.route(self, method, path, query, raw):  # batch protocols, flex (emulator/batches.py)
                return
            if path.startswith("/_emulator/"):
                self._control(method, path, query, raw)
                return
            if method == "POST" and path == "/v1/chat/completions":
                self._provider("openai", path, query, raw, None)
            elif method == "POST" and path == "/v1/messages":
                self._provider("anthropic", path, query, raw, None)
            elif method == "POST" and path == "/v1/messages/count_tokens":
                self._count_tokens("anthropic", raw, None)
            elif method == "POST" and (path.startswith("/v1/models/")
                                       or path.startswith("/v1beta/models/")) and ":" in path:
                model, _, action = path.split("/models/", 1)[1].rpartition(":")
                if action == "generateContent":
                    self._provider("gemini", path, query, raw, urllib.parse.unquote(model))
                elif action == "countTokens":
                    self._count_tokens("gemini", raw, urllib.parse.unquote(model))
                else:
                    self._send_json(404, error_body("gemini", 404, message=(
                        f"Method {action} is not supported by the emulator.")))
            elif method == "GET" and path in ("/v1/models", "/v1beta/models"):
                self._list_models(path)
            elif method == "GET" and path.startswith("/v1/models/"):
                model = path.rsplit("/", 1)[1]
                self._send_json(200, {"id": model, "object": "model", "created": 1700000000,
                                      "owned_by": "emulator"})
            else:
                self._send_json(404, {"error": {"message": f"no route {method} {path}",
                                                "type": "invalid_request_error", "code": None}})
        except _Dropped:
            self.close_connection = True
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - an emulator bug must not hang the client
            self.close_connection = True
            sys.stderr.write(f"emulator: error on {method} {path}: {exc!r}\n")
            try:
                self._send_json(500, {"error": {"message": f"emulator error: {exc!r}",
                                                "type": "server_error", "code": None}})
            except OSError:
                pass

    def _list_models(self, path: str) -> None:
        if "x-goog-api-key" in self.headers or path.startswith("/v1beta"):
            self._send_json(200, {"models": [
                {"name": f"models/{m}", "displayName": m, "inputTokenLimit": 1048576,
                 "outputTokenLimit": 65536, "supportedGenerationMethods":
                     ["generateContent", "countTokens"]} for m in GEMINI_MODELS]})
            return
        if "x-api-key" in self.headers or "anthropic-version" in self.headers:
            self._send_json(200, {"data": [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in ANTHROPIC_MODELS], "has_more": False,
                "first_id": ANTHROPIC_MODELS[0], "last_id": ANTHROPIC_MODELS[-1]})
            return
        # With a context cap configured, say it as vLLM does (max_model_len), so a client can learn it.
        cap = self.server.state.config.get("max_context")
        self._send_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "emulator",
             **({"max_model_len": cap} if cap else {})}
            for m in OPENAI_MODELS]})

    # ----- control plane

    def _control(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        state = self.server.state
        name = path[len("/_emulator/"):].strip("/")
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._send_json(400, {"error": "body is not JSON"})
            return
        try:
            if name == "health":
                self._send_json(200, {"ok": True})
            elif name == "requests" and method == "GET":
                provider = query.get("provider", [None])[0]
                since = int(query.get("since", ["0"])[0])
                limit = int(query.get("limit", ["0"])[0]) or None
                self._send_json(200, state.snapshot_requests(provider, since, limit))
            elif name == "reset" and method == "POST":
                state.reset()
                self._send_json(200, {"ok": True})
            elif name == "config" and method == "GET":
                with state.lock:
                    self._send_json(200, copy.deepcopy(state.config))
            elif name == "config" and method == "POST":
                if not isinstance(payload, dict):
                    raise ValueError("config body must be a JSON object")
                self._send_json(200, state.configure(payload))
            elif name == "faults" and method == "GET":
                with state.lock:
                    self._send_json(200, copy.deepcopy(state.faults))
            elif name == "faults" and method == "POST":
                specs = payload if isinstance(payload, list) else [payload]
                self._send_json(200, state.add_faults(specs))
            elif name == "faults" and method == "DELETE":
                with state.lock:
                    state.faults.clear()
                self._send_json(200, {"ok": True})
            elif name == "stats" and method == "GET":
                with state.lock:
                    self._send_json(200, copy.deepcopy(state.stats))
            else:
                self._send_json(404, {"error": f"no control endpoint {method} {path}"})
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})

    # ----- providers

    def _parse(self, provider: str, raw: bytes, model: str | None) -> tuple[Any, Prompt]:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"We could not parse the JSON body of your request. ({exc})") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        if provider == "openai":
            return body, parse_openai(body)
        if provider == "anthropic":
            return body, parse_anthropic(body)
        assert model is not None
        return body, parse_gemini(body, model)

    def _count_tokens(self, provider: str, raw: bytes, model: str | None) -> None:
        try:
            body = json.loads(raw or b"{}")
            if provider == "gemini":
                # countTokens wraps the request: {"contents": ...} or
                # {"generateContentRequest": {...}}.
                inner = body.get("generateContentRequest") or body
                prompt = parse_gemini(inner, model or "")
                self._send_json(200, {"totalTokens": prompt.tokens,
                                      "promptTokensDetails": [{"modality": "TEXT",
                                                               "tokenCount": prompt.tokens}]})
            else:
                body.setdefault("max_tokens", 1)
                self._send_json(200, {"input_tokens": parse_anthropic(body).tokens})
        except (BadRequest, ValueError, AttributeError) as exc:
            self._send_json(400, error_body(provider, 400, message=str(exc)))

    def _provider(self, provider: str, path: str, query: dict[str, list[str]], raw: bytes,
                  model: str | None) -> None:
        state = self.server.state
        started = time.time()
        headers, key_present = self._redacted_headers()
        key_present = key_present or "key" in query  # Gemini also takes ?key=
        rec: dict[str, Any] = {
            "provider": provider, "model": model, "path": path, "headers": headers,
            "api_key_present": key_present, "body": None, "prompt_tokens": None,
            "status": None, "time": started,
        }
        state.enter()
        try:
            reply = self._answer(provider, raw, model, rec)
        finally:
            state.leave()
            rec["duration_s"] = round(time.time() - started, 6)
            # Recorded before the reply goes out: once the SDK call returns, a test's
            # requests() must already show it.
            state.record(rec)
        if state.config.get("verbose"):
            self.log_message("%s %s -> %s", provider, rec.get("model"), rec.get("status"))
        if reply is None:
            raise _Dropped()
        self._send(*reply)

    def _answer(self, provider: str, raw: bytes, model: str | None, rec: dict[str, Any]
                ) -> _Reply | None:
        """Decide the reply (None: drop the connection) and fill in the record."""
        state = self.server.state
        cfg = state.config  # read without the lock: values are replaced, never mutated
        try:
            body, prompt = self._parse(provider, raw, model)
        except BadRequest as exc:
            try:
                rec["body"] = json.loads(raw)
            except ValueError:
                rec["body"] = raw[:2000].decode("utf-8", "replace")
            rec["status"] = 400
            return _json_reply(400, error_body(provider, 400, message=str(exc)))
        rec["body"] = body
        rec["model"] = prompt.model
        rec["prompt_tokens"] = prompt.tokens

        latency = float(cfg.get("latency") or 0.0)
        if latency > 0:
            time.sleep(latency)  # in this handler thread: other requests go on meanwhile

        fault = state.take_fault(prompt)
        kind = fault["kind"] if fault else None
        if fault:
            rec["fault"] = {k: v for k, v in fault.items() if k != "times"}
        if kind == "delay":
            time.sleep(float(fault["seconds"]))
        elif kind == "drop":
            return None
        elif kind == "malformed":
            rec["status"] = 200
            payload = fault.get("body_text") or '{"id": "emulated-malformed", "choices": [{"ind'
            return (200, payload.encode(), fault.get("content_type") or "application/json", {})
        elif kind == "status":
            return self._fault_status(provider, prompt, fault, rec)

        limit = self._context_limit(prompt.model, cfg)
        if limit and prompt.tokens > limit:
            status, err = context_error(provider, prompt.tokens, limit)
            rec["status"] = status
            rec["rejected_over_context"] = True
            return _json_reply(status, err, self._id_headers(provider))

        text, finish, usage = self._generate(prompt, cfg, kind)
        if kind == "blocked" and fault.get("text") is not None:
            text = fault["text"]
        # Structured output (emulator/structured.py): JSON generated from the request's schema.
        schema = emulator_structured.request_schema(provider, body)
        if isinstance(schema, dict) and kind not in ("blocked", "truncated"):
            text = emulator_structured.answer(prompt.text, schema, kind)
            usage.output = estimate_tokens(len(text))
        rec["status"] = 200
        rec["output_tokens"] = usage.output + usage.reasoning
        rec["finish_reason"] = finish
        if provider == "openai":
            resp = openai_response(prompt, text, finish, usage)
        elif provider == "anthropic":
            resp = anthropic_response(prompt, text, finish, usage)
        else:
            resp = gemini_response(prompt, text, finish, usage,
                                   prompt_blocked=(kind == "blocked"
                                                   and fault.get("where") == "prompt"))
        return _json_reply(200, resp, self._id_headers(provider))

    @staticmethod
    def _context_limit(model: str, cfg: dict[str, Any]) -> int | None:
        per_model = cfg.get("max_context_per_model") or {}
        if model in per_model:
            return int(per_model[model]) or None
        return int(cfg.get("max_context") or 0) or None

    @staticmethod
    def _id_headers(provider: str) -> dict[str, str]:
        # The SDKs surface these as request_id on responses and errors.
        if provider == "openai":
            return {"x-request-id": f"req_emu{uuid.uuid4().hex[:24]}"}
        if provider == "anthropic":
            return {"request-id": f"req_emu{uuid.uuid4().hex[:20]}"}
        return {}

    def _fault_status(self, provider: str, prompt: Prompt, fault: dict[str, Any],
                      rec: dict[str, Any]) -> _Reply:
        status = int(fault["status"])
        retry_after = fault.get("retry_after")
        headers = self._id_headers(provider)
        # Gemini tells the delay in the body (RetryInfo), not in a header.
        if retry_after is not None and (provider != "gemini" or fault.get("retry_after_header")):
            headers["retry-after"] = f"{retry_after:g}"
        if fault.get("retry_after_ms") is not None:
            headers["retry-after-ms"] = f"{fault['retry_after_ms']:g}"
        headers.update({str(k): str(v) for k, v in (fault.get("headers") or {}).items()})
        body = fault.get("body")
        if body is None:
            body = error_body(provider, status, code=fault.get("code"), message=fault.get("message"),
                              model=prompt.model, retry_after=retry_after)
        rec["status"] = status
        if isinstance(body, str):
            return (status, body.encode(), "text/plain; charset=utf-8", headers)
        return _json_reply(status, body, headers)

    def _generate(self, prompt: Prompt, cfg: dict[str, Any], kind: str | None
                  ) -> tuple[str | None, str, Usage]:
        finish_names = _FINISH[prompt.provider]
        cached, cache_write = self._cache_usage(prompt, cfg)
        reasoning = max(0, int(cfg.get("reasoning_tokens") or 0))
        usage = Usage(prompt=prompt.tokens, output=0, cached=cached, cache_write=cache_write,
                      reasoning=reasoning)
        if kind == "blocked":
            usage.reasoning = 0
            # Gemini sends no text part at all; OpenAI an empty message; Anthropic no blocks.
            return (None if prompt.provider == "gemini" else ""), finish_names["blocked"], usage

        text = compose_answer(prompt)
        pad = cfg.get("pad_output_tokens")
        if isinstance(pad, int) and pad > 0:
            filler = " lorem ipsum dolor sit amet"
            want = pad * 4
            text = (text + filler * (want // len(filler) + 1))[:want] if want > len(text) else text
        finish = finish_names["stop"]
        if kind == "truncated":
            text = text[: max(4, len(text) // 2)]
            finish = finish_names["length"]
        if prompt.max_output is not None:
            # The output budget covers reasoning too (max_completion_tokens,
            # maxOutputTokens and Anthropic max_tokens all do).
            budget = max(0, prompt.max_output - reasoning)
            usage.reasoning = min(reasoning, prompt.max_output)
            if estimate_tokens(len(text)) > budget:
                text = text[: budget * 4]
                finish = finish_names["length"]
        usage.output = estimate_tokens(len(text))
        return text, finish, usage

    def _cache_usage(self, prompt: Prompt, cfg: dict[str, Any]) -> tuple[int, int]:
        total = prompt.tokens
        mode = cfg.get("cached_tokens")
        if mode != "auto":
            cached = _resolve_amount(mode, total)
            write = 0
            if prompt.provider == "anthropic":
                write = min(total - cached, _resolve_amount(cfg.get("cache_write_tokens"), total))
            return cached, write
        ttl = float(cfg.get("cache_ttl") or 300.0)
        minimum = _min_cacheable(prompt)
        cache = self.server.state.prefix_cache
        if prompt.provider != "anthropic":
            # OpenAI/Gemini cache exact prefixes automatically, in 128-token steps
            # from the minimum: 1024, 1152, ... tokens (4 chars a token here).
            keys = _prefix_keys(prompt, range(minimum * 4, prompt.chars + 1, 128 * 4))
            return cache.lookup_and_store(keys, ttl), 0
        # Anthropic caches only up to explicit cache_control breakpoints: the longest
        # breakpoint prefix seen before is read, the rest up to the last breakpoint is
        # written.
        ends: list[int] = []
        offset = 0
        for seg in prompt.segments:
            offset += len(seg.text)
            if seg.cache_breakpoint:
                ends.append(offset)
        keys = [(t, k) for t, k in _prefix_keys(prompt, ends) if t >= minimum]
        if not keys:
            return 0, 0  # below the minimum nothing is cached and nothing fails
        read = min(cache.lookup_and_store(keys, ttl), total)
        write = max(t for t, _ in keys) - read
        return read, max(0, min(write, total - read))


# --------------------------------------------------------------------------- public API


class Emulator:
    """The emulator in this process, serving from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 max_context: int | None = None, **config: Any) -> None:
        defaults = copy.deepcopy(DEFAULT_CONFIG)
        unknown = set(config) - set(DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        defaults.update(config)
        defaults["latency"] = latency
        defaults["max_context"] = max_context
        self.host = host
        self.port = port
        self.state = EmulatorState(defaults)
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        self._server = EmulatorServer((self.host, self.port), self.state)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.close_open_connections()
        self._server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def gemini_base_url(self) -> str:
        return self.url

    def requests(self, provider: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        return self.state.snapshot_requests(provider, since)

    def add_faults(self, specs: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        return self.state.add_faults([specs] if isinstance(specs, dict) else specs)

    def faults(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return copy.deepcopy(self.state.faults)

    def configure(self, **kw: Any) -> dict[str, Any]:
        return self.state.configure(kw)

    def config(self) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.config)

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.stats)

    def reset(self) -> None:
        self.state.reset()


class EmulatorClient:
    """The same methods as Emulator, over HTTP, for an emulator in another process."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # No proxies: the emulator is on loopback and an inherited HTTP_PROXY would eat it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def _call(self, method: str, name: str, payload: Any = None, query: str = "") -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(f"{self.url}/_emulator/{name}{query}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ValueError(f"emulator {method} {name}: {exc.code} {detail}") from None

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "health").get("ok"))
        except OSError:
            return False

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health():
                return
            time.sleep(0.05)
        raise TimeoutError(f"emulator at {self.url} not ready after {timeout}s")

    def requests(self, provider: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        q = {"since": str(since)}
        if provider:
            q["provider"] = provider
        return self._call("GET", "requests", query="?" + urllib.parse.urlencode(q))

    def add_faults(self, specs: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        return self._call("POST", "faults", [specs] if isinstance(specs, dict) else specs)

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")

    def configure(self, **kw: Any) -> dict[str, Any]:
        return self._call("POST", "config", kw)

    def config(self) -> dict[str, Any]:
        return self._call("GET", "config")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset(self) -> None:
        self._call("POST", "reset", {})
