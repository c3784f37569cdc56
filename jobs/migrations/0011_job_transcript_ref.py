"""Jobs point at a stored transcript; every existing job gets one: a row per owner and normalized text (their
own copies), as transcripts.services.transcript_store would store it."""

from collections import defaultdict

from django.db import migrations, models

import jobs.models
from transcripts.models import search_config
from transcripts.services import ParsedTranscript, transcript_digest

JOBS_PER_READ = 200


def give_jobs_transcripts(apps, schema_editor) -> int:
    """Each job without a transcript row gets its owner's row of its text (found, or stored with its turns,
    dated by the earliest such job). Returns how many jobs were given one."""
    Job = apps.get_model("jobs", "Job")
    Transcript = apps.get_model("transcripts", "Transcript")
    TranscriptTurn = apps.get_model("transcripts", "TranscriptTurn")
    jobs = (Job.objects.filter(transcript_ref__isnull=True, transcript_deleted=False).exclude(transcript="")
            .order_by("created_at").only("id", "owner_id", "transcript", "transcript_format", "created_at"))
    rows: dict[tuple[int, str], object] = {}
    members: dict[object, list] = defaultdict(list)
    for job in jobs.iterator(chunk_size=JOBS_PER_READ):
        key = (job.owner_id, transcript_digest(job.transcript))
        if key not in rows:
            found = Transcript.objects.filter(owner_id=key[0], digest=key[1]).values_list("id", flat=True).first()
            if found is None:
                parsed = ParsedTranscript.of(job.transcript)
                row = Transcript.objects.create(
                    owner_id=job.owner_id, occurred_at=job.created_at, created_at=job.created_at, text=job.transcript,
                    format=job.transcript_format, digest=key[1], turn_count=len(parsed.turns),
                    speakers=parsed.speakers, tokens=parsed.tokens)
                parsed.insert_turns(model=TranscriptTurn, transcript_id=row.id, owner_id=job.owner_id,
                                    config=search_config(""))
                found = row.id
            rows[key] = found
        members[rows[key]].append(job.id)
    for transcript_id, ids in members.items():
        Job.objects.filter(id__in=ids).update(transcript_ref_id=transcript_id)
    return sum(len(ids) for ids in members.values())


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0010_redundant_indexes'),
        ('transcripts', '0001_transcripts'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='transcript_deleted',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='job',
            name='transcript_ref',
            field=models.ForeignKey(blank=True, null=True, on_delete=jobs.models.keep_results_without_transcript, related_name='jobs', to='transcripts.transcript'),
        ),
        migrations.RunPython(give_jobs_transcripts, migrations.RunPython.noop),
    ]
