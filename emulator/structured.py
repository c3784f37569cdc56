"""Structured output in the emulator: a request with a JSON Schema (OpenAI `response_format`, Anthropic
`output_config.format`, Gemini `generationConfig.responseJsonSchema`; each protocol's `schema()` finds
it) is answered with JSON generated from that schema, deterministically. Citations point at real
`[T<n>]` turns of the prompt (or `[M<m> T<n>]` turns of a question across meetings, citing the meeting too)
and quote their first words; a reduce request (`<partial_answer>` blocks
of JSON) is answered with the partials merged. Faults break it on purpose: invalid JSON, JSON breaking
the schema, citations of turns that do not exist, misquotes.
"""

from __future__ import annotations

import json
import re
from typing import Any

FAULT_KINDS = ("invalid_json", "schema_break", "bad_citation", "misquote")

_TURN = re.compile(r"^\[(?:(M\d+) )?T(\d+)\] (?:\[(\d{2}:\d{2}:\d{2})\] )?(?:[^:\n]{1,80}: )?(.*)$", re.MULTILINE)
_PARTIAL = re.compile(r"<partial_answer part=\"\d+\">\n(.*?)\n</partial_answer>", re.DOTALL)
_MARKER = re.compile(r"\{[^{}]*\}")


def _quote(words: list[str]) -> str:
    """The first words of a turn, at least four and 20 characters, never cutting "what 's" apart."""
    for end in range(4, len(words) + 1):
        quote = " ".join(words[:end])
        if len(quote) >= 20 and (end == len(words) or not words[end].startswith("'")):
            return quote
    return ""


class _Context:
    def __init__(self, text: str, schema: dict) -> None:
        self.root = schema
        self.turns: list[tuple[str | None, int, str | None, str]] = []  # meeting, turn, time, quote
        for match in _TURN.finditer(text):
            quote = _quote(_MARKER.sub(" ", match.group(4)).split())
            if quote:
                self.turns.append((match.group(1), int(match.group(2)), match.group(3), quote))
        self.next_turn = 0
        self.fault: str | None = None

    def citation(self) -> dict | None:
        if not self.turns:
            return None
        meeting, turn, _time, quote = self.turns[self.next_turn % len(self.turns)]
        self.next_turn += 1
        where = {"transcript": meeting} if meeting else {}
        if self.fault == "bad_citation":
            return {**where, "turn": 999_999, "quote": quote}
        if self.fault == "misquote":
            return {**where, "turn": turn, "quote": "words nobody said in this meeting"}
        return {**where, "turn": turn, "quote": quote}

    def times(self) -> tuple[str, str]:
        stamps = [t for _m, _n, t, _q in self.turns if t]
        return (stamps[0], stamps[-1]) if stamps else ("00:00:00", "00:00:00")


def _resolve(schema: dict, ctx: _Context) -> dict:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = ctx.root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return _resolve(node, ctx) if isinstance(node, dict) else {}
    return schema


def generate(schema: dict, ctx: _Context, key: str = "", depth: int = 0) -> Any:
    if depth > 24:  # a recursive schema: stop somewhere
        return None
    schema = _resolve(schema, ctx)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            return generate(schema[combo][0], ctx, key, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: generate(sub, ctx, name, depth + 1) for name, sub in props.items()}
    if kind == "array":
        if key == "citations":
            citation = ctx.citation()
            items = schema.get("items") or {}
            if citation is None:
                return []
            item = _resolve(items, ctx)
            if item.get("type") == "integer":
                return [citation["turn"]]
            if "transcript" not in (item.get("properties") or {}):
                citation.pop("transcript", None)
            return [citation]
        count = max(int(schema.get("minItems") or 0), 2 if depth < 3 else 1 if depth < 7 else 0)
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        return [generate(schema.get("items") or {}, ctx, key, depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date":
        return "2026-12-01"
    if fmt == "date-time":
        return "2026-12-01T10:00:00Z"
    if fmt == "email":
        return "someone@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/"
    if key in ("start", "end"):
        first, last = ctx.times()
        return first if key == "start" else last
    text = f"emulated {key or 'text'}"
    minimum = int(schema.get("minLength") or 0)
    if len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    if schema.get("maxLength") is not None:
        text = text[: int(schema["maxLength"])]
    return text


def _merge(values: list[Any]) -> Any:
    if all(isinstance(v, dict) for v in values):
        keys: list[str] = []
        for v in values:
            keys.extend(k for k in v if k not in keys)
        return {k: _merge([v[k] for v in values if k in v]) for k in keys}
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    return values[0]


def _break(value: Any, schema: dict) -> Any:
    """The value with its first property given the wrong type (or, failing that, a bare string)."""
    if isinstance(value, dict) and value:
        key = next(iter(value))
        broken = dict(value)
        broken[key] = 12345 if not isinstance(value[key], (int, float)) else "not a number"
        return broken
    return "not what the schema asks for"


def answer(prompt_text: str, schema: dict, fault_kind: str | None) -> str:
    """The JSON text of a structured answer to this prompt."""
    ctx = _Context(prompt_text, schema)
    if fault_kind == "invalid_json":
        return '{"summary": "cut off here'
    ctx.fault = fault_kind
    partials = _PARTIAL.findall(prompt_text)
    value: Any = None
    if partials:
        try:
            value = _merge([json.loads(p) for p in partials])
        except ValueError:
            value = None
    if value is None:
        value = generate(schema, ctx)
    if fault_kind == "schema_break":
        value = _break(value, schema)
    return json.dumps(value, ensure_ascii=False)
