"""`python manage.py ask "QUESTION" --user USERNAME ...`: ask a question across stored meetings from the terminal.

The submission goes through exactly what `POST /api/v1/ask` runs (AskSerializer, then jobs.submission.job_ask),
as the given user. With --wait it shows progress as `manage.py analyze` does (the same command class), then
prints the answer with its citations (each naming its meeting and turn) and the meetings consulted as Markdown,
or the API's job document with --json.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.models import User
from jobs.management.commands.analyze import Command as AnalyzeCommand
from jobs.models import Job
from jobs.report import report_markdown
from jobs.serializers import AskSerializer
from jobs.submission import job_ask


def day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def meeting_name(meeting: dict[str, Any]) -> str:
    return f"{meeting['title'] or 'Untitled'} ({meeting['occurred_at'][:10]})"


def ask_markdown(document: dict[str, Any], *, question: str) -> str:
    """The answer with its citations by meeting title, date and turn, then the meetings it read."""
    metadata = (document["result"] or {}).get("metadata") or {}
    meetings = metadata.get("meetings") or []
    text = report_markdown(document, title=f"Ask: {question}",
                           names={meeting["transcript"]: meeting_name(meeting) for meeting in meetings})
    if "read" not in metadata:
        return text
    how = ("every meeting in scope, whole" if metadata["read"] == "whole" else
           f"the turns a search found (terms: {', '.join(metadata.get('search_terms') or []) or 'none'}), "
           "with their neighbours")
    lines = ["", "## Meetings consulted", "", f"{metadata['turns_read']:,} turns read: {how}.", ""]
    for meeting in meetings:
        ranges = ", ".join(f"T{a}" if a == b else f"T{a}–T{b}" for a, b in meeting["turn_ranges"])
        lines.append(f"- {meeting_name(meeting)}, `{meeting['transcript']}`: {meeting['turns_read']:,} turns "
                     f"({ranges})")
    return text + "\n".join(lines) + "\n"


class Command(AnalyzeCommand):
    help = ("Ask a question across USERNAME's stored meetings (all of them, or those the options select), through "
            "the same validation and services as POST /api/v1/ask; with --wait, show progress and print the answer "
            "with its citations.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question", help="the question, in quotes")
        parser.add_argument("--user", required=True, help="the username whose meetings are asked (and who is billed)")
        parser.add_argument("--transcript", action="append", metavar="ID",
                            help="a transcript's id (repeatable); instead of the filters below")
        parser.add_argument("--tag", help="only meetings with this tag")
        parser.add_argument("--speaker", help="only meetings where this speaker spoke")
        parser.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="only meetings on or after this day")
        parser.add_argument("--until", type=day, metavar="YYYY-MM-DD", help="only meetings on or before this day")
        parser.add_argument("--provider", required=True, help="gemini, openai, anthropic or a configured endpoint")
        parser.add_argument("--model", required=True, help="the model")
        parser.add_argument("--language", help="BCP 47 tag of the answer's language (default: the meetings')")
        parser.add_argument("--max-cost", help="USD: refused at submit if the question cannot cost less")
        parser.add_argument("--wait", action="store_true", help="wait for the answer, showing progress, then print it")
        parser.add_argument("--json", action="store_true", help="print JSON (the API's job document) instead of Markdown")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between progress polls (default 1)")
        parser.add_argument("--timeout", type=float, default=0.0,
                            help="with --wait: give up waiting after this many seconds (0: wait for the end)")

    def submit(self, user: User, options: dict[str, Any]) -> Job:
        data: dict[str, Any] = {"question": options["question"], "provider": options["provider"],
                                "model": options["model"]}
        scope: dict[str, Any] = {}
        if options["transcript"]:
            scope["transcripts"] = options["transcript"]
        for option in ("tag", "speaker"):
            if options[option]:
                scope[option] = options[option]
        # Days in UTC, both ends included: --until 2026-11-30 takes the meetings of the 30th.
        if options["since"]:
            scope["occurred_after"] = datetime.combine(options["since"], time()).isoformat() + "Z"
        if options["until"]:
            scope["occurred_before"] = datetime.combine(options["until"] + timedelta(days=1), time()).isoformat() + "Z"
        if scope:
            data["scope"] = scope
        for option in ("language", "max_cost"):
            if options[option] is not None:
                data[option] = options[option]
        return self.submitted(user, data, serializer_class=AskSerializer, service=job_ask)

    def report(self, job: Job, document: dict[str, Any], options: dict[str, Any]) -> None:
        if not options["json"]:
            self.stdout.write(ask_markdown(document, question=options["question"]), ending="")
