"""Load synthetic demo patients with planted duplicates and twins, and write the truth."""

import argparse
import csv
import os
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db import transaction
from tqdm import tqdm

from patients.demo import CORRUPTIONS, DUPLICATE_RATE, FACILITIES, TRUTH_COLUMNS, DemoSet, generate_demo
from patients.errors import PatientConflict
from patients.models import Organization, Patient
from patients.services import register_patient

DEFAULT_TRUTH = Path(settings.BASE_DIR) / "var" / "demo-truth.csv"
REASON = "Demo data"


def _managing_organization(data, org_by_system: dict):
    """The facility of the record's first MRN, if it has one."""
    return next((org_by_system[i.system] for i in data.identifiers if i.system in org_by_system), None)


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of the truth-file description in --help."""


class Command(BaseCommand):
    help = f"""Load deterministic synthetic demo patients through the registry's write service.

About {DUPLICATE_RATE:.0%} of the records are planted duplicates: one more record of a
person as another facility registered it (its own MRN or none), with one or two of:
{textwrap.fill(", ".join(CORRUPTIONS) + ".", 86, initial_indent="  ", subsequent_indent="  ")}
About 1% are twins: two persons with the same family name, birth date, address and
phone but different given names. Twins are NOT duplicates.

The ground truth goes to a CSV file (--truth), one line per record written:
  patient_uuid    the registered patient's UUID
  person_id       the real person; records with the same person_id are duplicates
  record_kind     original | duplicate | twin (each twin's own first record)
  corruption      for duplicates: the planted kinds, ';'-separated (typo-family;moved-address)
  twin_person_id  for twins: the person_id of the other twin

The same --patients and --seed give the same data (and the same truth, but for UUIDs)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=2000, help="Number of records (default 2000).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when any patient exists (load demo data once).",
        )
        parser.add_argument(
            "--truth", type=Path, default=DEFAULT_TRUTH, help=f"Ground truth CSV (default {DEFAULT_TRUTH})."
        )
        parser.add_argument(
            "--batch-size", type=int, default=250, help="Patients per transaction (default 250)."
        )
        parser.add_argument(
            "--progress",
            action="store_true",
            help="Show the progress bar even when stderr is not a terminal.",
        )

    def handle(self, *args, **options):
        n, batch_size = options["patients"], options["batch_size"]
        if n < 0:
            raise CommandError("--patients cannot be negative.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["if_empty"] and Patient.all_objects.exists():
            self.stdout.write("Patients exist already: no demo data loaded (--if-empty).")
            return
        truth_path: Path = options["truth"]
        try:
            truth_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"Cannot create the folder of {truth_path}: {exc}") from exc

        demo = generate_demo(n, options["seed"])
        org_by_system = self._organizations()
        show_bar = options["progress"] or sys.stderr.isatty()
        started = time.perf_counter()
        written, skipped = self._register(demo, org_by_system, batch_size, show_bar)
        elapsed = time.perf_counter() - started
        self._write_truth(truth_path, written)
        self._summary(demo, written, skipped, elapsed, truth_path)

    def _organizations(self) -> dict:
        """The demo facilities, found or created by identifier system: system -> uuid."""
        orgs = {}
        for facility in FACILITIES:
            org, _ = Organization.objects.get_or_create(
                identifier_system=facility.identifier_system, defaults={"name": facility.name}
            )
            orgs[facility.identifier_system] = org.uuid
        return orgs

    def _register(self, demo: DemoSet, org_by_system: dict, batch_size: int, show_bar: bool):
        written, skipped = [], []
        records = demo.records
        with tqdm(total=len(records), unit="patient", disable=not show_bar, file=sys.stderr) as bar:
            for start in range(0, len(records), batch_size):
                # One transaction per batch (fewer commits); each register_patient is a
                # savepoint inside it, so a refused record does not undo its batch.
                with transaction.atomic():
                    for record in records[start : start + batch_size]:
                        org = _managing_organization(record.data, org_by_system)
                        try:
                            patient = register_patient(
                                data=replace(record.data, managing_organization=org),
                                actor=None,
                                reason=REASON,
                            )
                        except (ValidationError, PatientConflict) as exc:
                            skipped.append((record, exc))
                        else:
                            written.append((record, patient.uuid))
                        bar.update()
        return written, skipped

    def _write_truth(self, path: Path, written: list) -> None:
        # Written beside and renamed over, so a reader never sees half a file.
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=TRUTH_COLUMNS)
                writer.writeheader()
                writer.writerows(record.truth_row(uuid) for record, uuid in written)
            os.replace(partial, path)
        except OSError as exc:
            raise CommandError(f"Cannot write the ground truth to {path}: {exc}") from exc

    def _summary(self, demo: DemoSet, written: list, skipped: list, elapsed: float, truth_path: Path):
        records = [record for record, _ in written]
        kinds = {k: sum(r.kind == k for r in records) for k in ("original", "duplicate", "twin")}
        corruptions = DemoSet(seed=demo.seed, records=tuple(records)).corruption_counts()
        rate = len(written) / elapsed if elapsed > 0 else 0.0
        out = self.stdout
        out.write(
            self.style.SUCCESS(
                f"Demo data (seed {demo.seed}): {len(written)} patients, "
                f"{len({r.person_id for r in records})} persons."
            )
        )
        out.write(
            f"  originals {kinds['original']}, duplicates {kinds['duplicate']}, "
            f"twins {kinds['twin']} ({kinds['twin'] // 2} pairs; not duplicates)"
        )
        if corruptions:
            out.write(
                "  duplicates by planted kind: " + ", ".join(f"{k} {corruptions[k]}" for k in CORRUPTIONS)
            )
        out.write(f"  written in {elapsed:.1f} s ({rate:.0f} patients/s)")
        out.write(f"  ground truth: {truth_path}")
        if skipped:
            out.write(
                self.style.WARNING(
                    f"  {len(skipped)} records refused and left out of the truth file "
                    "(their identifiers are registered already: use an empty database or another --seed); "
                    f"first: {skipped[0][1]}"
                )
            )
