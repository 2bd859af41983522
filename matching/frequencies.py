"""Name frequencies for the term-frequency adjustment (``NameFrequency``).

``refresh_name_frequencies`` counts, over the live patients (not soft-deleted, not
merged away), how many carry each family and given name key, under the keys the
comparators report for an exact agreement (``matching.prepare.family_tf_key`` and
``given_tf_key``): "Müller" and "Muller" count as one name. A patient with two
names that share a key counts once. Names stream from a server-side cursor in
patient order, so memory holds one patient and the counters (one entry per distinct
key), never the patients; the table is replaced in one transaction, so readers see
the old or the new counts, never a mix.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from django.db import connection, transaction

from matching.models import NameFrequency
from matching.prepare import family_tf_key, given_tf_key

# Rows fetched per round trip from the server-side cursor.
FETCH_SIZE = 20_000
# A live patient: not soft-deleted, and not an inactive record replaced by a merge.
LIVE_NAMES_SQL = """
    SELECT n.patient_id, n.family, n.given, n.text
    FROM patients_name n JOIN patients_patient p ON p.id = n.patient_id
    WHERE p.deleted_at IS NULL
      AND (p.active OR NOT EXISTS (
          SELECT 1 FROM patients_link l WHERE l.patient_id = p.id AND l.type = 'replaced-by'))
    ORDER BY n.patient_id
"""


@dataclass(frozen=True)
class FrequencyStats:
    patients: int
    family_keys: int
    given_keys: int
    seconds: float


def name_keys(family: str, given: list[str] | tuple[str, ...], text: str) -> tuple[str, str]:
    """(family key, given key) of one stored name, as ``matching.prepare`` reads it:
    a name with only a free text is "given... family"."""
    if not family and not given and text:
        *first, last = text.split() or [""]
        family, given = last, first
    return family_tf_key(family) if family else "", given_tf_key(tuple(given)) if given else ""


def count_name_keys(rows) -> tuple[int, Counter, Counter]:
    """Count keys over ``(patient_id, family, given, text)`` rows sorted by patient.

    Returns (patients counted, family counts, given counts). Names repeat a lot, so
    each distinct spelling is folded once (a memo bounded by the distinct names).
    """
    families: Counter = Counter()
    givens: Counter = Counter()
    memo: dict[tuple, tuple[str, str]] = {}
    patients = 0
    current, fam, giv = None, set(), set()
    for patient_id, family, given, text in rows:
        if patient_id != current:
            if current is not None:
                patients += 1
                families.update(fam)
                givens.update(giv)
            current, fam, giv = patient_id, set(), set()
        spelling = (family, tuple(given or ()), text)
        keys = memo.get(spelling)
        if keys is None:
            keys = memo[spelling] = name_keys(family, spelling[1], text)
        if keys[0]:
            fam.add(keys[0])
        if keys[1]:
            giv.add(keys[1])
    if current is not None:
        patients += 1
        families.update(fam)
        givens.update(giv)
    return patients, families, givens


def _stream_live_names():
    # A named (server-side) cursor: the rows arrive in batches, never all at once.
    with connection.chunked_cursor() as cursor:
        cursor.execute(LIVE_NAMES_SQL)
        while batch := cursor.fetchmany(FETCH_SIZE):
            yield from batch


def refresh_name_frequencies() -> FrequencyStats:
    """Recount the name keys of all live patients and replace ``NameFrequency``."""
    started = time.perf_counter()
    patients, families, givens = count_name_keys(_stream_live_names())
    rows = [NameFrequency(kind=NameFrequency.Kind.FAMILY, key=k, count=c) for k, c in families.items()]
    rows += [NameFrequency(kind=NameFrequency.Kind.GIVEN, key=k, count=c) for k, c in givens.items()]
    rows += [NameFrequency(kind=kind, key="", count=patients) for kind in NameFrequency.Kind.values]
    with transaction.atomic():
        NameFrequency.objects.all().delete()
        NameFrequency.objects.bulk_create(rows, batch_size=5000)
    return FrequencyStats(
        patients=patients,
        family_keys=len(families),
        given_keys=len(givens),
        seconds=time.perf_counter() - started,
    )


def load_term_frequencies() -> dict[str, dict[str, float]]:
    """The whole table as the model's ``tf`` argument: kind -> key -> relative frequency.

    For batch work: one read instead of one query per probe (``services.term_frequencies``
    gives the same numbers for one probe's keys).
    """
    counts: dict[str, dict[str, int]] = {kind: {} for kind in NameFrequency.Kind.values}
    rows = NameFrequency.objects.values_list("kind", "key", "count")
    for kind, key, count in rows.iterator(chunk_size=20_000):
        counts[kind][key] = count
    tf: dict[str, dict[str, float]] = {}
    for kind, values in counts.items():
        total = values.pop("", 0)
        if total > 0:
            tf[kind] = {key: count / total for key, count in values.items()}
    return tf


def frequencies_missing() -> bool:
    return not NameFrequency.objects.filter(key="").exists()
