"""The engine's provider clients, built from settings: one SDK client per provider and configuration,
explicitly (an SDK never reads its own environment variables here), handed to the engine by the callers."""

from __future__ import annotations

import threading

from django.conf import settings

from analysis.engine.providers import PROVIDER_LABELS, PROVIDER_NAMES, provider_label
from analysis.engine.providers.base import NOT_CONFIGURED, Provider, ProviderError
from analysis.engine.providers.provider_batches import BatchAPI

_KEY_SETTINGS = {"gemini": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}

_clients: dict[tuple, Provider] = {}
_lock = threading.Lock()


def endpoints() -> dict:
    """The named OpenAI-compatible endpoints configured here (name -> analysis.engine.openai_compatible.Endpoint)."""
    return getattr(settings, "OPENAI_COMPATIBLE_ENDPOINTS", None) or {}


def provider_names() -> tuple[str, ...]:
    """Every name a job may give as its provider: the three providers, then the configured endpoints."""
    return (*PROVIDER_NAMES, *endpoints())


def configured_provider_names() -> tuple[str, ...]:
    """The providers with a key here, then the configured endpoints: the clients a worker may build."""
    return (*(name for name in PROVIDER_NAMES if provider_configured(name)), *endpoints())


def provider_key_setting(name: str) -> str:
    return _KEY_SETTINGS.get(name, "OPENAI_COMPATIBLE_ENDPOINTS")


def provider_configured(name: str) -> bool:
    if name in _KEY_SETTINGS:
        return bool(getattr(settings, _KEY_SETTINGS[name], ""))
    return name in endpoints()


def unknown_provider(value: str) -> str:
    return f"Unknown provider {value!r}; choose one of: {', '.join(provider_names())}."


def provider_error(value: str) -> str | None:
    """Why `value` (lower-cased) cannot run a job here: an unknown name, or no key configured; None if it can."""
    if value not in provider_names():
        return unknown_provider(value)
    if not provider_configured(value):
        return f"{provider_label(value)} is not configured on this server ({provider_key_setting(value)} is not set)."
    return None


def get_provider(name: str) -> Provider:
    """The provider client for `name`, built once per process and configuration."""
    endpoint = endpoints().get(name) if name not in PROVIDER_NAMES else None
    if endpoint is not None:
        # An OpenAI-compatible endpoint: the OpenAI client, named after the endpoint so that every error
        # says which server failed ("local-llama did not answer in time"), never "OpenAI".
        config = ("endpoint", endpoint.name, endpoint.api_key, endpoint.base_url, settings.PROVIDER_REQUEST_TIMEOUT)
        with _lock:
            client = _clients.get(config)
            if client is None:
                from analysis.engine.providers.openai_provider import OpenAIProvider

                client = OpenAIProvider(api_key=endpoint.api_key, base_url=endpoint.base_url,
                                        timeout=settings.PROVIDER_REQUEST_TIMEOUT, name=endpoint.name,
                                        label=endpoint.label, max_connections=provider_connections())
                _clients[config] = client
        return client
    if name not in PROVIDER_NAMES:
        raise ProviderError(name, NOT_CONFIGURED, f"Unknown provider {name!r}")
    api_key = getattr(settings, _KEY_SETTINGS[name], "")
    if not api_key:
        raise ProviderError(name, NOT_CONFIGURED,
                            f"{PROVIDER_LABELS[name]} is not configured on this server ({_KEY_SETTINGS[name]} is not set)")
    timeout = settings.PROVIDER_REQUEST_TIMEOUT
    if name == "openai":
        config = (name, api_key, settings.OPENAI_BASE_URL, timeout)
    elif name == "anthropic":
        config = (name, api_key, settings.ANTHROPIC_BASE_URL, timeout)
    else:
        config = (name, api_key, settings.GEMINI_BASE_URL, settings.GEMINI_API_VERSION, timeout)
    with _lock:
        client = _clients.get(config)
        if client is None:
            client = _build(config)
            _clients[config] = client
    return client


def _build(config: tuple) -> Provider:
    name, connections = config[0], provider_connections()
    if name == "openai":
        from analysis.engine.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(api_key=config[1], base_url=config[2], timeout=config[3], max_connections=connections)
    if name == "anthropic":
        from analysis.engine.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(api_key=config[1], base_url=config[2], timeout=config[3],
                                 max_connections=connections)
    from analysis.engine.providers.gemini_provider import GeminiProvider

    return GeminiProvider(api_key=config[1], base_url=config[2], api_version=config[3], timeout=config[4],
                          max_connections=connections)


def provider_connections() -> int:
    """The HTTP connections each provider's client may hold (its own pool: one provider's calls never wait on
    another's): PROVIDER_HTTP_CONNECTIONS, by default as many as a worker process sends requests at once."""
    return settings.PROVIDER_HTTP_CONNECTIONS or settings.WORKER_CALL_THREADS


def preload_sdks() -> None:
    """Import the three SDKs now, with the resource modules they would otherwise import on first use.

    Touched on throwaway clients, which send nothing and open no socket (the port is never connected to).
    """
    from analysis.engine.providers.anthropic_provider import AnthropicProvider
    from analysis.engine.providers.gemini_provider import GeminiProvider
    from analysis.engine.providers.openai_provider import OpenAIProvider

    for client in (OpenAIProvider(api_key="preload", base_url="http://127.0.0.1:9/v1", timeout=1).client.chat,
                   AnthropicProvider(api_key="preload", base_url="http://127.0.0.1:9", timeout=1).client.messages,
                   GeminiProvider(api_key="preload", base_url="http://127.0.0.1:9", api_version=None,
                                  timeout=1).client.models):
        getattr(client, "completions", None)


def warm_provider_clients() -> None:
    """Build the client of every configured provider now, in a forking worker's parent: every horse
    inherits it instead of loading CA certificates again. No request is sent, so no socket is shared
    across fork."""
    for name in PROVIDER_NAMES:
        if provider_configured(name):
            get_provider(name)
    for name, endpoint in endpoints().items():
        get_provider(name)
        endpoint.discovered_context()  # "context_window": "auto": ask the server once, before forking


def reset_provider_clients() -> None:
    """Drop cached clients (after fork, or when settings change in tests)."""
    with _lock:
        _clients.clear()


def batch_api(name: str) -> BatchAPI:
    """The batch API of provider `name`, on the same SDK client as its standard calls."""
    provider = get_provider(name)
    if name == "openai":
        from analysis.engine.providers.openai_batches import OpenAIBatches

        return OpenAIBatches(provider)
    if name == "anthropic":
        from analysis.engine.providers.anthropic_batches import AnthropicBatches

        return AnthropicBatches(provider)
    if name == "gemini":
        from analysis.engine.providers.gemini_batches import GeminiBatches

        return GeminiBatches(provider)
    raise ValueError(f"{name} has no batch API")
