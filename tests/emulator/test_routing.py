"""The server's route table: how a row is chosen, and that a new protocol module joins it with one line
(the batch endpoints will), ahead of a protocol's catch-all."""

from __future__ import annotations

from emulator import server
from emulator.protocol import Request, Route, json_reply
from emulator.state import DEFAULT_CONFIG, EmulatorState


def request(method: str, path: str, headers: dict[str, str] | None = None) -> Request:
    return Request(method=method, path=path, query={}, headers=headers or {}, body=b"",
                   state=EmulatorState(DEFAULT_CONFIG))


def answered_by(name: str):
    return lambda req: json_reply(200, {"by": name, **req.params})


def test_fallback_rows_come_last_and_guards_pick_between_protocols() -> None:
    table = [
        Route("GET", r"/v1/things", answered_by("catch-all"), fallback=True),
        Route("GET", r"/v1/things", answered_by("guarded"), when=lambda req: "x-guard" in req.headers),
        Route(None, r"/any/(?P<rest>.*)", answered_by("any method")),
    ]
    assert server.route(request("GET", "/v1/things"), table)[1] == b'{"by":"catch-all"}'
    assert server.route(request("GET", "/v1/things", {"x-guard": "1"}), table)[1] == b'{"by":"guarded"}'
    assert server.route(request("DELETE", "/any/a/b"), table)[1] == b'{"by":"any method","rest":"a/b"}'


def test_no_row_is_an_openai_shaped_404() -> None:
    status, payload, content_type, _ = server.route(request("PUT", "/v1/chat/completions"))
    assert (status, content_type) == (404, "application/json")
    assert payload == b'{"error":{"message":"no route PUT /v1/chat/completions","type":"invalid_request_error",' \
                      b'"code":null}}'
    assert server.route(request("GET", "/v1/chat/completions/extra"))[0] == 404  # patterns match whole paths


def test_a_new_protocol_module_plugs_in_with_one_line() -> None:
    # A fictional protocol (the batch protocols really plugged in this way: emulator/batches.py).
    widgets = [Route("POST", r"/v1beta/models/(?P<model>.*):widgetContent", answered_by("gemini widgets")),
               Route("GET", r"/v1/widgets/(?P<widget_id>[^/]+)", answered_by("openai widgets"))]
    table = [*server.ROUTES, *widgets]
    # Listed after Gemini's catch-all for model methods, and still chosen before it.
    answer = server.route(request("POST", "/v1beta/models/gemini-2.5-flash:widgetContent"), table)
    assert answer[1] == b'{"by":"gemini widgets","model":"gemini-2.5-flash"}'
    status, payload, _, _ = server.route(request("GET", "/v1/widgets/widget_1"), table)
    assert (status, payload) == (200, b'{"by":"openai widgets","widget_id":"widget_1"}')
    assert server.route(request("POST", "/v1beta/models/gemini-2.5-flash:widgetContent"))[0] == 404


def test_the_table_holds_every_protocol_and_the_control_plane() -> None:
    health = server.route(request("GET", "/_emulator/health"))
    assert (health[0], health[1]) == (200, b'{"ok":true}')
    paths = {row.pattern for row in server.ROUTES}
    assert {r"/v1/chat/completions", r"/v1/messages", r"/_emulator/(?P<name>.*)"} <= paths
    assert any(":" in p and "generateContent" in p for p in paths)
