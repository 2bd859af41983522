"""Prepared records for batch detection: every live patient loaded and prepared once.

``patients.queries.load_patient_data`` builds complete ``PatientData`` from model
instances (~280 µs a patient in our profile): right for one probe, too slow for a
million. The comparators read a handful of fields (``matching.prepare.prepare``), so
batch detection loads exactly those with ``values_list`` over a range of patient ids
(sequential index scans) and builds a ``PatientData`` holding only them. The children
come in ``load_patient_data``'s order (primary first, then by id), so the prepared
records, and so the scores and the evidence shown, are the same
(tests/matching/test_batch.py checks it).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from matching.prepare import PreparedRecord, prepare
from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from patients.models import Address, Contact, Identifier, Name, Patient

RANGE_PATIENTS = 5000


def load_comparison_data(low: int, high: int) -> dict[int, PatientData]:
    """The compared fields of the live patients with ``low <= id <= high``."""
    patients = (
        Patient.objects.filter(pk__gte=low, pk__lte=high)
        .order_by()
        .values_list("pk", "birth_date", "gender", "multiple_birth_order")
    )
    scalars = {pk: (born, gender, order) for pk, born, gender, order in patients}
    if not scalars:
        return {}
    names, identifiers, addresses, contacts = (defaultdict(list) for _ in range(4))

    def rows(model, *fields, order=("patient_id", "id")):
        return (
            model.all_objects.filter(patient_id__gte=low, patient_id__lte=high)
            .order_by(*order)
            .values_list("patient_id", *fields)
        )

    for pid, family, given, suffix, text in rows(
        Name, "family", "given", "suffix", "text", order=("patient_id", "-primary", "id")
    ):
        names[pid].append(NameData(family=family, given=tuple(given), suffix=tuple(suffix), text=text))
    for pid, system, value, type_, use in rows(Identifier, "system", "value", "type", "use"):
        identifiers[pid].append(IdentifierData(system=system, value=value, type=type_, use=use))
    for pid, line, city, postal_code in rows(
        Address, "line", "city", "postal_code", order=("patient_id", "-primary", "id")
    ):
        addresses[pid].append(AddressData(line=tuple(line), city=city, postal_code=postal_code))
    for pid, system, value, normalized in rows(Contact, "system", "value", "normalized_value"):
        contacts[pid].append(ContactData(system=system, value=value, normalized_value=normalized))
    return {
        pid: PatientData(
            names=tuple(names[pid]),
            identifiers=tuple(identifiers[pid]),
            addresses=tuple(addresses[pid]),
            contacts=tuple(contacts[pid]),
            birth_date=born,
            gender=gender,
            multiple_birth_order=order,
        )
        for pid, (born, gender, order) in scalars.items()
    }


def prepare_all(
    *, step: int = RANGE_PATIENTS, progress: Callable[[int], None] = lambda n: None
) -> tuple[dict[int, PreparedRecord], dict[str, float]]:
    """Every live patient, prepared, by id; and the seconds spent loading and preparing
    (wall clock, and this thread's CPU time for the preparing, which is all Python)."""
    records: dict[int, PreparedRecord] = {}
    shared: dict = {}  # each distinct name prepared once, its object shared (see prepare)
    seconds = {"load": 0.0, "prepare": 0.0, "prepare_cpu": 0.0}
    top = Patient.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for low in range(1, top + 1, step):
        started = time.perf_counter()
        data = load_comparison_data(low, low + step - 1)
        loaded, cpu = time.perf_counter(), time.thread_time()
        for pid, record in data.items():
            records[pid] = prepare(record, shared=shared)
        seconds["load"] += loaded - started
        seconds["prepare"] += time.perf_counter() - loaded
        seconds["prepare_cpu"] += time.thread_time() - cpu
        progress(len(data))
    return records, seconds
