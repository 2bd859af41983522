from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import IDEMPOTENCY_TTL, IdempotencyRecord


class Command(BaseCommand):
    help = "Delete stored Idempotency-Key responses older than 24 hours (they are no longer replayed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours",
            type=int,
            default=int(IDEMPOTENCY_TTL.total_seconds() // 3600),
            help="Delete entries older than this many hours (at least 24).",
        )

    def handle(self, *args, hours: int, **options):
        # Younger entries still answer retries: purging them would let a retry run twice.
        hours = max(hours, int(IDEMPOTENCY_TTL.total_seconds() // 3600))
        cutoff = timezone.now() - timedelta(hours=hours)
        deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"Deleted {deleted} idempotency record(s) older than {hours} hours.")
