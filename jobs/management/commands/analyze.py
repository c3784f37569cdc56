"""`python manage.py analyze FILE --user USERNAME ...`: submit a transcript from the terminal.

The submission goes through exactly what `POST /api/v1/jobs/analyze` runs
(AnalyzeSerializer with the file as an upload, then the jobs.submission
service), as the given user, so a file the API would refuse is refused here
with the same message. With --wait it polls
PostgreSQL (the truth; a worker may be on any machine) and draws a progress
bar on stderr, then prints the results on stdout as Markdown, or as the API's
JSON document with --json.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q, Sum
from rest_framework import serializers

from accounts.models import User
from analysis.engine.fallbacks import ChainError, parse_cli_entry
from jobs.documents import job_document
from jobs.models import Job, Task
from jobs.report import report_markdown, reuse_lines
from jobs.selectors import reuse_sources
from jobs.serializers import AnalyzeSerializer, JobAcceptedSerializer
from jobs.submission import job_analyze
from scriptripper.errors import ServiceError, validation_message
from scriptripper.renderers import JSONRenderer

BAR_WIDTH = 24


def parse_task(value: str) -> tuple[str, str]:
    name, sep, prompt = value.partition("=")
    if not sep or not name.strip() or not prompt.strip():
        raise CommandError(f"--task must be NAME=PROMPT (e.g. --task 'summary=Provide a brief summary'), got {value!r}")
    return name.strip(), prompt


def parse_fallback_model(value: str) -> dict[str, str]:
    try:
        return parse_cli_entry(value)
    except ChainError as exc:
        raise CommandError(f"--fallback-model: {exc}") from None


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """Tasks done of total, elapsed time and cost so far, on stderr.

    On a terminal one line is redrawn in place; otherwise (a log file, a pipe)
    a line is written only when something changed, so logs stay readable.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.last = None
        self.started = time.monotonic()

    def update(self, *, status: str, done: int, total: int, cost) -> None:
        filled = BAR_WIDTH * done // total if total else 0
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        elapsed = format_elapsed(time.monotonic() - self.started)
        line = f"[{bar}] {done}/{total} tasks  {elapsed}  ${Decimal(cost):.6f}  {status}"
        if self.interactive:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif (status, done, str(cost)) != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last = (status, done, str(cost))

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def parse_schema(value: str) -> tuple[str, Any]:
    name, sep, path = value.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise CommandError(f"--schema takes NAME=FILE.json, got {value!r}")
    try:
        return name.strip(), json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"--schema {name}: cannot read a JSON Schema from {path}: {exc}") from None


