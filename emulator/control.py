"""The control plane: /_emulator/{health,requests,reset,config,faults,stats} over HTTP, and
EmulatorClient, which drives it from another process (the workers' emulator is not in the test's)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from emulator.protocol import Reply, Request, Route, json_reply
from emulator.state import EmulatorState


def _requests(state: EmulatorState, payload: Any, query: dict[str, list[str]]) -> Any:
    provider = query.get("provider", [None])[0]
    since = int(query.get("since", ["0"])[0])
    limit = int(query.get("limit", ["0"])[0]) or None
    return state.snapshot_requests(provider, since, limit)


def _reset(state: EmulatorState, payload: Any, query: dict[str, list[str]]) -> Any:
    state.reset()
    return {"ok": True}


def _configure(state: EmulatorState, payload: Any, query: dict[str, list[str]]) -> Any:
    if not isinstance(payload, dict):
        raise ValueError("config body must be a JSON object")
    return state.configure(payload)


def _add_faults(state: EmulatorState, payload: Any, query: dict[str, list[str]]) -> Any:
    return state.add_faults(payload if isinstance(payload, list) else [payload])


def _clear_faults(state: EmulatorState, payload: Any, query: dict[str, list[str]]) -> Any:
    state.clear_faults()
    return {"ok": True}


_ENDPOINTS: dict[tuple[str, str], Callable[[EmulatorState, Any, dict[str, list[str]]], Any]] = {
    ("requests", "GET"): _requests,
    ("reset", "POST"): _reset,
    ("config", "GET"): lambda state, payload, query: state.snapshot_config(),
    ("config", "POST"): _configure,
    ("faults", "GET"): lambda state, payload, query: state.snapshot_faults(),
    ("faults", "POST"): _add_faults,
    ("faults", "DELETE"): _clear_faults,
    ("stats", "GET"): lambda state, payload, query: state.snapshot_stats(),
}


def control(request: Request) -> Reply:
    name = request.params["name"].strip("/")
    try:
        payload = json.loads(request.body) if request.body.strip() else None
    except ValueError:
        return json_reply(400, {"error": "body is not JSON"})
    if name == "health":
        return json_reply(200, {"ok": True})
    endpoint = _ENDPOINTS.get((name, request.method))
    if endpoint is None:
        return json_reply(404, {"error": f"no control endpoint {request.method} {request.path}"})
    try:
        return json_reply(200, endpoint(request.state, payload, request.query))
    except (ValueError, TypeError) as exc:
        return json_reply(400, {"error": str(exc)})


ROUTES = [Route(None, r"/_emulator/(?P<name>.*)", control)]


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
