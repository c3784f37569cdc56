"""The built-in profiles answer in JSON where people act on the answer: each such task gets a JSON Schema
whose items carry `citations` (turns of the transcript, checked by the service), and keeps its free-text
wording as `text_prompt` (analyze with `"structured": false` asks that instead).

Frozen here, like 0002: the same rows whenever it runs. Backwards, the free-text tasks come back.
"""

from __future__ import annotations

from django.db import migrations

CITATIONS = {"type": "array", "description": "the turns this rests on", "items": {
    "type": "object",
    "properties": {"turn": {"type": "integer", "minimum": 1}, "quote": {"type": "string"}},
    "required": ["turn", "quote"], "additionalProperties": False}}
TEXT_OR_NULL = {"type": ["string", "null"]}


def listing(key: str, fields: dict) -> dict:
    """{key: [{...fields, citations}]}, closed and fully required (OpenAI strict mode takes it)."""
    item = {"type": "object", "properties": {**fields, "citations": CITATIONS},
            "required": [*fields, "citations"], "additionalProperties": False}
    return {"type": "object", "properties": {key: {"type": "array", "items": item}}, "required": [key],
            "additionalProperties": False}


STRUCTURED = {
    "meeting-notes": {
        "decisions": ("List every decision the meeting actually made or agreed on: what was decided, who made or "
                      "confirmed it, and the reason given (null if none). Leave out proposals that were not agreed; "
                      "an empty list if no decision was made.",
                      listing("decisions", {"decision": {"type": "string"}, "decided_by": TEXT_OR_NULL,
                                            "reason": TEXT_OR_NULL})),
        "action_items": ("List every action item (a task someone committed to or was asked to do): the task, "
                         "starting with a verb; its Owner, the person or role responsible (null if not stated); "
                         "its Due date as stated (\"next meeting\", \"Friday\", a date), null if not stated. An "
                         "empty list if there are none.",
                         listing("action_items", {"task": {"type": "string"}, "owner": TEXT_OR_NULL,
                                                  "due": TEXT_OR_NULL})),
        "open_questions": ("List the questions, issues and disagreements raised but left unresolved: the question, "
                           "who raised it, and what is needed to resolve it (information, a person, a later "
                           "meeting). An empty list if everything raised was resolved.",
                           listing("open_questions", {"question": {"type": "string"}, "raised_by": TEXT_OR_NULL,
                                                      "needed": TEXT_OR_NULL})),
    },
    "video-summary": {
        "chapters": ("Divide the video into chapters at its topic changes, in order, each with a short title and "
                     "the [hh:mm:ss] timestamps of the turns where it starts and ends, written hh:mm:ss as in the "
                     "transcript. When the transcript has no timestamps, start and end are null: cite the turns.",
                     listing("chapters", {"title": {"type": "string"}, "start": TEXT_OR_NULL,
                                          "end": TEXT_OR_NULL})),
    },
    "podcast-interview": {
        "guests": ("List the host(s) and guests: name as given, their role in the conversation (host, guest, "
                   "moderator) and what they are introduced as (null if not stated).",
                   listing("guests", {"name": {"type": "string"}, "role": {"type": "string"},
                                      "introduced_as": TEXT_OR_NULL})),
        "notable_quotes": ("Pick the most notable quotes (at most 8): the exact words, who said them, and why "
                           "they matter in one sentence.",
                           listing("quotes", {"quote": {"type": "string"}, "speaker": TEXT_OR_NULL,
                                              "why": {"type": "string"}})),
    },
    "lecture": {
        "key_concepts": ("List the key concepts the lecture teaches, in the order taught: the term, and its "
                         "explanation as the lecturer gave it.",
                         listing("concepts", {"term": {"type": "string"}, "explanation": {"type": "string"}})),
        "review_questions": ("Write review questions a student could answer from this lecture alone (5 to 8), "
                             "each with its answer as the lecture gives it.",
                             listing("questions", {"question": {"type": "string"}, "answer": {"type": "string"}})),
    },
}


def add_schemas(apps, schema_editor):
    AnalysisProfile = apps.get_model("analysis", "AnalysisProfile")
    for name, tasks in STRUCTURED.items():
        profile = AnalysisProfile.objects.filter(owner=None, name=name).first()
        if profile is None:
            continue
        changed = []
        for task in profile.tasks:
            if task["name"] in tasks and "schema" not in task:
                prompt, schema = tasks[task["name"]]
                task = {"name": task["name"], "prompt": prompt, "schema": schema, "text_prompt": task["prompt"]}
            changed.append(task)
        profile.tasks = changed
        profile.save(update_fields=["tasks"])


def remove_schemas(apps, schema_editor):
    AnalysisProfile = apps.get_model("analysis", "AnalysisProfile")
    for name in STRUCTURED:
        profile = AnalysisProfile.objects.filter(owner=None, name=name).first()
        if profile is None:
            continue
        profile.tasks = [{"name": t["name"], "prompt": t.get("text_prompt") or t["prompt"]} for t in profile.tasks]
        profile.save(update_fields=["tasks"])


class Migration(migrations.Migration):
    dependencies = [
        ("analysis", "0003_profile_language"),
    ]

    operations = [
        migrations.RunPython(add_schemas, remove_schemas),
    ]
