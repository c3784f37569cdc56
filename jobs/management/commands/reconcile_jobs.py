"""`python manage.py reconcile_jobs`: one reconciler pass now (workers also run it every ~30 s)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from jobs.worker.reconcile import jobs_reconcile


class Command(BaseCommand):
    help = ("Re-enqueue queued jobs Redis lost, recover started jobs whose worker died, purge expired "
            "jobs and retry due webhooks (the same pass the workers run every RECONCILE_INTERVAL_SECONDS).")

    def handle(self, *args, **options):
        report = jobs_reconcile()
        self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
