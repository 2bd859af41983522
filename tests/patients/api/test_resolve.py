"""GET /api/v1/identifiers/resolve/: the PIX cross-reference, through merges.

The merge service does not exist yet, so the merged state is written here through the
ORM the way the architecture defines it: the duplicate inactive, a replaced-by link
from it to the survivor and a replaces link back.
"""

from dataclasses import replace

import pytest

from patients.codes import LinkType
from patients.data import IdentifierData
from patients.models import Link, Patient
from patients.services import delete_patient, patient_to_data, register_patient, update_patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, patient_data
from tests.patients.api.helpers import errors_of

pytestmark = pytest.mark.django_db

RESOLVE = "/api/v1/identifiers/resolve/"
HOSPITAL_B = "urn:oid:1.2.36.146.595.217.0.2"


def merge_by_hand(duplicate: Patient, survivor: Patient) -> None:
    duplicate.active = False
    duplicate.save(update_fields=["active"])
    Link.objects.create(patient=duplicate, other=survivor, type=LinkType.REPLACED_BY)
    Link.objects.create(patient=survivor, other=duplicate, type=LinkType.REPLACES)


def register(mrn: str, **kwargs) -> Patient:
    return register_patient(data=patient_data(mrn=mrn, **kwargs))


def test_resolves_an_identifier_to_its_patient_with_all_its_identifiers(as_integrator):
    ssn = IdentifierData(system=SSN_SYSTEM, value="123")
    patient = register("77")
    data = patient_to_data(patient)
    update_patient(
        patient=patient, data=replace(data, identifiers=(*data.identifiers, ssn)), expected_version=1
    )

    response = as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "77"})

    assert response.status_code == 200
    body = response.json()
    assert body["patient"]["id"] == str(patient.uuid)
    assert body["resolved_via"] == []
    assert [(i["system"], i["value"], i["patient"]) for i in body["identifiers"]] == [
        (MRN_SYSTEM, "77", str(patient.uuid)),
        (SSN_SYSTEM, "123", str(patient.uuid)),
    ]
    assert response["ETag"] == 'W/"2"'


def test_identifier_of_a_merged_away_patient_resolves_to_the_survivor(as_integrator):
    duplicate = register("77", given=("Jon",))
    survivor = register("901", phone=None)
    merge_by_hand(duplicate, survivor)

    response = as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "77"})

    assert response.status_code == 200
    body = response.json()
    assert body["patient"]["id"] == str(survivor.uuid)
    assert body["patient"]["active"] is True
    assert body["resolved_via"] == [str(duplicate.uuid)]
    assert [(i["value"], i["patient"]) for i in body["identifiers"]] == [
        ("901", str(survivor.uuid)),
        ("77", str(duplicate.uuid)),
    ]


def test_a_chain_of_merges_is_followed_to_its_end(as_integrator):
    first = register("1")
    second = register("2", phone=None)
    last = register("3", phone="617 555 0177", postal_code="02139")
    merge_by_hand(first, second)
    merge_by_hand(second, last)

    body = as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "1"}).json()

    assert body["patient"]["id"] == str(last.uuid)
    assert body["resolved_via"] == [str(first.uuid), str(second.uuid)]
    assert {i["value"] for i in body["identifiers"]} == {"1", "2", "3"}
    # Resolving the survivor's own identifier gives the same cross-reference.
    direct = as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "3"}).json()
    assert direct["identifiers"] == body["identifiers"]


def test_a_cycle_of_replaced_by_links_is_a_409_not_a_hang(as_integrator):
    a = register("1")
    b = register("2", phone=None)
    Link.objects.create(patient=a, other=b, type=LinkType.REPLACED_BY)
    Link.objects.create(patient=b, other=a, type=LinkType.REPLACED_BY)

    response = as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "1"})

    assert response.status_code == 409
    assert errors_of(response)[0]["code"] == "link-cycle"


def test_unknown_identifier_is_404(as_integrator):
    response = as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "404"})
    assert response.status_code == 404
    assert "urn:oid:1.2.36.146.595.217.0.1|404" in errors_of(response)[0]["message"]


def test_identifier_of_a_deleted_patient_does_not_resolve(as_integrator):
    patient = register("77")
    delete_patient(patient=patient)
    assert as_integrator.get(RESOLVE, {"system": MRN_SYSTEM, "value": "77"}).status_code == 404


def test_system_and_value_are_required(as_integrator):
    response = as_integrator.get(RESOLVE, {"system": HOSPITAL_B})
    assert response.status_code == 400
    assert {e["field"] for e in errors_of(response)} == {"value"}


def test_values_are_matched_after_whitespace_cleaning(as_integrator):
    patient = register("77")
    body = as_integrator.get(RESOLVE, {"system": f" {MRN_SYSTEM} ", "value": " 77 "}).json()
    assert body["patient"]["id"] == str(patient.uuid)
