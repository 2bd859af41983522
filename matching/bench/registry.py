"""Load a benchmark data set into an empty registry through the write service.

Every record goes through ``register_patient`` (validation, normalisation, history,
the search index) with matching switched off, as for an initial bulk load: the
benchmark scores afterwards. Resetting between data sets truncates the registry's
tables, which is why the command refuses a database that had patients before it.
"""

from __future__ import annotations

import hashlib
import json
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
# Which data set the registry holds, and how it was loaded (bench database only, not
# a Django model): what ``--rescore`` needs to score that registry again after a code
# change without re-registering it (registration is by far the slowest step).
MANIFEST_TABLE = "bench_match_loaded"


class RescoreError(Exception):
    """The registry does not hold the data set asked to be re-scored."""


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

    def to_dict(self) -> dict:
        return {
            "registered": self.registered,
            "seconds": self.seconds,
            "refused": [list(r) for r in self.refused],
            "identifier_conflicts": [list(c) for c in self.identifier_conflicts],
            "patient_of": self.patient_of,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LoadReport:
        return cls(
            registered=data["registered"],
            seconds=data["seconds"],
            refused=[tuple(r) for r in data["refused"]],
            identifier_conflicts=[tuple(c) for c in data["identifier_conflicts"]],
            patient_of=dict(data["patient_of"]),
        )


def dataset_fingerprint(dataset: Dataset) -> str:
    """A digest of every record (key, truth and content): the same data set, loaded the
    same way, or not. (Dataclass reprs are deterministic.)"""
    digest = hashlib.sha256(f"{dataset.name}|{dataset.link_type}|{dataset.twin_pairs}".encode())
    for record in dataset.records:
        digest.update(f"{record.key}|{record.cluster}|{record.source}|{record.data!r}".encode())
    return digest.hexdigest()


def _manifest_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MANIFEST_TABLE} (dataset text NOT NULL, fingerprint text NOT NULL,"
            " report jsonb NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())"
        )


def save_manifest(dataset: Dataset, report: LoadReport) -> None:
    _manifest_table()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {MANIFEST_TABLE}")
        cursor.execute(
            f"INSERT INTO {MANIFEST_TABLE} (dataset, fingerprint, report) VALUES (%s, %s, %s)",
            [dataset.name, dataset_fingerprint(dataset), json.dumps(report.to_dict())],
        )


def loaded_report(dataset: Dataset) -> LoadReport:
    """The load report of ``dataset`` if the registry holds exactly it; else RescoreError."""
    _manifest_table()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT dataset, fingerprint, report FROM {MANIFEST_TABLE}")
        rows = cursor.fetchall()
    if not rows:
        raise RescoreError("No bench data set is loaded in this database: run without --rescore first.")
    name, fingerprint, report = rows[0]
    report = LoadReport.from_dict(report if isinstance(report, dict) else json.loads(report))
    if name != dataset.name or fingerprint != dataset_fingerprint(dataset):
        raise RescoreError(
            f"This database holds {name!r} as loaded earlier, not this {dataset.name!r} "
            "(other records, size or seed): run without --rescore to load it."
        )
    patients = apps.get_model("patients", "Patient").all_objects.count()
    if patients != report.registered:
        raise RescoreError(
            f"The registry holds {patients} patients but the load of {name!r} registered "
            f"{report.registered}: it was changed since; run without --rescore."
        )
    return report


def reset_registry() -> None:
    """Empty the patient, search and matching tables (throw-away bench database only)."""
    tables = []
    for label in ("patients", "search", "matching"):
        for model in apps.get_app_config(label).get_models():
            table = model._meta.db_table
            if table not in KEEP and not model._meta.proxy and model._meta.managed:
                tables.append(table)
    _manifest_table()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(sorted(set(tables)))} RESTART IDENTITY CASCADE")
        cursor.execute(f"DELETE FROM {MANIFEST_TABLE}")
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
