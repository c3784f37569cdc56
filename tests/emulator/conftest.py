"""The emulator's tests need neither Django settings nor the suite's Redis: the same-named fixtures
below switch off tests/conftest.py's autouse ones for this folder. ``call`` sends a request through the
route table in this process (the unit tests); the SDK tests start a real server."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from emulator.protocol import Request
from emulator.server import route
from emulator.state import DEFAULT_CONFIG, EmulatorState


@pytest.fixture
def provider_endpoints() -> None:
    return None


@pytest.fixture
def clean_redis() -> None:
    return None


@dataclass
class Answer:
    status: int
    body: Any  # the parsed JSON, or the text of an answer that is not JSON
    headers: dict[str, str]
    content_type: str


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState(DEFAULT_CONFIG)


@pytest.fixture
def call(state: EmulatorState) -> Callable[..., Answer | None]:
    """One request through the server's route table, without a socket: its Answer, or None when the
    emulator drops the connection."""

    def send(method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> Answer | None:
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        parts = urllib.parse.urlsplit(path)
        reply = route(Request(method=method, path=parts.path, query=urllib.parse.parse_qs(parts.query),
                              headers=headers or {}, body=data, state=state))
        if reply is None:
            return None
        status, payload, content_type, reply_headers = reply
        try:
            parsed = json.loads(payload)
        except ValueError:  # a text body, or a malformed fault's
            parsed = payload.decode()
        return Answer(status, parsed, reply_headers, content_type)

    return send
