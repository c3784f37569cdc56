"""A turn's search entry (its tsvector) is kept in the turn's row. With PostgreSQL's default storage a long turn's
tuple outgrows the TOAST threshold and the tsvector, which compresses worse than the text, is the column moved out
of line: every search then fetched it from the TOAST table for each long match to rank it. With storage MAIN
the text is moved out first (read back only for the page's snippets).

Only rows written from now on take the new layout; existing ones keep theirs until the table is rewritten
(VACUUM FULL, or pg_repack without its lock)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('transcripts', '0003_turn_owner'),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE transcripts_transcriptturn ALTER COLUMN search SET STORAGE MAIN",
            "ALTER TABLE transcripts_transcriptturn ALTER COLUMN search SET STORAGE EXTENDED"),
    ]
