"""A job's report, for people: its answers with their citations, the transcript they point at, who spoke how
much, and what it cost. Two renderings of one reading of the job document (jobs/documents.py):

- HTML (`job_report`, drawn by jobs/templates/jobs/report.html, and by the admin's job page for the answers):
  free text is the model's Markdown rendered as CommonMark (markdown-it-py) and then sanitized (nh3), since the
  model's text is untrusted input; structured answers become tables and lists, every value escaped; each
  citation is a plain in-page link to its turn (`#turn-12`), whose quoted words are marked in the transcript.
- Markdown (`report_markdown`): what `manage.py analyze` prints and `GET /api/v1/jobs/{id}/report.md` answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import nh3
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from analysis.engine import render
from analysis.engine.citations import quote_span
from analysis.engine.providers.usage import USAGE_KEYS
from analysis.engine.structured import decode_task
from analysis.engine.turns import parse_turns
from jobs import charts
from jobs.documents import job_document
from jobs.models import Job, Task
from scriptripper.output_fields import usd
from scriptripper.renderers import plain_number


# --- the meeting ---------------------------------------------------------------------------------

def meeting_title_and_date(job: Job) -> tuple[str, datetime]:
    """The title and the date the report gives the meeting: its stored transcript's (the title given, and when
    the meeting took place); a job whose transcript was deleted or has no title is named by its profile
    ("Meeting notes"), dated when it was submitted."""
    fallback = job.profile_name.replace("-", " ").replace("_", " ").strip().capitalize() or "Transcript analysis"
    transcript = job.transcript_ref
    if transcript is None:
        return fallback, job.created_at
    return transcript.title or fallback, transcript.occurred_at


# --- untrusted Markdown to safe HTML -----------------------------------------------------------------

# CommonMark with tables and strikethrough; raw HTML in the text is shown as text, never passed through.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
# Then an allow-list sanitizer, whatever the renderer let through: no script, style, image (nothing that
# loads from elsewhere), form or event attribute; links only to http(s) and mail, never followed with a referrer.
_TAGS = {"p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
         "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}


def markdown_html(text: str) -> SafeString:
    html = _MARKDOWN.render(text)
    return mark_safe(nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                               link_rel="noopener noreferrer nofollow", filter_style_properties={"text-align"}))


# --- structured answers to HTML ------------------------------------------------------------------------

def _label(key: str) -> str:
    return str(key).replace("_", " ").strip().capitalize()


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _part(schema: Any, key: str) -> Any:
    """A part of a JSON Schema (its `properties`, its `items`, one property), or None where it has none."""
    return schema.get(key) if isinstance(schema, dict) else None


def citation_pairs(citations: Any) -> list[tuple[int, str]]:
    """(turn, quote) of each citation that names a turn (a checked answer keeps only those)."""
    pairs = []
    for citation in citations if isinstance(citations, list) else [citations]:
        turn, quote = (citation.get("turn"), citation.get("quote")) if isinstance(citation, dict) else (citation, "")
        if isinstance(turn, int) and not isinstance(turn, bool):
            pairs.append((turn, quote if isinstance(quote, str) else ""))
    return pairs


@dataclass(frozen=True)
class Renderer:
    """Draws one answer; `turn_href` is where a turn's anchor is (the report page itself: "")."""

    turn_href: str = ""

    def citations(self, citations: Any) -> SafeString:
        return format_html_join(" ", '<a class="cite" href="{}#turn-{}" data-turn="{}" title="{}">T{}</a>', (
            (self.turn_href, turn, turn, f"Turn {turn}: “{quote}”" if quote else f"Turn {turn}", turn)
            for turn, quote in citation_pairs(citations)))

    def scalar(self, value: Any) -> SafeString:
        if value is None:
            return mark_safe('<span class="none">not stated</span>')
        if isinstance(value, bool):
            return format_html("{}", "yes" if value else "no")
        return conditional_escape(str(value))

    def value(self, value: Any, schema: Any = None) -> SafeString:
        return self.scalar(value) if _is_scalar(value) else self.block(value, schema)

    def block(self, value: Any, schema: Any = None) -> SafeString:
        if isinstance(value, dict):
            return self.record(value, schema)
        if not value:
            return mark_safe('<p class="none">None.</p>')
        items = _part(schema, "items")
        if all(isinstance(item, dict) for item in value):
            return self.table(value, items)
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li>{}</li>", ((self.value(item, items),) for item in value)))

    def table(self, items: list[dict], schema: Any = None) -> SafeString:
        """Objects of one list as rows: a column per field, in the schema's order (then any other, as the answer
        gives them), the citations last. Each cell carries its column's name for narrow screens (report.css)."""
        declared = _part(schema, "properties")
        # `required` first: a list keeps its order where a stored object's keys may not (jsonb sorts them).
        named = [*(_part(schema, "required") or []), *(declared if isinstance(declared, dict) else {})]
        columns: list[str] = []
        for key in named:
            if isinstance(key, str) and key != "citations" and key not in columns and any(key in i for i in items):
                columns.append(key)
        for item in items:
            columns += [key for key in item if key != "citations" and key not in columns]
        sourced = any("citations" in item for item in items)
        head = format_html_join("", '<th scope="col">{}</th>', ((_label(key),) for key in columns))
        if sourced:
            head = format_html('{}<th scope="col">Sources</th>', head)
        rows = []
        for item in items:
            cells = format_html_join("", '<td data-label="{}">{}</td>', (
                (_label(key), self.value(item.get(key), _part(declared, key))) for key in columns))
            if sourced:
                cells = format_html('{}<td data-label="Sources" class="sources">{}</td>', cells,
                                    self.citations(item.get("citations") or []))
            rows.append((cells,))
        return format_html('<div class="table"><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>',
                           head, format_html_join("", "<tr>{}</tr>", rows))

    def record(self, value: dict, schema: Any = None) -> SafeString:
        declared = _part(schema, "properties")
        parts = []
        for key, sub in value.items():
            if key == "citations":
                parts.append(format_html('<p class="sources">Sources: {}</p>', self.citations(sub)))
            elif _is_scalar(sub):
                parts.append(format_html("<p><strong>{}</strong>: {}</p>", _label(key), self.scalar(sub)))
            else:
                parts.append(format_html("<h4>{}</h4>{}", _label(key), self.block(sub, _part(declared, key))))
        return format_html_join("", "{}", ((part,) for part in parts))

    def answer(self, value: Any, schema: Any = None) -> SafeString:
        """A task's answer: Markdown text, or a JSON value drawn after its schema (an object of one list shows
        the list alone: the task's heading already names it)."""
        if isinstance(value, str):
            return markdown_html(value)
        if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
            key = next(iter(value))
            return self.block(value[key], _part(_part(schema, "properties"), key))
        return self.scalar(value) if _is_scalar(value) else self.block(value, schema)

    def references(self, references: Any) -> SafeString:
        """The claims of a cited text answer, each with its sources."""
        items = [(conditional_escape(ref.get("claim", "")), self.citations(ref.get("citations") or []))
                 for ref in references or [] if isinstance(ref, dict)]
        if not items:
            return SafeString("")
        return format_html('<ul class="references">{}</ul>', format_html_join(
            "", '<li>{} <span class="sources">{}</span></li>', items))