class Command(BaseCommand):
    help = ("Submit a transcript (.txt, .srt, .vtt or .json segments) for analysis as USERNAME, through the same "
            "validation and services as the API; with --wait, show progress and print the results.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the transcript: .txt, .srt, .vtt, or .json (a list of segments)")
        parser.add_argument("--user", required=True, help="the username the job belongs to (and is billed to)")
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--profile", help="a saved profile's name or id (yours or a built-in one)")
        what.add_argument("--task", action="append", type=parse_task, metavar="NAME=PROMPT",
                          help="a named task; repeat for several")
        parser.add_argument("--provider", help="gemini, openai or anthropic (default: the profile's)")
        parser.add_argument("--model", help="the model (default: the profile's)")
        parser.add_argument("--system-prompt", help="a system prompt for every task")
        parser.add_argument("--schema", action="append", default=[], metavar="NAME=FILE.json",
                            help="answer task NAME as JSON following this JSON Schema (repeatable)")
        parser.add_argument("--cite", action="append", default=[], metavar="NAME",
                            help="task NAME answers with citations of the transcript's turns (repeatable)")
        parser.add_argument("--language", help="BCP 47 tag of the answers' language (default: the transcript's)")
        parser.add_argument("--text", action="store_true",
                            help="with --profile: its tasks in their free-text wording, without schemas")
        parser.add_argument("--max-cost", help="USD: stop starting tasks once the job has cost this much")
        parser.add_argument("--processing", choices=("standard", "flex", "batch"),
                            help="standard (default), flex (best-effort tier) or batch (the provider's batch API, "
                                 "about half price, results within hours)")
        parser.add_argument("--fallback", choices=("standard", "fail"),
                            help="when flex or batch cannot finish a call: send it standard (default) or fail it")
        chain = parser.add_mutually_exclusive_group()
        chain.add_argument("--fallback-model", action="append", type=parse_fallback_model, metavar="PROVIDER:MODEL",
                           help="a model a task moves on to when its own cannot answer (repeatable, at most 3, in "
                                "order; default: the profile's, else the server's MODEL_FALLBACKS)")
        chain.add_argument("--no-fallback-models", action="store_true",
                           help="no fallback chain, not even the server's default")
        parser.add_argument("--no-reuse", action="store_true",
                            help="always call the provider (by default an identical task of yours finished recently "
                                 "is reused at $0, and the output says so)")
        parser.add_argument("--wait", action="store_true", help="wait for the job, showing progress, then print results")
        parser.add_argument("--json", action="store_true", help="print JSON (the API's job document) instead of Markdown")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between progress polls (default 1)")
        parser.add_argument("--timeout", type=float, default=0.0,
                            help="with --wait: give up waiting after this many seconds (0: wait for the end)")

    def handle(self, *args: Any, **options: Any) -> None:
        # Info logs ("job created") would break up the progress bar on the same stderr;
        # -v 2 brings them back.
        previous = logging.root.manager.disable
        if options["verbosity"] < 2:
            logging.disable(logging.INFO)
        try:
            self.run(options)
        finally:
            logging.disable(previous)

    def run(self, options: dict[str, Any]) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None or not user.is_active:
            raise CommandError(f"No active user {options['user']!r} (create one with: manage.py createtoken USERNAME)")
        job = self.submit(user, options)
        if not options["wait"]:
            if options["json"]:
                self.write_json(JobAcceptedSerializer(job).data)
            else:
                self.stdout.write(str(job.id))
            return
        try:
            job = self.wait(job, interval=max(0.05, options["interval"]), timeout=options["timeout"])
        except KeyboardInterrupt:
            raise CommandError(f"Interrupted; job {job.id} goes on in the background.", returncode=130) from None
        document = job_document(job)
        if options["json"]:
            self.write_json(document)
        self.report(job, document, options)
        if job.status in (Job.Status.FAILED, Job.Status.CANCELED):
            raise CommandError(f"Job {job.id} {job.status}: {job.error or 'no task produced a result'}")

    def report(self, job: Job, document: dict[str, Any], options: dict[str, Any]) -> None:
        """The finished job for people: Markdown on stdout, or (with --json, after the document) notes on stderr."""
        reused_from = {name: str(source.id) for name, source in reuse_sources(job).items()}
        if options["json"]:
            for line in reuse_lines(document, reused_from):  # stdout stays the API's document
                self.stderr.write(line.removeprefix("- "))
        else:
            self.stdout.write(report_markdown(document, title=Path(options["file"]).name, reused_from=reused_from),
                              ending="")

    # --- submitting ---------------------------------------------------------------------------
    def submit(self, user: User, options: dict[str, Any]) -> Job:
        path = Path(options["file"])
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        with handle:
            data: dict[str, Any] = {"file": File(handle, name=path.name)}
            if options["profile"]:
                data["profile"] = options["profile"]
            else:
                tasks: dict[str, Any] = {}
                for name, prompt in options["task"]:
                    if name in tasks:
                        raise CommandError(f"--task {name!r} is given twice")
                    tasks[name] = prompt
                for name, schema in map(parse_schema, options["schema"]):
                    if name not in tasks:
                        raise CommandError(f"--schema {name}: there is no --task {name}")
                    tasks[name] = {"prompt": tasks[name], "schema": schema}
                for name in options["cite"]:
                    if name not in tasks:
                        raise CommandError(f"--cite {name}: there is no --task {name}")
                    tasks[name] = {"prompt": tasks[name], "cite": True} if isinstance(tasks[name], str) else tasks[name]
                data["tasks"] = tasks
            for option, field in (("provider", "provider"), ("model", "model"), ("system_prompt", "system_prompt"),
                                  ("max_cost", "max_cost"), ("processing", "processing"), ("fallback", "fallback")):
                if options[option] is not None:
                    data[field] = options[option]
            if options["fallback_model"]:
                data["fallback_models"] = options["fallback_model"]
            elif options["no_fallback_models"]:
                data["fallback_models"] = []
            if options["no_reuse"]:
                data["reuse"] = False
            if options["language"]:
                data["language"] = options["language"]
            if options["text"]:
                data["structured"] = False
            return self.submitted(user, data, serializer_class=AnalyzeSerializer, service=job_analyze)

    def submitted(self, user: User, data: dict[str, Any], *, serializer_class: type[serializers.Serializer],
                  service: Callable[..., tuple[Job, bool]]) -> Job:
        """The job `service` creates from `data` checked by `serializer_class`, as the API's view would; any
        refusal one CommandError with the API's message."""
        serializer = serializer_class(data=data)
        try:
            serializer.is_valid(raise_exception=True)
            job, _ = service(owner=user, **serializer.validated_data)
        except serializers.ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        return job

    # --- waiting ------------------------------------------------------------------------------
    def wait(self, job: Job, *, interval: float, timeout: float) -> Job:
        # The raw stream, not Django's OutputWrapper (which would colour every redraw as an error).
        bar = ProgressBar(getattr(self.stderr, "_out", sys.stderr))
        deadline = time.monotonic() + timeout if timeout > 0 else None
        try:
            while True:
                status = Job.objects.filter(id=job.id).values_list("status", flat=True).first()
                if status is None:
                    raise CommandError(f"Job {job.id} was deleted while waiting for it.")
                counts = Task.objects.filter(job_id=job.id).aggregate(
                    total=Count("pk"), done=Count("pk", filter=~Q(status=Task.Status.PENDING)), cost=Sum("cost"))
                bar.update(status=status, done=counts["done"], total=counts["total"], cost=counts["cost"] or 0)
                if status in Job.FINAL_STATUSES:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise CommandError(f"Still {status} after {timeout:g} s; job {job.id} goes on in the background "
                                       f"(GET /api/v1/jobs/{job.id}).")
                time.sleep(interval)
        finally:
            bar.close()
        return Job.objects.get(id=job.id)

    def write_json(self, value: dict[str, Any]) -> None:
        # The API's renderer: Decimal costs become JSON numbers, dates ISO 8601, as GET /api/v1/jobs/{id}.
        body = JSONRenderer().render(value, renderer_context={"indent": 2})
        self.stdout.write(body.decode())
