"""Building and writing index rows.

``index_values`` is the one pure function that turns a patient's data into its index
row; the ``patient_changed`` receiver, the rebuild and check commands and the
benchmark's bulk loader all use it, so every path produces the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from psycopg.types.json import Jsonb

from patients.codes import PHONE_SYSTEMS, ContactSystem, LinkType
from patients.copyrows import copy_rows
from patients.data import (
    ContactData,
    NameData,
    PatientData,
    clean_text,
    data_to_json,
    in_stored_order,
    normalize_email,
    normalize_phone,
)
from patients.models import Link, Patient
from patients.queries import with_data
from search import keys
from search.models import NameWord, PatientIndex
from search.normalize import family_tokens, fold, name_words, phone_suffix, phonetic_codes, postcode_key

# Index columns written from ``index_values`` (the tsvector is generated from them).
INDEX_FIELDS = (
    "merged", "display_name", "name_text", "family_names", "given_names", "phonetic_keys",
    "block_keys", "birth_date", "birth_year", "gender", "postcodes", "cities", "phones",
    "phone_suffixes", "emails", "identifier_keys", "identifier_values", "keyword_text",
    "address_text", "match_data",
)  # fmt: skip


def _name_parts(name: NameData) -> tuple[list[str], list[str]]:
    """(family tokens, given words) of a name; a text-only name reads as "given... family"."""
    if name.family or name.given:
        return family_tokens(name.family), [w for g in name.given for w in name_words(g)]
    words = name_words(name.text)
    return words[-1:], words[:-1]


def _display(name: NameData) -> str:
    return clean_text(" ".join([*name.given, name.family])) or clean_text(name.text)


def _unique_sorted(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v})


def contact_phone(contact: ContactData) -> str:
    """The E.164 form of a phone contact, also for data that skipped normalisation."""
    if contact.normalized_value:
        return contact.normalized_value
    try:
        return normalize_phone(contact.value)
    except Exception:  # a probe may carry anything; an unparsable phone just does not key
        return ""


def index_values(data: PatientData, *, merged: bool = False) -> dict[str, Any]:
    """The index row of a patient (without its id). Pure: same data, same row."""
    names = sorted(data.names, key=lambda n: not n.primary)  # stable: primary first
    parts = [_name_parts(n) for n in names]
    all_words = [w for n in names for w in name_words(" ".join([*n.given, n.family])) or name_words(n.text)]
    phones = [contact_phone(c) for c in data.contacts if c.system in PHONE_SYSTEMS]
    emails = [
        c.normalized_value or normalize_email(c.value)
        for c in data.contacts
        if c.system == ContactSystem.EMAIL
    ]
    identifier_values = _unique_sorted(fold(i.value) for i in data.identifiers)
    postcodes = _unique_sorted(postcode_key(a.postal_code) for a in data.addresses)
    year = data.birth_date.year if data.birth_date else None
    address_words = [
        fold(" ".join(p for p in (*a.line, a.city, a.postal_code, a.state, a.text) if p))
        for a in data.addresses
    ]
    return {
        "merged": merged,
        "display_name": _display(names[0]) if names else "",
        "name_text": " ".join(dict.fromkeys(all_words)),
        "family_names": _unique_sorted(w for family, _ in parts for w in family),
        "given_names": _unique_sorted(w for _, given in parts for w in given),
        "phonetic_keys": _unique_sorted(
            [f"{alg}:{code}" for w in all_words for alg, code in phonetic_codes(w).items()]
            + ([f"y:{year}"] if year else [])
        ),
        "block_keys": keys.record_keys(parts, data.birth_date, postcodes, street_addresses(data)),
        "birth_date": data.birth_date,
        "birth_year": year,
        "gender": data.gender or "",
        "postcodes": postcodes,
        "cities": _unique_sorted(fold(a.city) for a in data.addresses),
        "phones": _unique_sorted(phones),
        "phone_suffixes": _unique_sorted(phone_suffix(p) for p in phones),
        "emails": _unique_sorted(emails),
        "identifier_keys": _unique_sorted(f"{i.system}|{i.value}" for i in data.identifiers),
        "identifier_values": identifier_values,
        "keyword_text": " ".join([*identifier_values, *([f"y{year}"] if year else [])]),
        "address_text": " ".join(w for w in address_words if w),
        "match_data": data_to_json(in_stored_order(data)),
    }


def copy_values(values: dict[str, Any]) -> list:
    """An index row's ``INDEX_FIELDS`` as COPY takes them (the JSON column adapted)."""
    return [Jsonb(values[f]) if f == "match_data" else values[f] for f in INDEX_FIELDS]


def street_addresses(data: PatientData) -> list[tuple[tuple[str, ...], str]]:
    """(lines, postcode key) per address: what ``keys.street_postcode`` keys on."""
    return [(tuple(a.line), postcode_key(a.postal_code)) for a in data.addresses]


