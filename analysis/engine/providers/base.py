"""The provider interface: a prompt in; text, usage and finish state out.

Providers know nothing of Django models or jobs. Each provider module turns its
SDK's answers and exceptions into `Completion` and `ProviderError`, so that the
retry loop (analysis/engine/retry.py) and the cost code see one vocabulary.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Generic, Protocol, TypeVar

import httpx2

from analysis.engine.providers.usage import Usage


@dataclass(frozen=True)
class Prompt:
    """A request laid out for the providers' prompt caches.

    `system` and `document` form the prefix shared by every task of a job (byte
    identical), `instruction` comes last and is the only part that varies.
    """

    system: str
    document: str
    instruction: str
    cache_key: str = ""  # stable per transcript (OpenAI prompt_cache_key)


@dataclass(frozen=True)
class GenerationParams:
    max_output_tokens: int
    temperature: float | None = None
    reasoning_model: bool = False
    # Structured output (analysis/engine/structured.py): the JSON Schema the answer must follow, sent through the
    # provider's native structured output; None: free text.
    schema: dict | None = None
    schema_name: str = "answer"
    schema_strict: bool = False
    # The provider's flex tier (analysis/engine/processing.py): "flex", or None for the standard tier; flex requests
    # get their own, longer timeout (FLEX_REQUEST_TIMEOUT).
    service_tier: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: str = ""
    truncated: bool = False  # cut off by the output limit
    blocked: bool = False  # refused or filtered; `finish_reason` says why


# Kinds of failure, used for retry decisions, messages and metrics.
RATE_LIMIT = "rate_limit"
SERVER = "server_error"
TIMEOUT = "timeout"
CONNECTION = "connection"
MALFORMED = "malformed_response"
AUTH = "auth"
PERMISSION = "permission"
NOT_FOUND = "not_found"
BAD_REQUEST = "bad_request"
CONTEXT_LENGTH = "context_length"
QUOTA = "quota_exhausted"
NOT_CONFIGURED = "not_configured"
BLOCKED = "blocked"  # a completion the provider refused or filtered (content policy)
CIRCUIT_OPEN = "circuit_open"  # not sent: the model's circuit is open (analysis/engine/health.py)

RETRYABLE_KINDS = frozenset({RATE_LIMIT, SERVER, TIMEOUT, CONNECTION, MALFORMED})


@dataclass
class ProviderError(Exception):
    provider: str
    kind: str
    message: str
    status: int | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait
    details: dict = field(default_factory=dict)
    sent: bool = True  # False: refused before a request went out (its circuit open): no try to count

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        return self.message


class Provider(Protocol):
    name: str
    label: str

    def complete(self, *, model: str, prompt: Prompt, params: GenerationParams) -> Completion: ...


def parse_retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
                return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                return None
    return None


def retry_after(exc: Exception) -> float | None:
    """The wait an SDK's error answer asks for, read from its response's headers."""
    return parse_retry_after(getattr(getattr(exc, "response", None), "headers", None))


def status_kind(status: int) -> str:
    """The kind of failure an HTTP status means, before a provider's own reading of the body."""
    if status == 429:
        return RATE_LIMIT
    if status in (408,):
        return TIMEOUT
    if status >= 500:
        return SERVER
    if status == 401:
        return AUTH
    if status == 403:
        return PERMISSION
    if status == 404:
        return NOT_FOUND
    if status == 402:
        return QUOTA
    return BAD_REQUEST


def status_error(provider: Provider, status: int, message: str, *, kind: str | None = None,
                 retry_after: float | None = None) -> ProviderError:
    """The ProviderError for an HTTP error answer, its message in the one wording all providers share.

    `kind`: what the provider module read in the body (a quota, a context overflow); else status_kind().
    """
    kind = kind or status_kind(status)
    label = provider.label
    if kind == AUTH:
        text = f"{label} rejected the API key ({status})"
    elif kind == PERMISSION:
        text = f"{label} refused access ({status}): {message[:200]}"
    elif kind == QUOTA:
        text = f"{label} account is out of quota or credit ({status}): {message[:200]}"
    elif kind == RATE_LIMIT:
        text = f"{label} rate limit ({status}): {message[:200]}"
    else:
        text = f"{label} error {status}: {message[:300]}"
    return ProviderError(provider.name, kind, text, status=status, retry_after=retry_after)


