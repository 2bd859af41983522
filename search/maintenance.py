"""Rebuilding and checking the whole search index, batch by batch.

Both walk every patient (soft-deleted ones too) in primary-key order, in short
transactions, so they can run on a live database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction

from patients.models import Patient
from search.indexing import INDEX_FIELDS, load_index_values, refresh_vocabulary, reindex_patients
from search.models import PatientIndex


def patient_id_batches(batch_size: int) -> Iterator[list[int]]:
    """All patient ids in ascending batches (keyset pagination: no long-lived cursor)."""
    last = 0
    while True:
        ids = list(
            Patient.all_objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def _lock_for_share(ids: list[int], *, skip_locked: bool) -> list[int]:
    """Share-lock the patients so no writer changes them while their rows are rebuilt.

    Writers hold ``FOR NO KEY UPDATE`` on a patient for their whole transaction and re-index it
    before committing, so a patient a writer holds is skipped here (``SKIP LOCKED``)
    rather than waited for: waiting on a batch could deadlock with a writer that locks
    a second patient out of key order (a linked patient). Skipped ids are retried one
    at a time at the end.
    """
    sql = "SELECT id FROM patients_patient WHERE id = ANY(%s) ORDER BY id FOR SHARE"
    with connection.cursor() as cursor:
        cursor.execute(sql + (" SKIP LOCKED" if skip_locked else ""), [ids])
        return [row[0] for row in cursor.fetchall()]


def rebuild_index(*, batch_size: int = 1000, progress: Callable[[int], None] = lambda n: None) -> dict:
    """Rewrite every index row from the patient rows; drop rows of deleted patients."""
    done = 0
    retry: list[int] = []
    for ids in patient_id_batches(batch_size):
        with transaction.atomic():
            locked = _lock_for_share(ids, skip_locked=True)
            reindex_patients(locked)
        retry += sorted(set(ids) - set(locked))
        done += len(ids)
        progress(len(ids))
    for pid in retry:
        with transaction.atomic():
            reindex_patients(_lock_for_share([pid], skip_locked=False))
    return {"patients": done, "retried": len(retry), "new_words": refresh_vocabulary()}


@dataclass
class Drift:
    checked: int = 0
    missing: list[int] = field(default_factory=list)  # live patient, no row
    extra: list[int] = field(default_factory=list)  # row of a deleted patient
    stale: dict[int, list[str]] = field(default_factory=dict)  # patient -> differing fields
    missing_words: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.stale or self.missing_words)


def _missing_words() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT DISTINCT unnest(string_to_array(name_text, ' ')) AS word "
            "FROM search_patientindex) words "
            "WHERE word <> '' AND NOT EXISTS (SELECT 1 FROM search_nameword n WHERE n.word = words.word)"
        )
        return cursor.fetchone()[0]


def check_index(*, batch_size: int = 1000, progress: Callable[[int], None] = lambda n: None) -> Drift:
    """Compare every row with the row the patient's data gives now."""
    drift = Drift()
    for ids in patient_id_batches(batch_size):
        # One snapshot per batch: the expected and stored rows are read at one moment
        # (inside a caller's transaction, that transaction's isolation applies).
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            expected = load_index_values(ids)
            stored = {
                row.pop("patient_id"): row
                for row in PatientIndex.objects.filter(patient_id__in=ids).values("patient_id", *INDEX_FIELDS)
            }
        drift.missing += sorted(expected.keys() - stored.keys())
        drift.extra += sorted(stored.keys() - expected.keys())
        for pid in sorted(expected.keys() & stored.keys()):
            differing = [f for f in INDEX_FIELDS if expected[pid][f] != stored[pid][f]]
            if differing:
                drift.stale[pid] = differing
        drift.checked += len(ids)
        progress(len(ids))
    drift.missing_words = _missing_words()
    return drift