def quotes_of(value: Any, found: dict[int, list[str]]) -> dict[int, list[str]]:
    """Every cited turn of an answer (or its references) with the quotes that cite it."""
    if isinstance(value, list):
        for item in value:
            quotes_of(item, found)
    elif isinstance(value, dict):
        for key, sub in value.items():
            if key == "citations":
                for turn, quote in citation_pairs(sub):
                    found.setdefault(turn, []).append(quote)
            else:
                quotes_of(sub, found)
    return found


# --- the report ----------------------------------------------------------------------------------

@dataclass
class TaskReport:
    name: str
    title: str
    status: str  # succeeded, failed, pending (Task.Status)
    answer: SafeString
    references: SafeString
    error: str
    reused: bool
    answered_by: str  # provider/model
    fallback_from: list[str]
    cost: str
    tokens: list[tuple[str, str]]
    latency: str
    citations_checked: int | None
    citations_rejected: int | None


@dataclass
class TurnView:
    index: int
    speaker: str | None
    time: str | None
    text: SafeString
    cited: bool


@dataclass
class JobReport:
    job_id: str
    title: str
    date: datetime
    status: str
    state: str  # the page's status colour: done, partial, failed, running
    final: bool
    model: str
    tasks: list[TaskReport]
    turns: list[TurnView]
    charts: list[SafeString]
    total_cost: str
    total_tokens: list[tuple[str, str]]
    reused: int = 0


