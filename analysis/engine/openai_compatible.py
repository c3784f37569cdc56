"""Named OpenAI-compatible endpoints (a local Ollama, vLLM or llama.cpp server, a proxy) beside the providers.

Configured in the environment, as JSON in OPENAI_COMPATIBLE_ENDPOINTS or in a file that
OPENAI_COMPATIBLE_ENDPOINTS_FILE names (README: "Local models and other OpenAI-compatible endpoints"):

    [{"name": "local", "base_url": "http://127.0.0.1:8080/v1", "api_key": "none", "max_in_flight": 2,
      "context_window": "auto", "models": ["qwen3-8b"], "prices": {"input": 0, "output": 0}}]

A job names the endpoint as its provider ("provider": "local"). Each endpoint has its own parallel limit,
shared by every worker through Redis (analysis.engine.limits), and its errors carry its name. Its key is never
logged, rendered or listed (`repr` hides it). Reads no settings: settings.py parses with parse_endpoints
and raises ImproperlyConfigured with the message.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from analysis.engine.catalogue import UnknownModelError
from analysis.engine.model_info import UNLISTED_CONTEXT_WINDOW, UNLISTED_MAX_OUTPUT_TOKENS, ModelInfo, simple_model
from analysis.engine.providers import PROVIDER_NAMES

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9-]{1,32}$")
_KEYS = frozenset({"name", "base_url", "api_key", "models", "context_window", "max_output_tokens", "max_in_flight",
                   "prices", "structured_output"})
_PRICE_KEYS = ("input", "cached_input", "output")
DEFAULT_MAX_IN_FLIGHT = 4
PROBE_TIMEOUT_S = 3.0
PROBE_RETRY_S = 60.0


class EndpointConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Prices:
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None


@dataclass(frozen=True)
class EndpointModel:
    name: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    prices: Prices | None = None
    structured_output: bool | None = None  # None: the endpoint's


@dataclass
class Endpoint:
    name: str
    base_url: str
    api_key: str = field(repr=False)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    context_window: int | None = None  # None with probe=True: read from the server once
    probe: bool = False
    max_output_tokens: int | None = None
    models: dict[str, EndpointModel] = field(default_factory=dict)  # empty: any model the server has
    prices: Prices | None = None
    # Whether the server takes response_format json_schema (llama.cpp, vLLM and Ollama do; some proxies do not).
    structured_output: bool = True
    _probed: int | None = field(default=None, repr=False)
    _probe_next: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def label(self) -> str:
        return self.name

    def public(self) -> dict[str, Any]:
        """What GET /api/v1/models may show (never the key, nor the URL, which may embed credentials)."""
        return {"name": self.name, "max_in_flight": self.max_in_flight, "models": sorted(self.models)}

    # --- context window ---------------------------------------------------------------------------
    def discovered_context(self) -> int | None:
        """The server's context window (llama.cpp /props, vLLM /v1/models): read once per process, at the worker's
        start-up (providers.warm_provider_clients) or first use."""
        if not self.probe:
            return None
        with self._lock:
            # A window once read is kept for the life of the process. A server that did not answer (not
            # started yet, restarting) is asked again at most every PROBE_RETRY_S, not never again.
            if self._probed is None and time.monotonic() >= self._probe_next:
                self._probed = probe_context_window(self.base_url, self.api_key)
                self._probe_next = time.monotonic() + PROBE_RETRY_S
                if self._probed is None:
                    logger.warning("endpoint %s: the server did not say its context window; assuming %d tokens "
                                   "for now (set context_window in OPENAI_COMPATIBLE_ENDPOINTS)", self.name,
                                   UNLISTED_CONTEXT_WINDOW)
        return self._probed

    def price_known(self, model: str) -> bool:
        """Whether jobs on this model have a configured price (no server round trip)."""
        entry = self.models.get(model)
        if self.models and entry is None:
            return False
        return (entry is not None and entry.prices is not None) or self.prices is not None

    def model_info(self, model: str, *, context_overrides: Mapping[str, int] | None = None) -> ModelInfo:
        entry = self.models.get(model)
        if self.models and entry is None:
            raise UnknownModelError(self.name, model, sorted(self.models))
        entry = entry or EndpointModel(name=model)
        window = entry.context_window or self.context_window or self.discovered_context() or UNLISTED_CONTEXT_WINDOW
        override = (context_overrides or {}).get(model)
        if override is not None:
            window = min(window, override) if (entry.context_window or self.context_window) else override
        prices = entry.prices or self.prices
        max_output = entry.max_output_tokens or self.max_output_tokens or UNLISTED_MAX_OUTPUT_TOKENS
        structured = self.structured_output if entry.structured_output is None else entry.structured_output
        if prices is None:
            return simple_model(self.name, model, context_window=window, max_output_tokens=max_output, listed=False,
                                price_source=f"endpoint {self.name}: no price configured, counted as 0",
                                structured_output=structured)
        return simple_model(self.name, model, context_window=window, max_output_tokens=max_output, listed=True,
                            input=prices.input, cached_input=prices.cached_input, output=prices.output,
                            price_source=f"endpoint {self.name}: prices from OPENAI_COMPATIBLE_ENDPOINTS",
                            structured_output=structured)


def probe_context_window(base_url: str, api_key: str, *, timeout: float = PROBE_TIMEOUT_S) -> int | None:
    """Ask an OpenAI-compatible server for its context window; None when it does not say.

    llama.cpp's llama-server: GET /props -> default_generation_settings.n_ctx (per slot); vLLM: GET /v1/models
    -> data[0].max_model_len. Ollama says neither (its window is set per model: give context_window).
    """
    root = base_url.rstrip("/")
    root = root[:-3] if root.endswith("/v1") else root
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for url, read in ((f"{root}/props", _n_ctx), (f"{root}/v1/models", _max_model_len)):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
                value = read(json.loads(response.read()))
        except (OSError, ValueError):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _n_ctx(body: Any) -> Any:
    settings = body.get("default_generation_settings") if isinstance(body, dict) else None
    return (settings or {}).get("n_ctx") if isinstance(settings, dict) else None


def _max_model_len(body: Any) -> Any:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0].get("max_model_len")
    return None


# --- parsing --------------------------------------------------------------------------------------


def _int(where: str, key: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EndpointConfigError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise EndpointConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _prices(where: str, value: Any) -> Prices:
    if not isinstance(value, dict) or set(value) - set(_PRICE_KEYS) or "input" not in value or "output" not in value:
        raise EndpointConfigError(f"{where}: prices must be {{\"input\", \"output\", \"cached_input\"?}} "
                                  f"(USD per million tokens)")
    parsed: dict[str, Decimal] = {}
    for key, raw in value.items():
        try:
            if isinstance(raw, bool):
                raise InvalidOperation
            price = Decimal(str(raw))
        except (InvalidOperation, ValueError):
            raise EndpointConfigError(f"{where}: prices.{key} must be a number, got {raw!r}") from None
        if not price.is_finite() or price < 0:
            raise EndpointConfigError(f"{where}: prices.{key} must be a non-negative number, got {raw!r}")
        parsed[key] = price
    return Prices(**parsed)


def parse_endpoints(text: str, *, env: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """Parse the JSON list of endpoints. Raises EndpointConfigError naming the bad entry and field.

    `api_key` may be "env:VARIABLE" to read the key from another variable (so the JSON can be committed).
    """
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EndpointConfigError(f"not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise EndpointConfigError("must be a JSON list of endpoint objects")
    endpoints: dict[str, Endpoint] = {}
    for i, raw in enumerate(data):
        where = f"endpoint #{i + 1}"
        if not isinstance(raw, dict):
            raise EndpointConfigError(f"{where}: must be an object")
        name = raw.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise EndpointConfigError(f"{where}: name must match [a-z0-9-]{{1,32}}, got {name!r}")
        where = f"endpoint {name!r}"
        if name in PROVIDER_NAMES:
            raise EndpointConfigError(f"{where}: the name of a built-in provider cannot be reused")
        if name in endpoints:
            raise EndpointConfigError(f"{where}: configured twice")
        if unknown := set(raw) - _KEYS:
            raise EndpointConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        base_url = raw.get("base_url")
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            raise EndpointConfigError(f"{where}: base_url must be an http(s) URL up to and including /v1")
        api_key = raw.get("api_key", "")
        if not isinstance(api_key, str):
            raise EndpointConfigError(f"{where}: api_key must be a string")
        if api_key.startswith("env:"):
            variable = api_key[4:]
            api_key = (env or {}).get(variable, "")
            if not api_key:
                raise EndpointConfigError(f"{where}: api_key names {variable}, which is not set")
        context = raw.get("context_window")
        probe = context == "auto"
        if context is not None and not probe:
            context = _int(where, "context_window", context)
        models: dict[str, EndpointModel] = {}
        raw_models = raw.get("models", [])
        if isinstance(raw_models, list):
            raw_models = {m: {} for m in raw_models}
        if not isinstance(raw_models, dict):
            raise EndpointConfigError(f"{where}: models must be a list of names or an object name -> settings")
        for model, settings in raw_models.items():
            if not isinstance(model, str) or not model.strip() or not isinstance(settings, dict):
                raise EndpointConfigError(f"{where}: models must be a list of names or an object name -> settings")
            if unknown := set(settings) - {"context_window", "max_output_tokens", "prices", "structured_output"}:
                raise EndpointConfigError(f"{where}: model {model!r}: unknown field(s) {', '.join(sorted(unknown))}")
            models[model] = EndpointModel(
                name=model,
                context_window=_int(where, f"{model}.context_window", settings["context_window"])
                if "context_window" in settings else None,
                max_output_tokens=_int(where, f"{model}.max_output_tokens", settings["max_output_tokens"])
                if "max_output_tokens" in settings else None,
                prices=_prices(f"{where}: model {model!r}", settings["prices"]) if "prices" in settings else None,
                structured_output=_bool(where, f"{model}.structured_output", settings["structured_output"])
                if "structured_output" in settings else None,
            )
        endpoints[name] = Endpoint(
            name=name,
            base_url=base_url,
            api_key=api_key or "none",  # the openai SDK refuses an empty key; local servers ignore it
            max_in_flight=_int(where, "max_in_flight", raw.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)),
            context_window=None if probe else context,
            probe=probe,
            max_output_tokens=_int(where, "max_output_tokens", raw["max_output_tokens"])
            if "max_output_tokens" in raw else None,
            models=models,
            prices=_prices(where, raw["prices"]) if "prices" in raw else None,
            structured_output=_bool(where, "structured_output", raw.get("structured_output", True)),
        )
    return endpoints


def in_flight_limits(endpoints: Mapping[str, Endpoint]) -> dict[str, int]:
    """name -> max parallel requests, for analysis.engine.limits.ProviderLimiter."""
    return {name: endpoint.max_in_flight for name, endpoint in endpoints.items()}
