"""The built-in analysis profiles (owner NULL: visible to every user, changed by staff only).

The texts are frozen here rather than imported from app code, so that this
migration creates the same rows whenever it runs. Staff may edit them later in
the admin or through the API; running the migration backwards deletes only
built-ins that still have these names.
"""

from __future__ import annotations

from django.db import migrations

TIMESTAMPS = (
    "The transcript may carry timestamps like [00:12:34] at the start of turns; when it does, "
    "cite the timestamp of the turn where each point is made, in that same [hh:mm:ss] form. "
    "When it has none, do not invent any."
)

GROUNDING = (
    "Use only what the transcript says. Do not invent names, numbers, dates or decisions; if "
    "something is unclear or not said, write \"not stated\" rather than guessing. Speaker labels "
    "may be roles or codes (\"Project Manager\", \"Grad F\", \"SPEAKER_01\"): use them as given. "
    "Ignore transcription markers such as {vocalsound}, {disfmarker} or [inaudible]. "
    "Answer in the language of the transcript, in concise Markdown."
)

BUILTIN_PROFILES = [
    {
        "name": "meeting-notes",
        "description": "Minutes of a meeting: summary, key points, decisions, action items with owners "
                       "and due dates, and open questions.",
        "system_prompt": (
            "You are an experienced executive assistant who writes meeting minutes that people who missed "
            "the meeting can act on. " + GROUNDING + " " + TIMESTAMPS
        ),
        "tasks": [
            {"name": "summary", "prompt": (
                "Write a summary of the meeting in one short paragraph (at most 120 words): its purpose, "
                "who took part (by name or role), what was discussed and where things ended up.")},
            {"name": "key_points", "prompt": (
                "List the key points of the discussion as bullet points, in the order they came up, one "
                "point a bullet, each with the speaker who raised it. Include figures, options compared "
                "and arguments made; leave out small talk and logistics.")},
            {"name": "decisions", "prompt": (
                "List every decision the meeting actually made or agreed on, as bullet points: what was "
                "decided, who made or confirmed it, and the reason given if any. Do not list proposals "
                "that were not agreed. If no decision was made, say so in one sentence.")},
            {"name": "action_items", "prompt": (
                "List every action item (a task someone committed to or was asked to do) as a Markdown "
                "table with the columns Action, Owner, Due date, Timestamp. Owner is the person or role "
                "responsible; Due date is the deadline as stated (\"next meeting\", \"Friday\", a date), "
                "or \"not stated\". Start each action with a verb. If there are no action items, say so.")},
            {"name": "open_questions", "prompt": (
                "List the questions, issues and disagreements that were raised but left unresolved, as "
                "bullet points, each with who raised it and what is needed to resolve it (information, a "
                "person, a later meeting). If everything raised was resolved, say so.")},
        ],
    },
    {
        "name": "video-summary",
        "description": "A video's chapters with [hh:mm:ss] timestamps, a summary and the key takeaways.",
        "system_prompt": (
            "You summarize videos (talks, tutorials, reviews, vlogs) from their captions for viewers who "
            "want to decide what to watch and find their way around. " + GROUNDING + " " + TIMESTAMPS
        ),
        "tasks": [
            {"name": "summary", "prompt": (
                "Summarize the video in 3 to 5 sentences: what it is about, who presents it (if stated), "
                "and its main message or conclusion.")},
            {"name": "chapters", "prompt": (
                "Divide the video into chapters where the topic changes, typically one every 2 to 10 "
                "minutes, between 3 and 15 chapters in all. Write one chapter a line as "
                "\"[hh:mm:ss] Title - one sentence on what it covers\", the timestamp being the start of "
                "the chapter taken from the transcript, in chronological order, the first at the start "
                "of the video. Titles are short (at most 8 words) and specific. If the transcript has no "
                "timestamps, list the chapters in order without times.")},
            {"name": "key_takeaways", "prompt": (
                "List the 5 to 10 most useful takeaways for a viewer as bullet points: concrete facts, "
                "recommendations, steps or insights, each in one or two sentences and with the "
                "[hh:mm:ss] timestamp where it is made.")},
        ],
    },
    {
        "name": "podcast-interview",
        "description": "A podcast episode or interview: who speaks, the topics covered, and notable quotes.",
        "system_prompt": (
            "You write show notes for podcasts and interviews, for listeners deciding whether to listen "
            "and for people looking for what was said. " + GROUNDING + " " + TIMESTAMPS
        ),
        "tasks": [
            {"name": "summary", "prompt": (
                "Summarize the episode in one paragraph (at most 150 words): the premise, who talks with "
                "whom, and the main points and conclusions.")},
            {"name": "guests", "prompt": (
                "List the host(s) and the guest(s) as bullet points: name (or speaker label), role in the "
                "conversation (host, guest, caller), and who they are (job, organization, expertise) as "
                "stated in the conversation. Do not add biographical facts the transcript does not "
                "mention.")},
            {"name": "topics", "prompt": (
                "List the topics discussed, in order, as bullet points: a short heading for each, the "
                "[hh:mm:ss] timestamp where it starts, and two or three sentences on what each speaker "
                "said about it, including any disagreement.")},
            {"name": "notable_quotes", "prompt": (
                "Pick 5 to 10 notable quotes: striking, insightful, funny or controversial statements. "
                "Quote them word for word from the transcript (you may cut with \"...\", never reword), "
                "each as a Markdown blockquote followed by the speaker and the [hh:mm:ss] timestamp, and "
                "one line on why it matters.")},
        ],
    },
    {
        "name": "lecture",
        "description": "A lecture or class: a structured outline, the key concepts defined, and questions "
                       "for review.",
        "system_prompt": (
            "You are a teaching assistant who turns lecture transcripts into study material for students "
            "who attended and for those who missed the class. Keep the lecturer's terminology, notation "
            "and examples. " + GROUNDING + " " + TIMESTAMPS
        ),
        "tasks": [
            {"name": "outline", "prompt": (
                "Write a hierarchical outline of the lecture as nested Markdown bullets: the main sections "
                "in the order taught, each with its sub-points, examples and any formulas or definitions "
                "given, and the [hh:mm:ss] timestamp where each section starts. Note any announcements "
                "(assignments, deadlines, exam topics) at the end under \"Announcements\".")},
            {"name": "key_concepts", "prompt": (
                "List the key concepts and terms introduced, as a glossary: each term in bold, followed "
                "by a one- or two-sentence definition as the lecturer explained it, and an example from "
                "the lecture where one was given. Order them as they were introduced.")},
            {"name": "review_questions", "prompt": (
                "Write 8 to 12 questions a student could use to review this lecture, from recall to "
                "application: mix short-answer questions, conceptual \"why\" and \"how\" questions and, "
                "where the material allows, a worked problem. Give a concise model answer after each "
                "question, based only on the lecture, with the [hh:mm:ss] timestamp to revisit.")},
        ],
    },
]


def create_builtins(apps, schema_editor):
    AnalysisProfile = apps.get_model("analysis", "AnalysisProfile")
    for data in BUILTIN_PROFILES:
        AnalysisProfile.objects.update_or_create(
            owner=None, name=data["name"],
            defaults={key: value for key, value in data.items() if key != "name"},
        )


def delete_builtins(apps, schema_editor):
    AnalysisProfile = apps.get_model("analysis", "AnalysisProfile")
    AnalysisProfile.objects.filter(owner=None, name__in=[data["name"] for data in BUILTIN_PROFILES]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("analysis", "0001_analysis_profile"),
    ]

    operations = [
        migrations.RunPython(create_builtins, delete_builtins),
    ]