@dataclass(frozen=True)
class SdkErrors:
    """Which exceptions of one SDK mean which failure. `timeout` is tried before `connection`: in every
    SDK here a timeout is a kind of connection error."""

    status: type[Exception]  # the server answered with an HTTP error
    timeout: type[Exception]
    connection: type[Exception]
    malformed: tuple[type[Exception], ...]  # an answer the SDK could not read


@contextmanager
def sdk_errors(provider: Provider, errors: SdkErrors,
               read_status: Callable[[Exception], ProviderError]) -> Iterator[None]:
    """The SDK exceptions raised inside, as ProviderError; `read_status` reads an HTTP error answer."""
    try:
        yield
    except errors.status as exc:
        raise read_status(exc) from exc
    except errors.timeout as exc:
        raise ProviderError(provider.name, TIMEOUT, f"{provider.label} did not answer in time") from exc
    except errors.connection as exc:
        raise ProviderError(provider.name, CONNECTION, f"{provider.label} connection failed: {exc}") from exc
    except errors.malformed as exc:
        raise ProviderError(provider.name, MALFORMED, f"{provider.label} sent a malformed response") from exc


def http_client_args(connections: int | None, context: ssl.SSLContext | None) -> dict | None:
    """The arguments of one provider client's HTTP client, None for the SDK's defaults: a pool of `connections`,
    every one kept alive (a worker at full load reuses each between calls instead of reconnecting), and the TLS
    context its provider's clients share, if they share one."""
    if not connections:
        return None
    args: dict = {"limits": httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)}
    if context is not None:
        args["verify"] = context
    return args


# An HTTP connection pool assigns requests to connections by walking every connection it holds, as each request
# starts and again as it ends: with a thousand connections in one pool that walk cost a call more of the worker's
# CPU than sending it. A provider's connections are therefore split among clients of at most this many.
SHARD_CONNECTIONS = 64

SdkClient = TypeVar("SdkClient")


class ClientShards(Generic[SdkClient]):
    """One provider's SDK clients, `max_connections` HTTP connections in all (one client when they fit in
    SHARD_CONNECTIONS), built by `build(connections, ssl_context)`; a call leases the client with the most free
    connections, so whenever fewer than `max_connections` calls are out one of them has a free connection.
    The clients share one TLS context (certificates loaded once); a single client keeps its SDK's own."""

    def __init__(self, build: Callable[[int | None, ssl.SSLContext | None], SdkClient],
                 max_connections: int | None) -> None:
        if not max_connections or max_connections <= SHARD_CONNECTIONS:
            self.sizes = [max_connections or 0]
            self.clients = [build(max_connections, None)]
        else:
            count = -(-max_connections // SHARD_CONNECTIONS)
            base, extra = divmod(max_connections, count)
            self.sizes = [base + (1 if i < extra else 0) for i in range(count)]
            context = httpx2.create_ssl_context()
            self.clients = [build(size, context) for size in self.sizes]
        self._busy = [0] * len(self.clients)
        self._lock = threading.Lock()

    @property
    def first(self) -> SdkClient:
        """The client for calls that are few (batch APIs, listings): any would do."""
        return self.clients[0]

    @contextmanager
    def lease(self) -> Iterator[SdkClient]:
        if len(self.clients) == 1:
            yield self.clients[0]
            return
        with self._lock:
            index = max(range(len(self.clients)), key=lambda i: self.sizes[i] - self._busy[i])
            self._busy[index] += 1
        try:
            yield self.clients[index]
        finally:
            with self._lock:
                self._busy[index] -= 1
