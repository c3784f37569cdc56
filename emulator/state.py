"""What the handler threads share: the configuration, the pending faults, the request records and the
counters that the control API (/_emulator/...) reads and changes, plus the prompt-cache store."""

from __future__ import annotations

import copy
import itertools
import threading
from collections import deque
from typing import Any, Iterable, Mapping

from emulator.caching import PrefixCache
from emulator.fault_specs import fits, parse_fault
from emulator.prompt import PROVIDERS, Prompt

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


def redact_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """The request's headers as recorded (API keys replaced), and whether a key was sent."""
    out: dict[str, str] = {}
    present = False
    for k, v in headers.items():
        lk = k.lower()
        if lk in _SECRET_HEADERS:
            present = present or bool(v)
            out[lk] = _REDACTED
        else:
            out[lk] = v
    return out, present


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


class EmulatorState:
    """Everything the handler threads share, behind one lock (cheap at 1000s req/s).

    ``config`` is read without the lock by the handlers: configure() replaces values, never
    mutates them in place. The snapshot methods return deep copies, safe to serialise.
    """

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.defaults = copy.deepcopy(defaults)
        self.prefix_cache = PrefixCache()
        self._fault_seq = itertools.count(1)
        self._req_seq = itertools.count(1)
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.config: dict[str, Any] = copy.deepcopy(self.defaults)
            self.faults: list[dict[str, Any]] = []
            self.records: deque[dict[str, Any]] = deque(maxlen=self.config["max_recorded"])
            self.stats: dict[str, Any] = _empty_stats()
            # Requests still in flight across a reset will leave() later: keep counting.
            self.stats["in_flight"] = self.stats["in_flight_max"] = self.in_flight
        self.prefix_cache.clear()

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

    def snapshot_config(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.config)

    def snapshot_stats(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.stats)

    def snapshot_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.faults)

    def add_faults(self, specs: Iterable[Any]) -> list[dict[str, Any]]:
        parsed = [parse_fault(s, next(self._fault_seq)) for s in specs]
        with self.lock:
            self.faults.extend(parsed)
        return parsed

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, prompt: Prompt) -> dict[str, Any] | None:
        """FIFO: the first pending fault that fits this request is used (and counted down)."""
        with self.lock:
            for i, spec in enumerate(self.faults):
                if not fits(spec, prompt):
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
