"""Rewrite every search index row from the patient rows.

Safe on a live database: batches of patients in short transactions, each batch
share-locked so a concurrent write cannot be overwritten with older data.
"""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from patients.models import Patient
from search.maintenance import rebuild_index


class Command(BaseCommand):
    help = "Rebuild the search index (batched, with progress; safe on a live database)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, batch_size: int, verbosity: int, **options):
        total = Patient.all_objects.count()
        with tqdm(total=total, unit="patient", disable=verbosity < 1) as bar:
            result = rebuild_index(batch_size=max(1, batch_size), progress=bar.update)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt the search index of {result['patients']} patients "
                f"({result['retried']} retried after a concurrent write; "
                f"{result['new_words']} new vocabulary words)."
            )
        )
