"""jobs' migration 0011 gives every existing job its transcript row: one per owner and normalized text, parsed
into turns as transcripts.services stores them (the migration's function, run directly)."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from analysis.engine.planning import TaskSpec
from jobs.models import Job
from jobs.services import JobRequest, job_create
from transcripts.models import Transcript, TranscriptTurn
from transcripts.services import transcript_store

pytestmark = pytest.mark.django_db

give_jobs_transcripts = importlib.import_module("jobs.migrations.0011_job_transcript_ref").give_jobs_transcripts


def old_job(owner, text: str, days_ago: int) -> Job:
    """A job as it was before transcripts were stored: its own copy of the text, no transcript row."""
    job = job_create(owner=owner, request=JobRequest(provider="openai", model="gpt-4o-mini", transcript=text,
                                                     tasks=[TaskSpec(name="summary", prompt="Summarize")]))
    Job.objects.filter(id=job.id).update(transcript_ref=None, created_at=timezone.now() - timedelta(days=days_ago))
    return job


def test_existing_jobs_get_one_transcript_per_owner_and_text(alice, bob):
    shared, other = "[00:00:05] Ann: The launch moves to May.\nBen: Fine.", "Cid: Budget review."
    jobs = [old_job(alice, shared, 3), old_job(alice, shared, 1), old_job(bob, shared, 2), old_job(alice, other, 5)]
    Transcript.objects.all().delete()  # no job points at them any more
    gone = old_job(alice, "Dee: deleted.", 1)
    Job.objects.filter(id=gone.id).update(transcript="", transcript_deleted=True)
    Transcript.objects.filter(jobs__isnull=True).delete()

    assert give_jobs_transcripts(apps, None) == 4

    refs = [Job.objects.get(id=job.id).transcript_ref for job in jobs]
    assert refs[0] == refs[1] and len({refs[0].id, refs[2].id, refs[3].id}) == 3
    assert Job.objects.get(id=gone.id).transcript_ref is None
    assert Transcript.objects.count() == 3
    alices = refs[0]
    assert alices.owner == alice and alices.text == shared and alices.occurred_at == Job.objects.get(id=jobs[0].id).created_at
    assert (alices.turn_count, alices.speakers, alices.title, alices.tags) == (2, ["Ann", "Ben"], "", [])
    assert alices.tokens > 0 and alices.digest == transcript_store(owner=alice, text=shared, fmt="text")[0].digest
    assert list(TranscriptTurn.objects.filter(transcript=alices).values_list("number", "speaker", "start", "config")) == [
        (1, "Ann", 5.0, "simple"), (2, "Ben", None, "simple")]
    # Run again: nothing left to give.
    assert give_jobs_transcripts(apps, None) == 0 and Transcript.objects.count() == 3


def test_a_transcript_already_stored_is_the_one_given(alice):
    text = "Ann: Stored before."
    kept, _ = transcript_store(owner=alice, text=text, fmt="text")
    job = old_job(alice, text, 1)
    assert give_jobs_transcripts(apps, None) == 1
    assert Job.objects.get(id=job.id).transcript_ref_id == kept.id and Transcript.objects.count() == 1
