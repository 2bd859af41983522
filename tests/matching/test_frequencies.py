"""refresh_name_frequencies: name keys counted once per live patient, accents folded."""

from dataclasses import replace
from io import StringIO

import pytest
from django.core.management import call_command

from matching.frequencies import load_term_frequencies
from matching.models import NameFrequency
from matching.services import matching_disabled, term_frequencies
from patients.data import NameData
from patients.services import delete_patient, register_patient
from tests.factories import patient_data

pytestmark = pytest.mark.django_db


def _register(family: str, given: tuple[str, ...], mrn: str, **extra):
    with matching_disabled():
        return register_patient(data=patient_data(family=family, given=given, mrn=mrn, phone=None, **extra))


def _counts(kind: str) -> dict[str, int]:
    return dict(NameFrequency.objects.filter(kind=kind).values_list("key", "count"))


def test_refresh_counts_keys_once_per_patient_with_accents_folded():
    _register("Müller", ("José",), "1")
    _register("Muller", ("Jose", "Maria"), "2")
    _register("MÜLLER", ("Anna",), "3")
    two_names = patient_data(family="Smith", given=("John",), mrn="4", phone=None)
    # The same family name twice (official and usual) still counts once for this patient.
    two_names = replace(two_names, names=(*two_names.names, NameData(family="Smith", given=("Jack",))))
    with matching_disabled():
        register_patient(data=two_names)
    out = StringIO()

    call_command("refresh_name_frequencies", stdout=out)

    family, given = _counts("family"), _counts("given")
    assert family == {"muller": 3, "smith": 1, "": 4}
    assert given == {"jose": 2, "anna": 1, "john": 1, "jack": 1, "": 4}
    assert "Counted 4 live patients" in out.getvalue()


def test_refresh_leaves_out_deleted_patients_and_replaces_old_rows():
    NameFrequency.objects.create(kind="family", key="stale", count=99)
    kept = _register("Okafor", ("Ada",), "1")
    gone = _register("Okafor", ("Obi",), "2")
    delete_patient(patient=gone, reason="Registered in error")

    call_command("refresh_name_frequencies", stdout=StringIO())

    assert _counts("family") == {"okafor": 1, "": 1}
    assert kept.pk  # the live one was counted


def test_whole_table_frequencies_equal_the_per_probe_query():
    for number, (family, given) in enumerate([("Smith", "John"), ("Smith", "Mary"), ("Núñez", "Luis")]):
        _register(family, (given,), str(number))
    call_command("refresh_name_frequencies", stdout=StringIO())
    probe = patient_data(family="Nunez", given=("Mary",))

    per_probe = term_frequencies(probe)
    whole = load_term_frequencies()

    assert per_probe == {"family": {"nunez": 1 / 3}, "given": {"mary": 1 / 3}}
    assert whole["family"]["nunez"] == per_probe["family"]["nunez"]
    assert whole["family"]["smith"] == pytest.approx(2 / 3)
