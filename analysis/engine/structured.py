"""Structured, cited and language-bound tasks: what they send, and how their answers are checked.

A task is a prompt string or `{"prompt", "schema"?, "cite"?}`, and a job or profile may
name an output `language`. A plain prompt without a language is sent, stored and answered as it is.
Anything else is stored in the task's `prompt` column as one envelope string (ENVELOPE + JSON),
so that everything keyed on the prompt (result reuse, the worker's TaskSpec, the estimate) carries the
schema with it, and the runner turns it back into a `TaskRequest` (decode_task).

The answer of a task with a schema (or `cite`) is stored in the task's `output` column as JSON:
`{"value": <the JSON value or, for cite on a text task, the text>, "citations_checked", "citations_rejected",
"references"?}`; stored_result() gives back what the job document shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from analysis.engine import citations, turns
from analysis.engine.providers.base import GenerationParams, Prompt
from analysis.engine.schemas import UnusableSchema, check_schema, schema_name, schema_problems, strict_compatible

ENVELOPE = "sr-task/1 "

LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")

CITATION_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "turn": {"type": "integer", "minimum": 1, "description": "the number N of the [TN] turn"},
        "quote": {"type": "string", "description": "a few words copied exactly from that turn"},
    },
    "required": ["turn", "quote"],
    "additionalProperties": False,
}

# A citation in an answer across meetings (analysis/engine/ask.py): the meeting as well as its turn.
ACROSS_CITATION_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "transcript": {"type": "string", "description": "the meeting M<m> of the [M<m> T<n>] turn"},
        **CITATION_SCHEMA["properties"],
    },
    "required": ["transcript", "turn", "quote"],
    "additionalProperties": False,
}


def _cited_text_schema(citation: dict) -> dict:
    """What a plain-text task with "cite": true asks for: its text, plus the turns it rests on."""
    return {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "references": {"type": "array", "items": {
                "type": "object",
                "properties": {"claim": {"type": "string"},
                               "citations": {"type": "array", "items": citation}},
                "required": ["claim", "citations"], "additionalProperties": False}},
        },
        "required": ["text", "references"],
        "additionalProperties": False,
    }


CITED_TEXT_SCHEMA: dict = _cited_text_schema(CITATION_SCHEMA)
CITED_ACROSS_SCHEMA: dict = _cited_text_schema(ACROSS_CITATION_SCHEMA)


class TaskSpecError(ValueError):
    """A task object or schema that cannot be accepted; the message names what is wrong, `field` the key
    of the task object it is about ("" for the task as a whole)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class AnswerError(ValueError):
    """An answer that does not satisfy its task (after the repair try)."""


@dataclass(frozen=True)
class TaskRequest:
    prompt: str
    schema: dict | None = None
    cite: bool = False
    language: str = ""
    # Cited across several meetings (analysis/engine/ask.py): citations name their transcript too. Set by an
    # ask job only, never by a task object sent to analyze.
    across: bool = False

    @property
    def plain(self) -> bool:
        return self.schema is None and not self.cite and not self.language

    @property
    def structured(self) -> bool:
        """Answered as JSON (a schema of its own, or cite on a text task)."""
        return self.schema is not None or self.cite

    @property
    def cites(self) -> bool:
        return self.cite or (self.schema is not None and mentions_citations(self.schema))

    @property
    def wire_schema(self) -> dict | None:
        if self.schema is not None:
            return self.schema
        if not self.cite:
            return None
        return CITED_ACROSS_SCHEMA if self.across else CITED_TEXT_SCHEMA


def mentions_citations(schema: Any) -> bool:
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict) and "citations" in props:
            return True
        return any(mentions_citations(v) for v in schema.values())
    if isinstance(schema, list):
        return any(mentions_citations(v) for v in schema)
    return False


# --- storage -------------------------------------------------------------------------------------
def encode_task(request: TaskRequest) -> str:
    if request.plain:
        return request.prompt
    data: dict[str, Any] = {"prompt": request.prompt}
    if request.schema is not None:
        data["schema"] = request.schema
    if request.cite:
        data["cite"] = True
    if request.language:
        data["language"] = request.language
    if request.across:
        data["across"] = True
    return ENVELOPE + json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_task(stored: str) -> TaskRequest:
    if not stored.startswith(ENVELOPE):
        return TaskRequest(prompt=stored)
    data = json.loads(stored[len(ENVELOPE):])
    return TaskRequest(prompt=data["prompt"], schema=data.get("schema"), cite=bool(data.get("cite")),
                       language=data.get("language") or "", across=bool(data.get("across")))


