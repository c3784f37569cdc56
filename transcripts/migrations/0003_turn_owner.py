"""Each turn carries its transcript's owner (search keeps the caller's matches as it reads them, without
joining every match to its transcript), copied from the transcripts already stored."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('transcripts', '0002_owner_search_configs'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='transcriptturn',
            name='owner',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunSQL(
            "UPDATE transcripts_transcriptturn AS turn SET owner_id = transcript.owner_id "
            "FROM transcripts_transcript AS transcript WHERE transcript.id = turn.transcript_id",
            migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='transcriptturn',
            name='owner',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
