"""Recount the name keys of all live patients (term frequencies for the matcher)."""

from django.core.management.base import BaseCommand

from matching.frequencies import refresh_name_frequencies


class Command(BaseCommand):
    help = (
        "Recompute NameFrequency: how many live patients carry each family and given name key "
        "(accents folded, each key once per patient). Replaces the table in one transaction."
    )

    def handle(self, *args, **options):
        stats = refresh_name_frequencies()
        self.stdout.write(
            f"Counted {stats.patients:,} live patients: {stats.family_keys:,} family and "
            f"{stats.given_keys:,} given name keys, in {stats.seconds:.1f} s."
        )
