"""The settings' helpers: each reads one environment variable and fails loudly (ImproperlyConfigured,
naming the variable) on a malformed value rather than falling back to a default."""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()


def _env_number(name: str, default, *, cast, kind: str, minimum):
    raw = env.str(name, default=str(default))
    try:
        value = cast(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    return _env_number(name, default, cast=int, kind="an integer", minimum=minimum)


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    return _env_number(name, default, cast=float, kind="a number", minimum=minimum)


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="true" if default else "false").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_endpoints(text: str, path: str) -> dict:
    """Named endpoints from OPENAI_COMPATIBLE_ENDPOINTS (`text`, JSON) or the file OPENAI_COMPATIBLE_ENDPOINTS_FILE
    names (`path`)."""
    from analysis.engine.openai_compatible import EndpointConfigError, parse_endpoints

    variable = "OPENAI_COMPATIBLE_ENDPOINTS"
    if path:
        if text.strip():
            raise ImproperlyConfigured("Set OPENAI_COMPATIBLE_ENDPOINTS or OPENAI_COMPATIBLE_ENDPOINTS_FILE, not both")
        variable = "OPENAI_COMPATIBLE_ENDPOINTS_FILE"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ImproperlyConfigured(f"OPENAI_COMPATIBLE_ENDPOINTS_FILE: cannot read {path!r} ({exc.strerror})") from None
    try:
        return parse_endpoints(text, env=os.environ)
    except EndpointConfigError as exc:
        raise ImproperlyConfigured(f"{variable}: {exc}") from None


_RATE_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
                 "d": 86400, "day": 86400}


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    """A request rate "N/period" (period: s, min, hour, day) as (N, seconds); "none": no limit."""
    raw = env.str(name, default=default).strip().lower()
    if raw in {"none", "off", "0"}:
        return None
    count, _, period = raw.partition("/")
    try:
        limit = int(count)
    except ValueError:
        limit = 0
    if limit < 1 or period not in _RATE_PERIODS:
        raise ImproperlyConfigured(f"{name} must look like 60/min (s, min, hour, day) or none, got {raw!r}")
    return limit, _RATE_PERIODS[period]


def env_seconds_list(name: str, default: str) -> list[float]:
    raw = env.str(name, default=default)
    try:
        values = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be comma-separated seconds, got {raw!r}") from None
    if any(v < 0 for v in values):
        raise ImproperlyConfigured(f"{name} must not contain negative delays, got {raw!r}")
    return values


def env_model_fallbacks(name: str) -> dict[str, list[dict[str, str]]]:
    """The server's fallback chains per model (JSON {"model": [{"provider", "model"}, ...]}); whether their
    providers and models can run is checked by the system checks (analysis/checks.py)."""
    from analysis.engine.fallbacks import ChainError, parse_defaults

    try:
        return parse_defaults(env.str(name, default=""))
    except ChainError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_host_ports(name: str) -> list[tuple[str, int]]:
    """A comma-separated list of host:port (an IPv6 host in brackets, [::1]:26379); empty when unset."""
    raw = env.str(name, default="")
    addresses = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, _, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{name} must be host:port[,host:port...], got {raw!r}")
        addresses.append((host, int(port)))
    return addresses
