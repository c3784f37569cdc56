"""Structured answers as Markdown, for people reading them in a terminal (the analyze command).

Generic over any schema: objects become labelled lines or bullets, lists bullets, and every
`citations` list the turns it rests on, `[T12] "quote"` (across meetings, the meeting too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _citation(citation: Any, names: Mapping[str, str]) -> str:
    if isinstance(citation, dict):
        quote = citation.get("quote")
        where = f"{names.get(citation['transcript'], citation['transcript'])} " if "transcript" in citation else ""
        return f"[{where}T{citation.get('turn')}]" + (f' "{quote}"' if quote else "")
    return f"[T{citation}]"


def citations_line(citations: list, names: Mapping[str, str] | None = None) -> str:
    """`[T12] "quote"`, or for a citation across meetings `[Launch sync (2026-11-03) T12] "quote"` (`names`: a
    transcript id's name for people; the id where it has none)."""
    return ", ".join(_citation(c, names or {}) for c in citations)


def _scalar(value: Any) -> str:
    if value is None:
        return "not stated"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip()


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _item(value: dict, indent: str) -> list[str]:
    """One object as a bullet: its scalar fields on the first line, lists below, citations last."""
    scalars = [(k, v) for k, v in value.items() if k != "citations" and _is_scalar(v)]
    nested = [(k, v) for k, v in value.items() if k != "citations" and not _is_scalar(v)]
    head = " — ".join(_scalar(v) if i == 0 else f"{k}: {_scalar(v)}" for i, (k, v) in enumerate(scalars))
    if value.get("citations"):
        head += f" ({citations_line(value['citations'])})"
    lines = [f"{indent}- {head or '(item)'}"]
    for key, sub in nested:
        lines.append(f"{indent}  - {key}:")
        lines += _block(sub, indent + "    ")
    return lines


def _block(value: Any, indent: str = "") -> list[str]:
    if isinstance(value, list):
        if not value:
            return [f"{indent}- (none)"]
        lines: list[str] = []
        for item in value:
            lines += _item(item, indent) if isinstance(item, dict) else (
                _block(item, indent + "  ") if isinstance(item, list) else [f"{indent}- {_scalar(item)}"])
        return lines
    if isinstance(value, dict):
        return _item(value, indent)
    return [f"{indent}{_scalar(value)}"]


def markdown(value: Any) -> str:
    """A task's answer: text as it is; a JSON value with one section a top-level key."""
    if isinstance(value, str):
        return value.strip()
    if not isinstance(value, dict):
        return "\n".join(_block(value))
    lines: list[str] = []
    for key, sub in value.items():
        if key == "citations":
            lines.append(f"Sources: {citations_line(sub)}")
        elif _is_scalar(sub):
            lines.append(f"**{key}**: {_scalar(sub)}")
        else:
            lines += [f"**{key}**", ""] + _block(sub) + [""]
    return "\n".join(lines).strip()
