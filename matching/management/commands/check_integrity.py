"""Report every violated registry invariant (docs/merge.md); exit code 1 when any."""

from django.core.management.base import BaseCommand, CommandError

from matching.integrity import check_integrity


class Command(BaseCommand):
    help = (
        "Check identity invariants: live identifier duplicates, merge cycles and broken chains, "
        "merged patients still active, links without their reverse, merge records, open "
        "candidates on retired records, search index rows out of step. Exit code 1 on any."
    )

    def add_arguments(self, parser):
        parser.add_argument("--skip-index", action="store_true", help="Skip the (full) search index walk.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Patients per index batch.")

    def handle(self, *args, skip_index: bool, batch_size: int, **options):
        violations = check_integrity(include_index=not skip_index, batch_size=max(1, batch_size))
        for violation in violations:
            self.stdout.write(str(violation))
        if violations:
            kinds = sorted({v.kind for v in violations})
            raise CommandError(
                f"{len(violations)} violation(s) of {len(kinds)} kind(s): {', '.join(kinds)}.", returncode=1
            )
        self.stdout.write(self.style.SUCCESS("No violations."))
