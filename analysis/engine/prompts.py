"""How requests are laid out, so that the providers' prompt caches can serve them.

Every task of a job sends: the system prompt, then the transcript, then the
task's instruction last. The first two are byte-identical across the tasks of a
job (nothing variable such as dates or ids goes before the transcript), which is
what OpenAI's automatic prefix cache, Anthropic's cache breakpoint and Gemini's
implicit cache need.
"""

from __future__ import annotations

import hashlib

from analysis.engine.providers.base import Prompt

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert analyst of transcripts (meetings, videos, podcasts, interviews, lectures). "
    "Answer using only what the transcript says; do not invent names, numbers or decisions. "
    "When the transcript has timestamps like [00:12:34], cite them where they help the reader. "
    "If the transcript does not contain the answer, say so plainly. Write in clear Markdown."
)


def transcript_document(transcript: str) -> str:
    return f"<transcript>\n{transcript}\n</transcript>"


def cache_key_for(transcript: str, system_prompt: str) -> str:
    digest = hashlib.sha256(f"{system_prompt}\x00{transcript}".encode()).hexdigest()
    return f"sr-{digest[:32]}"


def task_prompt(*, system_prompt: str, transcript: str, instruction: str) -> Prompt:
    system = system_prompt or DEFAULT_SYSTEM_PROMPT
    return Prompt(
        system=system,
        document=transcript_document(transcript),
        instruction=f"Task: {instruction}",
        cache_key=cache_key_for(transcript, system),
    )


def map_prompt(*, system_prompt: str, chunk: str, instruction: str, part: int, parts: int) -> Prompt:
    """One part of a transcript too long for the model, for the map step."""
    system = system_prompt or DEFAULT_SYSTEM_PROMPT
    return Prompt(
        system=system,
        document=f"This is part {part} of {parts} of a longer transcript (consecutive parts overlap slightly).\n"
                 + transcript_document(chunk),
        instruction=(
            f"Task: {instruction}\n\n"
            "Answer for this part of the transcript only. Keep every concrete detail (names, numbers, "
            "decisions, owners, dates, timestamps) so the answers for all parts can be merged later."
        ),
        cache_key=cache_key_for(chunk, system),
    )


def reduce_prompt(*, system_prompt: str, partials: list[str], instruction: str) -> Prompt:
    """Merge the answers for consecutive parts into one answer."""
    system = system_prompt or DEFAULT_SYSTEM_PROMPT
    numbered = "\n\n".join(f"<partial_answer part=\"{i}\">\n{text}\n</partial_answer>" for i, text in enumerate(partials, 1))
    return Prompt(
        system=system,
        document=(
            "A transcript was too long to read at once, so the task below was answered separately for "
            "consecutive parts of it. These are the partial answers, in transcript order:\n\n" + numbered
        ),
        instruction=(
            f"Task: {instruction}\n\n"
            "Merge the partial answers into one answer to the task for the whole transcript, as if you had "
            "read it at once: remove duplicates (parts overlap), keep every distinct fact, and keep the order."
        ),
        cache_key="",
    )