def with_language(stored: str, language: str) -> str:
    """The stored task with the job's language, unless the task names its own."""
    if not language:
        return stored
    request = decode_task(stored)
    return stored if request.language else encode_task(replace(request, language=language))


def stored_result(prompt: str, output: str) -> tuple[Any, dict]:
    """(what `results[name]` shows, extra task metadata) for a stored task."""
    if not prompt.startswith(ENVELOPE) or not decode_task(prompt).structured:
        return output, {}
    try:
        data = json.loads(output)
    except ValueError:
        return output, {}
    extra = {"citations_checked": data.get("citations_checked", 0),
             "citations_rejected": data.get("citations_rejected", 0)}
    if data.get("times_rejected"):
        extra["times_rejected"] = data["times_rejected"]
    if data.get("citation_problems"):
        extra["citation_problems"] = data["citation_problems"]  # the first few rejections, why
    if "references" in data:
        extra["references"] = data["references"]
    if "consulted" in data:
        extra["consulted"] = data["consulted"]  # what an answer across meetings read (analysis/engine/ask.py)
    return data.get("value"), extra


def encode_result(value: Any, report: citations.CitationReport, references: list | None = None,
                  times_rejected: int = 0) -> str:
    data: dict[str, Any] = {"value": value, "citations_checked": report.checked,
                            "citations_rejected": report.rejected}
    if times_rejected:
        data["times_rejected"] = times_rejected
    if report.reasons:
        data["citation_problems"] = report.reasons
    if references is not None:
        data["references"] = references
    return json.dumps(data, ensure_ascii=False)


def task_object(value: Any, *, name: str) -> TaskRequest:
    """A task as sent at submit: a prompt string or {"prompt", "schema"?, "cite"?}. The prompt itself is
    checked by the caller (length, NUL); the schema here."""
    if isinstance(value, str):
        if value.startswith(ENVELOPE):
            raise TaskSpecError(f"the prompt of task {name!r} must not start with {ENVELOPE.strip()!r}")
        return TaskRequest(prompt=value)
    if not isinstance(value, dict):
        raise TaskSpecError(f'task {name!r} must be a prompt string or an object {{"prompt", "schema"?, "cite"?}}')
    unknown = sorted(set(value) - {"prompt", "schema", "cite"})
    if unknown:
        raise TaskSpecError(f"task {name!r} has unknown keys: {', '.join(unknown)}")
    prompt = value.get("prompt")
    if not isinstance(prompt, str):
        raise TaskSpecError(f"the prompt of task {name!r} must be a string")
    if prompt.startswith(ENVELOPE):
        raise TaskSpecError(f"the prompt of task {name!r} must not start with {ENVELOPE.strip()!r}")
    cite = value.get("cite", False)
    if not isinstance(cite, bool):
        raise TaskSpecError(f"`cite` of task {name!r} must be true or false")
    schema = value.get("schema")
    if schema is not None:
        try:
            check_schema(schema)
        except UnusableSchema as exc:
            raise TaskSpecError(str(exc), field="schema") from None
    return TaskRequest(prompt=prompt, schema=schema, cite=cite and schema is None)


def check_language(value: str) -> str:
    value = value.strip()
    if not LANGUAGE_TAG.match(value) or len(value) > 35:
        raise TaskSpecError(f"{value!r} is not a BCP 47 language tag such as \"en\" or \"pt-BR\"")
    return value


# --- what is sent --------------------------------------------------------------------------------
CITE_INSTRUCTION = (
    "Every line of the transcript starts with its turn number, [T<n>]. Support each item with `citations`: "
    "the turns it rests on, each as {\"turn\": n, \"quote\": a few words (at least three) copied exactly from "
    "that turn}. Cite only turns that exist and quote only words they contain."
)
ACROSS_CITE_INSTRUCTION = (
    "Every line of the meetings starts with its meeting and turn, [M<m> T<n>]. Support each claim with "
    "`citations`: the turns it rests on, each as {\"transcript\": \"M<m>\", \"turn\": n, \"quote\": a few words (at "
    "least three) copied exactly from that turn}. Cite only turns that exist and quote only words they contain."
)


def instruction(request: TaskRequest) -> str:
    parts = [request.prompt]
    if request.schema is not None:
        parts.append("Answer with one JSON value that follows the response schema, and nothing else.")
    elif request.cite:
        parts.append("Answer with JSON: the answer in `text`, and in `references` each claim of it with "
                     "its citations.")
    if request.cites:
        parts.append(ACROSS_CITE_INSTRUCTION if request.across else CITE_INSTRUCTION)
    if request.language:
        parts.append(f"Write the answer (every text value) in the language with BCP 47 tag {request.language}.")
    elif not request.plain:
        parts.append(f"Write the answer in the language of the {'meetings' if request.across else 'transcript'}.")
    return "\n\n".join(parts)