def clock(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _tokens(usage: dict) -> list[tuple[str, str]]:
    return [(key.removesuffix("_tokens").replace("_", " "), f"{usage[key]:,}") for key in USAGE_KEYS if usage.get(key)]


def _model_name(value: Any) -> str:
    if isinstance(value, dict):
        return "/".join(str(value[key]) for key in ("provider", "model") if value.get(key))
    return str(value)


def status_line(job: Job, tasks: list[TaskReport]) -> tuple[str, str]:
    """What the report says of the job as a whole, and its state for the page's colours."""
    failed = [task.name for task in tasks if task.status == Task.Status.FAILED]
    not_run = [task.name for task in tasks if task.status == Task.Status.PENDING]
    if job.status == Job.Status.FINISHED and (failed or not_run):
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(tasks)} tasks failed ({', '.join(failed)})")
        if not_run:
            parts.append(f"{len(not_run)} not run ({', '.join(not_run)})")
        return "Finished with errors: " + "; ".join(parts), "partial"
    if job.status == Job.Status.FINISHED:
        return "Finished", "done"
    if job.status == Job.Status.FAILED:
        return f"Failed: {job.error}" if job.error else "Failed", "failed"
    if job.status == Job.Status.CANCELED:
        return "Canceled", "failed"
    done = sum(1 for task in tasks if task.status != Task.Status.PENDING)
    return (f"Running: {done} of {len(tasks)} tasks done" if job.status == Job.Status.STARTED else "Queued"), "running"


def job_report(job: Job, *, turn_href: str = "", transcript: bool = True) -> JobReport:
    """The report of `job`; `turn_href`: where the turns' anchors are (another page's address, the admin's);
    `transcript` false: the answers only, without the transcript's turns and the speakers' charts."""
    document = job_document(job)  # also reads the tasks, in order, into job.task_list
    result = document["result"] or {"results": {}, "errors": {}, "metadata": {"tasks": {}, "usage": {}}}
    metadata = result["metadata"]
    renderer = Renderer(turn_href=turn_href)
    cited: dict[int, list[str]] = {}
    tasks = []
    for task in job.task_list:
        meta = metadata.get("tasks", {}).get(task.name, {})
        answer = result["results"].get(task.name)
        if task.name in result["results"]:
            quotes_of(answer, cited)
            quotes_of(meta.get("references") or [], cited)
        tasks.append(TaskReport(
            name=task.name, title=_label(task.name), status=task.status,
            answer=(renderer.answer(answer, decode_task(task.prompt).schema) if task.name in result["results"]
                    else SafeString("")),
            references=renderer.references(meta.get("references")),
            error=result["errors"].get(task.name, ""), reused=bool(meta.get("reused")),
            answered_by=_model_name({key: meta.get(key) or metadata.get(key) for key in ("provider", "model")}),
            fallback_from=[_model_name(item) for item in meta.get("fallback_from") or []],
            cost=usd(Decimal(str(meta.get("cost", 0)))), tokens=_tokens(meta.get("usage") or {}),
            latency="" if meta.get("latency_s") is None else f"{meta['latency_s']:.2f} s",
            citations_checked=meta.get("citations_checked"), citations_rejected=meta.get("citations_rejected")))
    status, state = status_line(job, tasks)
    title, date = meeting_title_and_date(job)
    return JobReport(
        job_id=str(job.id), title=title, date=date, status=status, state=state, final=job.is_final,
        model=f"{job.provider}/{job.model}", tasks=tasks,
        turns=transcript_turns(job.transcript, cited) if transcript else [],
        charts=speaker_charts(result.get("speakers") or job.speakers) if transcript else [],
        total_cost=usd(Decimal(str(metadata.get("total_cost", 0)))), total_tokens=_tokens(metadata.get("usage") or {}),
        reused=sum(1 for task in tasks if task.reused))


def transcript_turns(transcript: str, cited: dict[int, list[str]]) -> list[TurnView]:
    """Every turn with its anchor, speaker, time and number; the words its citations quote are marked."""
    turns = []
    for turn in parse_turns(transcript):
        spans = sorted(span for quote in cited.get(turn.index, []) if (span := quote_span(turn.text, quote)))
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        pieces, at = [], 0
        for start, end in merged:
            pieces.append(format_html('{}<mark class="quote">{}</mark>', turn.text[at:start], turn.text[start:end]))
            at = end
        pieces.append(conditional_escape(turn.text[at:]))
        turns.append(TurnView(index=turn.index, speaker=turn.speaker, time=clock(turn.start),
                              text=format_html_join("", "{}", ((piece,) for piece in pieces)),
                              cited=turn.index in cited))
    return turns


def speaker_charts(speakers: list[dict]) -> list[SafeString]:
    """Talk time (where the transcript has times) and words per speaker, as bars in the speakers' colours."""
    names = [speaker["speaker"] or "(no speaker)" for speaker in speakers]
    colours = charts.colours_for(names)
    drawn = []
    if any(speaker["talk_time_s"] for speaker in speakers):
        drawn.append(charts.horizontal_bars(
            kind="talk-time", title="Talk time per speaker", colours=colours, fmt=lambda v: clock(v) or "",
            rows=[(name, float(speaker["talk_time_s"] or 0)) for name, speaker in zip(names, speakers)]))
    drawn.append(charts.horizontal_bars(
        kind="words", title="Words per speaker", colours=colours, fmt=lambda v: f"{v:,.0f}",
        rows=[(name, float(speaker["words"])) for name, speaker in zip(names, speakers)]))
    return drawn


