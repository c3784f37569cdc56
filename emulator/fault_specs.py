"""The fault language: a fault is a JSON object that tells the emulator how to misbehave on the next
requests that fit it.

    {"kind": "status", "status": 429, "retry_after": 1, "provider": "openai", "match": "summary",
     "model": "gpt-4o", "times": 2}

``kind`` is one of FAULT_KINDS (``reply`` is not a fault but a scripted answer: ``text`` is what the model
says); ``provider`` (null: any), ``model`` (exact) and ``match`` (a
substring of the prompt) say which requests it fits; ``times`` how many it hits (-1 or null: every
one until reset). Pending faults are tried in the order they were added and the first that fits is
used. ``faults`` builds these objects so that a test reads like the failure it provokes; the module
is not named ``faults`` so that the package's ``faults`` (the presets) does not hide it.
"""

from __future__ import annotations

from typing import Any

from emulator import structured
from emulator.prompt import PROVIDERS, Prompt

FAULT_KINDS = ("status", "malformed", "drop", "delay", "truncated", "blocked", "reply") + structured.FAULT_KINDS


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
        """Any error status; ``code`` picks a provider variant (see each protocol's error_body),
        ``body`` replaces the default realistic body, ``headers`` are added to the response."""
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
    def reply(text: str, provider: str | None = None, *, match: str | None = None, times: int = 1,
              model: str | None = None) -> dict[str, Any]:
        """A scripted answer: `text` is what the model says (a structured request's JSON included; markup,
        links, scripts, as a model may write anything), in a normal 200 answer with its usage."""
        return faults._base("reply", provider, match, times, model, text=text)

    @staticmethod
    def blocked(provider: str | None = None, *, where: str | None = None,
                match: str | None = None, times: int = 1,
                model: str | None = None) -> dict[str, Any]:
        """``where="prompt"`` (Gemini only): promptFeedback.blockReason and no candidates."""
        return faults._base("blocked", provider, match, times, model, where=where)


def parse_fault(raw: Any, seq: int) -> dict[str, Any]:
    """Validate a fault spec early, so a typo fails the test that adds it, not a later call.

    Returns a copy with ``times`` normalised (null becomes -1), ``provider`` always present and
    ``id`` set to ``seq``.
    """
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
    if kind == "reply" and not isinstance(spec.get("text"), str):
        raise ValueError("a reply fault needs 'text' (the answer, a string)")
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


def fits(spec: dict[str, Any], prompt: Prompt) -> bool:
    """Whether a parsed fault applies to this request (the prompt's text is read only for ``match``)."""
    if spec["provider"] not in (None, prompt.provider):
        return False
    if spec.get("model") not in (None, prompt.model):
        return False
    return not spec.get("match") or spec["match"] in prompt.text
