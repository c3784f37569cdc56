"""JSON Schema helpers for structured tasks: what a schema given at submit must be, how providers name and
take it, and what an answer's mismatches read like.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

# Caps on a schema given at submit: a provider rejects huge or deeply nested schemas, and a schema is
# validated against every answer.
SCHEMA_MAX_CHARS = 16_000
SCHEMA_MAX_DEPTH = 12


class UnusableSchema(ValueError):
    """A schema no provider can take or no answer can be checked against."""


def _depth(node: Any, level: int = 0) -> int:
    if isinstance(node, dict):
        return max([_depth(v, level + 1) for v in node.values()] or [level + 1])
    if isinstance(node, list):
        return max([_depth(v, level + 1) for v in node] or [level + 1])
    return level


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def check_schema(schema: Any) -> None:
    """A JSON Schema (Draft 2020-12) every provider can take: an object at the root, local $refs only,
    within the size and depth caps. Raises UnusableSchema, whose message follows "the schema ..."."""
    if not isinstance(schema, dict):
        raise UnusableSchema("must be a JSON Schema object")
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > SCHEMA_MAX_CHARS:
        raise UnusableSchema(f"is {size} characters as JSON; the limit is {SCHEMA_MAX_CHARS}")
    depth = _depth(schema)
    if depth > SCHEMA_MAX_DEPTH:
        raise UnusableSchema(f"is nested {depth} levels deep; the limit is {SCHEMA_MAX_DEPTH}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise UnusableSchema(f"is not a valid JSON Schema (Draft 2020-12) at {where}: {exc.message}") from None
    if schema.get("type") != "object":
        raise UnusableSchema('must describe an object at its root ("type": "object"): providers\' structured '
                            "output takes no other root")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise UnusableSchema(f"may only use local references ($ref \"#/...\"), not {ref!r}")
        if _pointer(schema, ref) is None:
            raise UnusableSchema(f"has a $ref {ref!r} that points at nothing in the schema")
    try:
        # What the worker will do with every answer: a schema it cannot apply fails here, not there.
        list(Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).iter_errors({}))
    except Exception as exc:  # noqa: BLE001 - any failure of the validator is a schema we cannot use
        raise UnusableSchema(f"cannot be applied to an answer: {type(exc).__name__}: {str(exc)[:200]}") from None


def _pointer(schema: dict, ref: str) -> Any:
    node: Any = schema
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def schema_name(task_name: str) -> str:
    """OpenAI's json_schema name: [a-zA-Z0-9_-], at most 64 characters."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", task_name).strip("_") or "answer"
    return name[:64]


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes the schema: every object closed, every property required."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(props):
                return False
        return all(strict_compatible(v) for k, v in schema.items() if k not in ("enum", "const", "default",
                                                                                  "examples"))
    if isinstance(schema, list):
        return all(strict_compatible(v) for v in schema)
    return True


def schema_problems(value: Any, schema: dict) -> str:
    """How `value` fails `schema` (the first three errors), for a repair request; "" when it validates."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return ""
    shown = []
    for error in errors[:3]:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        shown.append(f"at {where}: {error.message[:200]}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "it does not match the schema: " + "; ".join(shown) + more