# --- Markdown: manage.py analyze and GET /api/v1/jobs/{id}/report.md ----------------------------------

def reuse_lines(document: dict[str, Any], reused_from: dict[str, str]) -> list[str]:
    """Which answers were not asked of the provider but copied from an earlier identical task, at $0."""
    tasks = ((document["result"] or {}).get("metadata") or {}).get("tasks") or {}
    reused = [name for name, meta in tasks.items() if meta.get("reused")]
    if not reused:
        return []
    by_job: dict[str, list[str]] = {}
    for name in reused:
        by_job.setdefault(reused_from.get(name, "?"), []).append(name)
    sources = "; ".join(f"{', '.join(names)} from job `{job_id}`" if job_id != "?" else
                        f"{', '.join(names)} (source job gone)" for job_id, names in by_job.items())
    return [f"- Reused: {len(reused)} of {len(tasks)} answers at $0, without a provider call: {sources} "
            "(identical earlier task; --no-reuse asks the provider again)"]


def task_lines(task: dict[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """Under a task's answer: who answered when a fallback did, its references and the citation check's counts.
    `names`: the meetings of an answer across meetings, by transcript id (render.citations_line)."""
    lines: list[str] = []
    if task.get("fallback_from"):
        lines += ["", f"_Answered by the fallback model {_model_name(task)} (after "
                      f"{', '.join(_model_name(item) for item in task['fallback_from'])})._"]
    references = [f"- {reference.get('claim', '')} ({render.citations_line(reference.get('citations') or [], names)})"
                  for reference in task.get("references") or []]
    if references:
        lines += ["", "Sources:", *references]
    if "citations_checked" in task:
        lines += ["", f"_Citations: {task['citations_checked']} checked against the "
                      f"{'meetings' if names is not None else 'transcript'}, {task['citations_rejected']} rejected._"]
    return lines


def report_markdown(document: dict[str, Any], *, title: str, reused_from: dict[str, str] | None = None,
                    date: datetime | None = None, names: dict[str, str] | None = None) -> str:
    """The report as Markdown. `names`: an answer across meetings names each cited meeting (by transcript id)."""
    result = document["result"] or {"results": {}, "errors": {}, "metadata": {}}
    metadata = result.get("metadata") or {}
    usage = metadata.get("usage") or {}
    progress = document["progress"]
    lines = [f"# {title}", ""]
    if date is not None:
        lines.append(f"- Date: {date:%Y-%m-%d %H:%M:%S} UTC")
    lines.append(f"- Job: `{document['job_id']}` ({document['status']}"
                 f"{', with errors' if document.get('partial') else ''})")
    if metadata:
        lines.append(f"- Model: {metadata.get('provider')} / {metadata.get('model')}")
        lines.append(f"- Cost: ${plain_number(Decimal(metadata.get('total_cost') or 0))} "
                     f"(input {usage.get('input_tokens', 0):,} tokens, cached {usage.get('cached_input_tokens', 0):,}, "
                     f"output {usage.get('output_tokens', 0):,}, reasoning {usage.get('reasoning_tokens', 0):,})")
    lines.append(f"- Tasks: {progress['tasks_done']}/{progress['tasks_total']}")
    lines += reuse_lines(document, reused_from or {})
    if document["error"]:
        lines.append(f"- Error: {document['error']}")
    tasks_meta = metadata.get("tasks") or {}
    for name, value in result["results"].items():
        lines += ["", f"## {name}", "", render.markdown(value)]
        lines += task_lines(tasks_meta.get(name) or {}, names)
    if result["errors"]:
        lines += ["", "## Errors", ""]
        lines += [f"- **{name}**: {message}" for name, message in result["errors"].items()]
    return "\n".join(lines) + "\n"


# --- the admin's view of a task's request --------------------------------------------------------------

@dataclass(frozen=True)
class TaskRequestView:
    """A task's prompt as its author wrote it, and its schema pretty-printed (the stored envelope unpacked)."""

    prompt: str
    schema: str
    cite: bool
    language: str


def task_request_view(task: Task) -> TaskRequestView:
    request = decode_task(task.prompt)
    schema = json.dumps(request.schema, indent=2, ensure_ascii=False) if request.schema is not None else ""
    return TaskRequestView(prompt=request.prompt, schema=schema, cite=request.cite, language=request.language)
