"""Export the registry as FHIR NDJSON: one Patient resource per line, as the FHIR read
gives it (the FHIR Bulk Data format, which ``import_patients`` reads back).

Patients are read in id order, a batch at a time (one statement per batch with every
child table), so memory stays flat at any size. Each batch is written to the access
audit trail (action ``export``, its patients) before its lines are written: like a read,
no record leaves without its audit event. A file is written beside its final name and
renamed at the end, so an interrupted export never leaves a complete-looking file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from audit.models import Action
from audit.services import record
from fhir_api.mapping import data_to_fhir
from patients.models import Patient
from patients.queries import with_data

MAX_BATCH = 10_000
# Without a terminal: a plain progress line at most this often.
PLAIN_PROGRESS_SECONDS = 10


def _line(patient: Patient, data) -> str:
    """The patient's resource as ``GET /fhir/Patient/<id>`` gives it, on one line."""
    resource = data_to_fhir(
        data,
        id=patient.uuid,
        version=patient.version,
        last_updated=patient.updated_at,
        organization_name=patient.managing_organization.name if patient.managing_organization_id else "",
    )
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


def iso_date_or_time(value: str) -> datetime:
    """An ISO date or date-time (naive ones are UTC)."""
    moment = parse_datetime(value)
    if moment is None and (day := parse_date(value)) is not None:
        moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise ValueError(value)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def batch_size(value: str) -> int:
    size = int(value)
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(value)
    return size


class Command(BaseCommand):
    help = (
        "Export patients as FHIR NDJSON (one Patient per line, as GET /fhir/Patient/<id> gives it) "
        "to FILE, or to stdout with '-'. Soft-deleted patients are never exported; merged-away "
        "records are (active false, link replaced-by) unless --active-only."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "output", metavar="FILE", help="Where to write, e.g. Patient.ndjson; '-' for stdout."
        )
        parser.add_argument(
            "--since",
            type=iso_date_or_time,
            metavar="WHEN",
            help="Only patients changed at or after this ISO date or date-time (UTC unless it says).",
        )
        parser.add_argument(
            "--active-only", action="store_true", help="Leave out inactive (merged-away) records."
        )
        parser.add_argument("--force", action="store_true", help="Overwrite FILE if it exists.")
        parser.add_argument(
            "--batch-size", type=batch_size, default=1000, help=f"Patients per batch (1-{MAX_BATCH:,})."
        )
        parser.add_argument(
            "--progress", action="store_true", help="Progress bar even when stderr is not a terminal."
        )

    def handle(self, *args, output: str, since, active_only: bool, force: bool, batch_size: int, **opts):
        patients = Patient.objects.filter(deleted_at__isnull=True)
        if active_only:
            patients = patients.filter(active=True)
        if since is not None:
            patients = patients.filter(updated_at__gte=since)
        query = " ".join(
            part
            for part in (f"since={since.isoformat()}" if since else "", "active-only" if active_only else "")
            if part
        )
        to_stdout = output == "-"
        # Summary and progress go to stderr when the records go to stdout.
        log = (lambda line: sys.stderr.write(line + "\n")) if to_stdout else self.stdout.write
        if to_stdout:
            target, partial = sys.stdout, None
        else:
            path = Path(output)
            if path.is_dir():
                raise CommandError(
                    f"{path} is a directory: name the file to write, e.g. {path / 'Patient.ndjson'}."
                )
            if path.exists() and not force:
                raise CommandError(f"{path} exists: choose another name or pass --force.")
            if not path.parent.is_dir():
                raise CommandError(f"No directory {path.parent} to write {path.name} in.")
            partial = path.with_name(f".{path.name}.partial")
            try:
                target = partial.open("w", encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"Cannot write in {path.parent}: {exc.strerror}.") from None

        total = patients.count()
        tty = (sys.stderr.isatty() or opts["progress"]) and opts["verbosity"] > 0
        bar = tqdm(total=total, unit="patient", file=sys.stderr) if tty else None
        started = last_line = time.monotonic()
        written, last_id = 0, 0
        try:
            while True:
                ids = list(
                    patients.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size]
                )
                if not ids:
                    break
                # One statement for the batch's rows with their children, read straight into
                # the data shape (no model instance per child row); a patient deleted since
                # the id query is left out.
                batch = list(with_data(Patient.objects.filter(pk__in=ids).order_by("pk"), merge_links=True))
                if batch:
                    record(
                        action=Action.EXPORT,
                        patients=[p.uuid for p, _ in batch],
                        query=query,
                        detail={"format": "ndjson", "output": "stdout" if to_stdout else str(output)},
                    )
                    target.write("".join(_line(p, data) for p, data in batch))
                written += len(batch)
                last_id = ids[-1]
                if bar is not None:
                    bar.update(len(ids))
                elif opts["verbosity"] > 0 and time.monotonic() - last_line >= PLAIN_PROGRESS_SECONDS:
                    last_line = time.monotonic()
                    log(f"  {written:,} of about {total:,} patients exported")
            target.flush()
            if partial is not None:
                os.fsync(target.fileno())
                target.close()
                os.replace(partial, path)
        except BaseException:
            if partial is not None:
                target.close()
                partial.unlink(missing_ok=True)
            raise
        finally:
            if bar is not None:
                bar.close()
        seconds = time.monotonic() - started
        rate = f" ({written / seconds:,.0f} patients/s)" if seconds > 0 and written else ""
        log(f"Exported {written:,} patients to {'stdout' if to_stdout else output} in {seconds:.1f} s{rate}.")
