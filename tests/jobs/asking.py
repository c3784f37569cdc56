"""Helpers for the ask tests: the thirty shared meetings stored as a user's transcripts, and asking over them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from analysis.engine.transcripts import normalize_transcript
from tests.conftest import TRANSCRIPTS
from transcripts.models import Transcript
from transcripts.services import transcript_store

# The thirty meetings of ../shared/transcripts and its corpus/, by name (NAME.txt, NAME.reference.json).
MEETINGS = sorted([p.stem for p in TRANSCRIPTS.glob("*.txt")] + [f"corpus/{p.stem}" for p in
                                                                 (TRANSCRIPTS / "corpus").glob("*.txt")])
FIRST_DAY = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def meeting_text(name: str) -> str:
    return (TRANSCRIPTS / f"{name}.txt").read_text(encoding="utf-8")


def reference(name: str) -> dict:
    return json.loads((TRANSCRIPTS / f"{name}.reference.json").read_text(encoding="utf-8"))


def store(owner, name: str, day: int = 0, *, text: str | None = None, tags: tuple[str, ...] = (),
          language: str = "en") -> Transcript:
    """One meeting stored as `owner`'s transcript, titled by its name, dated `day` days after FIRST_DAY."""
    stored, _ = transcript_store(owner=owner, text=normalize_transcript(text or meeting_text(name)), fmt="text",
                                 title=name.removeprefix("corpus/"), occurred_at=FIRST_DAY + timedelta(days=day),
                                 tags=tags, transcript_language=language)
    return stored


def store_all(owner, names: list[str] = MEETINGS) -> dict[str, Transcript]:
    return {name: store(owner, name, day) for day, name in enumerate(names)}


def ask(client, question: str, provider: str = "openai", model: str = "gpt-4o-mini", **extra):
    return client.post("/api/v1/ask", {"question": question, "provider": provider, "model": model, **extra},
                       format="json")


def sent_bodies(emulator, provider: str = "openai") -> list[str]:
    """The requests the provider received, in order, as JSON text."""
    return [json.dumps(r["body"], ensure_ascii=False) for r in sorted(emulator.requests(provider),
                                                                     key=lambda r: r["seq"])]
