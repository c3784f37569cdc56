"""Each owner's text search configurations kept in a table of their own (searches read them by key instead of
from all the owner's transcripts), filled from the transcripts already stored."""

import django.db.models.deletion
import transcripts.models
from django.conf import settings
from django.db import migrations, models


def fill_search_configs(apps, schema_editor) -> None:
    Transcript = apps.get_model("transcripts", "Transcript")
    OwnerSearchConfig = apps.get_model("transcripts", "OwnerSearchConfig")
    pairs = Transcript.objects.order_by().values_list("owner_id", "transcript_language").distinct()
    configs = {(owner_id, transcripts.models.search_config(language)) for owner_id, language in pairs}
    OwnerSearchConfig.objects.bulk_create([OwnerSearchConfig(owner_id=owner_id, config=config)
                                           for owner_id, config in sorted(configs)], ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('transcripts', '0001_transcripts'),
        # After the jobs' own transcripts were stored from their texts, so theirs are counted.
        ('jobs', '0011_job_transcript_ref'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='OwnerSearchConfig',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('config', transcripts.models.RegConfigField(max_length=63)),
                ('owner', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('owner', 'config'), name='unique_search_config_per_owner')],
            },
        ),
        migrations.RunPython(fill_search_configs, migrations.RunPython.noop),
    ]
