"""Load a benchmark data set into an empty registry through the write service.

Every record goes through ``register_patient`` (validation, normalisation, history,
the search index) with matching switched off, as for an initial bulk load: the
benchmark scores afterwards. Resetting between data sets truncates the registry's
tables, which is why the command refuses a database that had patients before it.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from matching.bench.datasets import Dataset
from matching.models import MatchModelVersion, NameFrequency
from matching.prepare import family_tf_key, given_tf_key
from matching.services import forget_cached_matcher, matching_disabled
from patients.errors import IdentifierConflict
from patients.queries import load_patient_data
from patients.services import register_patient

REASON = "bench_match"
# Tables kept across data sets: the stored match model versions.
KEEP = {MatchModelVersion._meta.db_table}


@dataclass
class LoadReport:
    registered: int = 0
    seconds: float = 0.0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (record key, why)
    # A later record carrying a national id that an earlier one holds: the write
    # service refuses it (IdentifierConflict names the holder), so it is registered
    # without that identifier; (record key, holder's record key).
    identifier_conflicts: list[tuple[str, str]] = field(default_factory=list)
    patient_of: dict[str, int] = field(default_factory=dict)  # record key -> patient id

    @property
    def rate(self) -> float:
        return self.registered / self.seconds if self.seconds else 0.0


def reset_registry() -> None:
    """Empty the patient, search and matching tables (throw-away bench database only)."""
    tables = []
    for label in ("patients", "search", "matching"):
        for model in apps.get_app_config(label).get_models():
            table = model._meta.db_table
            if table not in KEEP and not model._meta.proxy and model._meta.managed:
                tables.append(table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(sorted(set(tables)))} RESTART IDENTITY CASCADE")
    forget_cached_matcher()


def register_dataset(dataset: Dataset, *, batch_size: int = 250, progress: bool = True) -> LoadReport:
    report = LoadReport()
    started = time.perf_counter()
    key_of_patient: dict[int, str] = {}
    records = dataset.records
    with matching_disabled():
        for start in range(0, len(records), batch_size):
            with transaction.atomic():
                for record in records[start : start + batch_size]:
                    patient = _register(record, report, key_of_patient)
                    if patient is not None:
                        report.patient_of[record.key] = patient.pk
                        key_of_patient[patient.pk] = record.key
            if progress:
                done = min(start + batch_size, len(records))
                rate = done / (time.perf_counter() - started)
                print(
                    f"\r  {dataset.name}: registered {done}/{len(records)} ({rate:.0f}/s)",
                    end="",
                    file=sys.stderr,
                )
    if progress:
        print(file=sys.stderr)
    report.registered = len(report.patient_of)
    report.seconds = time.perf_counter() - started
    refresh_name_frequencies()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    forget_cached_matcher()
    return report


def _register(record, report: LoadReport, key_of_patient: dict[int, str]):
    data = record.data
    for _ in range(len(data.identifiers) + 1):
        try:
            with transaction.atomic():
                return register_patient(data=data, actor=None, reason=REASON)
        except IdentifierConflict as exc:
            holder = key_of_patient.get(exc.existing.pk, str(exc.existing.pk))
            report.identifier_conflicts.append((record.key, holder))
            data = replace(
                data,
                identifiers=tuple(
                    i for i in data.identifiers if (i.system, i.value) != (exc.system, exc.value)
                ),
            )
        except ValidationError as exc:
            report.refused.append((record.key, "; ".join(exc.messages)))
            return None
    return None


def refresh_name_frequencies() -> None:
    """Count name keys over the registry for the term-frequency adjustment.

    Uses ``manage.py refresh_name_frequencies`` when it exists; otherwise counts the
    same keys (``matching.prepare.*_tf_key``, one count per patient) here.
    """
    from django.core.management import call_command, get_commands

    if "refresh_name_frequencies" in get_commands():
        call_command("refresh_name_frequencies", verbosity=0)
        return
    counts: Counter = Counter()
    ids = list(apps.get_model("patients", "Patient").objects.values_list("pk", flat=True))
    for start in range(0, len(ids), 2000):
        for data in load_patient_data(ids[start : start + 2000]).values():
            keys = {("family", family_tf_key(n.family)) for n in data.names if n.family}
            keys |= {("given", given_tf_key(n.given)) for n in data.names if n.given}
            counts.update(k for k in keys if k[1])
    rows = [NameFrequency(kind=kind, key=key, count=n) for (kind, key), n in counts.items()]
    rows += [NameFrequency(kind=kind, key="", count=len(ids)) for kind in NameFrequency.Kind.values]
    with transaction.atomic():
        NameFrequency.objects.all().delete()
        NameFrequency.objects.bulk_create(rows, batch_size=5000)
