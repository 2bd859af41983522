"""Report search index rows that are missing, extra or stale; exit code 1 on drift."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from patients.models import Patient
from search.maintenance import check_index

SHOWN = 10


class Command(BaseCommand):
    help = "Check the search index against the patient rows (exit code 1 on drift)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, batch_size: int, verbosity: int, **options):
        total = Patient.all_objects.count()
        with tqdm(total=total, unit="patient", disable=verbosity < 1) as bar:
            drift = check_index(batch_size=max(1, batch_size), progress=bar.update)
        out = self.stdout.write
        out(f"Checked {drift.checked} patients.")
        for label, ids in (("missing (live patient without a row)", drift.missing),
                           ("extra (row of a deleted patient)", drift.extra)):  # fmt: skip
            if ids:
                out(f"  {len(ids)} {label}: patient ids {', '.join(map(str, ids[:SHOWN]))}")
        if drift.stale:
            out(f"  {len(drift.stale)} stale (row differs from the patient's data):")
            for pid, fields in list(drift.stale.items())[:SHOWN]:
                out(f"    patient {pid}: {', '.join(fields)}")
        if drift.missing_words:
            out(f"  {drift.missing_words} name words missing from the search vocabulary")
        if not drift.clean:
            raise CommandError(
                "The search index has drifted: run manage.py rebuild_search_index.", returncode=1
            )
        out(self.style.SUCCESS("The search index is in step with the patients."))
