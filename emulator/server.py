"""A loopback HTTP server that speaks the OpenAI, Anthropic and Gemini wire protocols.

Why it exists: the provider SDKs installed here sit on ``httpx2``, which respx and
pytest-httpx cannot intercept, and the workers that call providers run in other
processes. So tests and benchmarks need a *real* HTTP server that the official SDKs
accept byte for byte, that answers deterministically (so a test can tell which prompt
arrived), and that can be told over HTTP to misbehave in the ways real providers do
(429s with Retry-After, 529 overload, quota errors, malformed bodies, dropped
connections, truncated or blocked output, context overflow, cache/reasoning usage).

Standard library only, so it starts anywhere the project's Python does. This module is the
HTTP server and its route table; the protocols, the fault language (``fault_specs``), the
shared state and the control plane are the package's other modules.

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
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator import anthropic_protocol, control, gemini_protocol, openai_protocol
from emulator import batches as emulator_batches
from emulator.control import EmulatorClient
from emulator.fault_specs import FAULT_KINDS, faults
from emulator.prompt import PROVIDERS, estimate_tokens
from emulator.protocol import Reply, Request, Route, json_reply
from emulator.state import DEFAULT_CONFIG, EmulatorState

# The package's public names (emulator/__init__.py exports these); tests and the bench import
# several of them from here, so the ones defined in the other modules stay importable here too.
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

# A protocol module plugs in with one line here. The first row that fits a request answers it;
# rows marked fallback come after all the others (see protocol.Route).
ROUTES: list[Route] = [
    *emulator_batches.routes(),  # batch protocols, flex refusals, /_emulator/batches (emulator/batches.py)
    *control.ROUTES,
    *openai_protocol.ROUTES,
    # Gemini before Anthropic: on GET /v1/models a Google key wins over Anthropic's headers.
    *gemini_protocol.ROUTES,
    *anthropic_protocol.ROUTES,
]


def route(request: Request, routes: list[Route] = ROUTES) -> Reply | None:
    """Answer a request from the table (None: drop the connection)."""
    for row in sorted(routes, key=lambda r: r.fallback):
        params = row.match(request)
        if params is not None:
            request.params = params
            return row.handler(request)
    return json_reply(404, {"error": {"message": f"no route {request.method} {request.path}",
                                      "type": "invalid_request_error", "code": None}})


class EmulatorServer(ThreadingHTTPServer):
    # Handler threads must not keep the process alive, and stop() must not wait for
    # requests sleeping through a configured latency.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # Benchmarks open a thousand connections at once; the default backlog of 5 refuses some (the kernel caps it
    # at net.core.somaxconn).
    request_queue_size = 4096

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

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str]) -> None:
        # Always a Content-Length: HTTP/1.1 keep-alive clients need it to find the end.
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        try:
            request = Request(method=method, path=parts.path, query=urllib.parse.parse_qs(parts.query),
                              headers=self.headers, state=self.server.state, log=self.log_message,
                              body=self._read_body() if method in ("POST", "DELETE") else b"")
            reply = route(request)
            if reply is None:
                self.close_connection = True  # fault kind "drop": no answer at all
                return
            self._send(*reply)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - an emulator bug must not hang the client
            self.close_connection = True
            sys.stderr.write(f"emulator: error on {method} {parts.path}: {exc!r}\n")
            try:
                self._send(*json_reply(500, {"error": {"message": f"emulator error: {exc!r}",
                                                       "type": "server_error", "code": None}}))
            except OSError:
                pass


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
        return self.state.snapshot_faults()

    def configure(self, **kw: Any) -> dict[str, Any]:
        return self.state.configure(kw)

    def config(self) -> dict[str, Any]:
        return self.state.snapshot_config()

    def stats(self) -> dict[str, Any]:
        return self.state.snapshot_stats()

    def reset(self) -> None:
        self.state.reset()