def params_for(request: TaskRequest, *, name: str, params: GenerationParams) -> GenerationParams:
    schema = request.wire_schema
    if schema is None:
        return params
    return replace(params, schema=schema, schema_name=schema_name(name), schema_strict=strict_compatible(schema))


def transcript_for(request: TaskRequest, transcript: str) -> str:
    return turns.indexed_transcript(transcript) if request.cites else transcript


def repair_prompt(*, system: str, request: TaskRequest, answer: str, problem: str) -> Prompt:
    """The one follow-up call for an answer that failed its checks: the answer and what was wrong."""
    return Prompt(
        system=system,
        document=f"<previous_answer>\n{answer}\n</previous_answer>",
        instruction=(
            f"Task: {instruction(request)}\n\nThe previous answer above is not acceptable: {problem}\n"
            "Return the corrected answer: one JSON value that follows this JSON Schema, and nothing else.\n"
            + json.dumps(request.wire_schema, ensure_ascii=False)
        ),
    )


# --- what comes back -----------------------------------------------------------------------------
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_answer(text: str, schema: dict) -> tuple[Any, str]:
    """(value, problem): problem is "" when the text is JSON that validates."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError as exc:
        return None, f"it is not valid JSON ({exc})"
    problem = schema_problems(value, schema)
    return value, problem


def finish(text: str, request: TaskRequest, *, transcript: str = "", repair: Callable[[str, str], str],
           transcripts: Mapping[str, Mapping[int, str]] | None = None) -> str:
    """The stored output of a structured task's answer: parsed, validated (one repair call through
    `repair(answer, problem)` when it fails), citations checked: against `transcript`, or for an answer across
    meetings against `transcripts` (each meeting's turns, by the name its citations give). Raises AnswerError."""
    schema = request.wire_schema
    assert schema is not None
    value, problem = parse_answer(text, schema)
    if problem:
        text = repair(text, problem)
        value, problem = parse_answer(text, schema)
        if problem:
            raise AnswerError(f"The answer was still invalid after one repair try: {problem}")
    report = citations.CitationReport()
    if request.across:
        value, report = citations.check_across(value, transcripts or {}, report)
    elif request.cites:
        value, report = citations.check_value(value, turns.turn_texts(transcript), report)
    if request.cites:
        problem = schema_problems(value, schema)
        if problem:
            raise AnswerError(f"{report.rejected} citation(s) failed the transcript check "
                              f"({'; '.join(report.reasons or [])}) and removing them breaks the schema: {problem}")
    value, times_rejected = check_times(value, transcript) if not request.across else (value, 0)
    if times_rejected:
        problem = schema_problems(value, schema)
        if problem:
            raise AnswerError(f"{times_rejected} time(s) lie outside the transcript and removing them breaks the "
                              f"schema: {problem}")
    if request.schema is None:  # cite on a text task: the text is the result, the references beside it
        return encode_result(value["text"], report, references=value.get("references") or [])
    return encode_result(value, report, times_rejected=times_rejected)


# A chapter may end this long after the last turn starts (the last turn lasts; the transcript says not how
# long: MERGE_SPAN_SECONDS in analysis/engine/transcripts.py bounds a merged turn).
LAST_TURN_GRACE_SECONDS = 120.0
_TIME = re.compile(r"^\[?(?:(\d{1,3}):)?(\d{1,2}):(\d{2})(?:[.,]\d+)?\]?$")


def _seconds(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    match = _TIME.match(value.strip())
    if not match:
        return None
    return int(match.group(1) or 0) * 3600 + int(match.group(2)) * 60 + int(match.group(3))


def check_times(value: Any, transcript: str) -> tuple[Any, int]:
    """Objects with a `start` and an `end` (chapters): times that do not lie inside the transcript (or
    any time at all when it has none) become null, and are counted."""
    span = turns.time_range(transcript)
    rejected = 0

    def walk(node):
        nonlocal rejected
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: walk(item) for key, item in node.items()}
        if "start" in node and "end" in node:
            start, end = _seconds(node["start"]), _seconds(node["end"])
            for key, at in (("start", start), ("end", end)):
                if node[key] is None:
                    continue
                low, high = (span[0], span[1] + (LAST_TURN_GRACE_SECONDS if key == "end" else 0)) if span else (1, 0)
                if at is None or not low <= at <= high or (key == "end" and start is not None and at < start):
                    node[key] = None
                    rejected += 1
        return node

    return walk(value), rejected