def is_merged_away(*, active: bool, replaced_by: bool) -> bool:
    return not active and replaced_by


def load_index_values(patient_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Index rows of the given live (not soft-deleted) patients, in one query.

    The data is ``patients.queries``' (children in the order ``patient_to_data`` uses),
    so a row built here equals the row built from registration data.
    """
    patients = Patient.all_objects.filter(pk__in=list(patient_ids), deleted_at__isnull=True).annotate(
        _replaced=Exists(Link.all_objects.filter(patient=OuterRef("pk"), type=LinkType.REPLACED_BY))
    )
    return {
        p.pk: index_values(data, merged=is_merged_away(active=p.active, replaced_by=p._replaced))
        for p, data in with_data(patients)
    }


def write_index_rows(rows: dict[int, dict[str, Any]]) -> None:
    """Insert or update the given rows, and add their name words to the vocabulary."""
    if not rows:
        return
    PatientIndex.objects.bulk_create(
        [PatientIndex(patient_id=pid, **values) for pid, values in rows.items()],
        update_conflicts=True,
        unique_fields=["patient"],
        update_fields=list(INDEX_FIELDS),
    )
    words = sorted({w for values in rows.values() for w in values["name_text"].split()})
    # After commit: two writers adding the same brand-new word would otherwise wait
    # on each other's uncommitted insert while holding patient locks. The vocabulary
    # only serves the fuzzy search pass, so a moment's lag is harmless.
    transaction.on_commit(lambda: add_words(words))


def add_words(words: list[str]) -> None:
    if not words:
        return
    # One statement (bulk_create would wrap it in a transaction: three round trips).
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {NameWord._meta.db_table} (word) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            [list(words)],
        )


def refresh_vocabulary() -> int:
    """Add any missing name words of the whole index (after a bulk load or rebuild)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO search_nameword (word) "
            "SELECT DISTINCT unnest(string_to_array(name_text, ' ')) FROM search_patientindex "
            "WHERE name_text <> '' ON CONFLICT DO NOTHING"
        )
        return cursor.rowcount


def reindex_patients(patient_ids: Iterable[int]) -> None:
    """Bring the rows of these patients in step: upsert the live, drop the rest."""
    ids = set(patient_ids)
    rows = load_index_values(ids)
    gone = ids - rows.keys()
    if gone:
        PatientIndex.objects.filter(patient_id__in=gone).delete()
    write_index_rows(rows)


def reindex_patient(patient: Patient) -> None:
    if patient.deleted_at is not None:
        PatientIndex.objects.filter(patient_id=patient.pk).delete()
        return
    reindex_patients([patient.pk])


def on_patient_changed(
    sender, *, patient: Patient, action: str = "", data: PatientData | None = None, **kwargs
) -> None:
    """``patient_changed`` receiver: runs inside the writer's transaction, so a match
    or search right after the write (even before commit, in that transaction) sees it.

    A registration sends the data it was written from, an update the data it read
    back once for every receiver: the row is built from that, as the bulk importer's
    are (neither patient can be deleted or merged away), without reading the patient
    again."""
    if action in ("registered", "updated") and data is not None:
        write_index_rows({patient.pk: index_values(data)})
        return
    reindex_patient(patient)


def index_new_patients(data: dict[int, PatientData]) -> None:
    """Index rows of patients just created from ``data`` (the bulk importer): built by
    ``index_values`` from the data they were written from, so no read-back, and
    streamed with COPY (new patients have no row yet). The rows equal what a rebuild
    writes (``check_search_index`` agrees; tests/imports check it)."""
    rows = {pid: index_values(in_stored_order(d)) for pid, d in data.items()}
    copy_rows(
        PatientIndex._meta.db_table,
        ["patient_id", *INDEX_FIELDS],
        ([pid, *copy_values(values)] for pid, values in rows.items()),
    )
    words = sorted({w for values in rows.values() for w in values["name_text"].split()})
    transaction.on_commit(lambda: add_words(words))
    merge_gin_pending_lists()


def merge_gin_pending_lists() -> None:
    """Move the index's freshly inserted GIN entries into the GIN trees now.

    GIN indexes buffer new entries in a pending list (up to gin_pending_list_limit,
    4 MB) that every lookup scans in full until vacuum or an overflowing insert merges
    it. After a bulk insert that list is long, and a block lookup of the batch's own
    matching took ~12 ms instead of ~0.3 ms (docs/import.md). Merging costs what the
    overflowing insert or autovacuum would pay anyway, once per batch.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = %s::regclass AND a.amname = 'gin'",
            [PatientIndex._meta.db_table],
        )


def on_patients_bulk_created(
    sender, *, patient_ids: list[int], data: dict[int, PatientData] | None = None, **kwargs
) -> None:
    """``patients_bulk_created`` receiver (the bulk importer): index a batch of new
    patients inside the importer's transaction, so the batch's matching finds them."""
    if data is not None:
        index_new_patients(data)
    else:
        reindex_patients(patient_ids)
