"""The pure mapper: FHIR Patient -> PatientData -> FHIR Patient keeps every stored element."""

from datetime import date
from uuid import UUID

import pytest

from fhir_api.errors import FhirError
from fhir_api.mapping import data_to_fhir, fhir_expression, patient_from_fhir, reference_id

OTHER = "5b0e6f1c-6a53-4a55-9f1f-3f3cb9e0a001"
ORG = "5b0e6f1c-6a53-4a55-9f1f-3f3cb9e0a002"
MR = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "MR",
            "display": "Medical record number",
        }
    ]
}

MINIMAL = {"resourceType": "Patient", "name": [{"family": "Smith"}]}
FULL = {
    "resourceType": "Patient",
    "identifier": [
        {
            "use": "official",
            "type": MR,
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
            "period": {"start": "2001-05-06"},
            "assigner": {"display": "Acme Healthcare"},
        },
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"},
    ],
    "active": True,
    "name": [
        {
            "use": "official",
            "family": "Chalmers",
            "given": ["Peter", "James"],
            "prefix": ["Mr"],
            "suffix": ["Jr"],
        },
        {
            "use": "maiden",
            "family": "Windsor",
            "given": ["Jim"],
            "period": {"start": "1970-01-01", "end": "2002-01-01"},
        },
        {"use": "nickname", "text": "Jimbo"},
    ],
    "telecom": [
        {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
        {"system": "email", "value": "Peter@Example.org", "use": "home"},
        {"system": "url", "value": "https://example.org/~peter", "period": {"end": "2014-01-01"}},
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "deceasedBoolean": True,
    "address": [
        {
            "use": "home",
            "type": "both",
            "text": "534 Erewhon St PeasantVille, Rainbow, Vic 3999",
            "line": ["534 Erewhon St", "Flat 2"],
            "city": "PleasantVille",
            "district": "Rainbow",
            "state": "Vic",
            "postalCode": "3999",
            "country": "AU",
            "period": {"start": "1974-12-25"},
        },
        {"use": "old", "city": "Melbourne"},
    ],
    "maritalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                "code": "M",
                "display": "Married",
            }
        ]
    },
    "multipleBirthInteger": 2,
    "managingOrganization": {"reference": f"Organization/{ORG}"},
    "link": [{"other": {"reference": f"Patient/{OTHER}"}, "type": "seealso"}],
}


def _round_trip(resource: dict) -> dict:
    data = patient_from_fhir(resource)
    out = data_to_fhir(data, id="x", version=3, last_updated=None)
    assert out.pop("id") == "x"
    assert out.pop("meta") == {"versionId": "3"}
    return out


@pytest.mark.parametrize(
    "resource",
    [
        MINIMAL,
        FULL,
        {
            **MINIMAL,
            "deceasedDateTime": "2015-02-14T13:42:00+00:00",
            "multipleBirthBoolean": False,
            "active": False,
        },
        {
            **MINIMAL,
            "name": [{"given": ["Only"]}],
            "maritalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
                        "code": "UNK",
                        "display": "Unknown",
                    }
                ]
            },
        },
        {
            **MINIMAL,
            "multipleBirthBoolean": True,
            "gender": "unknown",
            "link": [{"other": {"reference": f"Patient/{OTHER}"}, "type": "refer"}],
        },
    ],
    ids=["minimal", "full", "deceased-datetime", "given-only-unk-marital", "multiple-birth-refer"],
)
def test_round_trip_keeps_every_stored_element(resource):
    expected = {**resource}
    expected.setdefault("active", True)
    # Normalisation the registry applies (postcodes in capitals, text collapsed) is a no-op here.
    assert _round_trip(resource) == expected


def test_round_trip_is_stable():
    once = _round_trip(FULL)
    assert _round_trip({"resourceType": "Patient", **once}) == once


def test_mapper_output_passes_fhir_resources_validation():
    from fhir.resources.R4B.patient import Patient

    out = data_to_fhir(patient_from_fhir(FULL), id="a1", version=1, last_updated=None)
    Patient.model_validate(out)


def test_ignored_elements_are_accepted_but_not_stored():
    resource = {
        **MINIMAL,
        "id": "whatever",
        "meta": {"versionId": "9", "tag": [{"code": "x"}]},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        "extension": [
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "M"}
        ],
    }
    assert _round_trip(resource) == {"resourceType": "Patient", "active": True, "name": [{"family": "Smith"}]}


def test_values_are_normalised():
    data = patient_from_fhir(
        {
            **MINIMAL,
            "name": [{"family": "  de  la Cruz "}],
            "telecom": [{"system": "email", "value": "A@B.ORG"}],
            "address": [{"postalCode": "sw1a 1aa"}],
        }
    )
    assert data.names[0].family == "de la Cruz"
    assert data.contacts[0].normalized_value == "a@b.org"
    assert data.addresses[0].postal_code == "SW1A 1AA"
    assert data.names[0].primary


def test_several_problems_are_reported_together():
    with pytest.raises(FhirError) as caught:
        patient_from_fhir(
            {
                **MINIMAL,
                "gender": "M",
                "name": [{"family": "X", "use": "formal"}],
                "telecom": [{"value": "1"}],
            }
        )
    error = caught.value
    assert error.status == 422
    found = {e for i in error.to_outcome()["issue"] for e in i["expression"]}
    assert {"Patient.gender", "Patient.name[0].use", "Patient.telecom[0].system"} <= found


def test_structure_errors_are_400_with_paths():
    with pytest.raises(FhirError) as caught:
        patient_from_fhir({**MINIMAL, "name": [{"family": 3}], "birthDate": "25/12/1974"})
    assert caught.value.status == 400
    found = {e for i in caught.value.to_outcome()["issue"] for e in i["expression"]}
    assert {"Patient.name[0].family", "Patient.birthDate"} <= found


def test_merge_links_are_refused_unless_they_are_the_stored_ones():
    resource = {**MINIMAL, "link": [{"other": {"reference": f"Patient/{OTHER}"}, "type": "replaced-by"}]}
    with pytest.raises(FhirError) as caught:
        patient_from_fhir(resource)
    assert caught.value.expression == ["Patient.link[0].type"]
    data = patient_from_fhir(resource, allowed_merge_links=[("replaced-by", UUID(OTHER))])
    assert data.links == ()


def test_link_errors_from_cleaning_point_at_the_resource_index():
    resource = {
        **MINIMAL,
        "link": [
            {"other": {"reference": f"Patient/{ORG}"}, "type": "replaces"},
            {"other": {"reference": f"Patient/{OTHER}"}, "type": "refer"},
        ],
    }
    data = patient_from_fhir(resource, allowed_merge_links=[("replaces", UUID(ORG))])
    assert [link.type for link in data.links] == ["refer"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (f"Patient/{OTHER}", UUID(OTHER)),
        (f"http://example.org/fhir/Patient/{OTHER}", UUID(OTHER)),
        (f"Patient/{OTHER}/_history/2", UUID(OTHER)),
        (f"Organization/{OTHER}", None),
        ("urn:uuid:" + OTHER, None),
        ("Patient/123", None),
    ],
)
def test_reference_id(reference, expected):
    assert reference_id(reference) == expected


@pytest.mark.parametrize(
    ("path", "expression"),
    [
        ("names[0].family", "Patient.name[0].family"),
        ("contacts[2].value", "Patient.telecom[2].value"),
        ("addresses[1].postal_code", "Patient.address[1].postalCode"),
        ("birth_date", "Patient.birthDate"),
        ("names[0].period", "Patient.name[0].period"),
        ("links[0].other", "Patient.link[0].other"),
        ("__all__", "Patient"),
    ],
)
def test_fhir_expression(path, expression):
    assert fhir_expression(path) == expression


def test_partial_dates_are_refused_full_datetimes_truncated():
    data = patient_from_fhir(
        {**MINIMAL, "name": [{"family": "X", "period": {"start": "2001-02-03T04:05:06Z"}}]}
    )
    assert data.names[0].period_start == date(2001, 2, 3)
    with pytest.raises(FhirError) as caught:
        patient_from_fhir({**MINIMAL, "birthDate": "1974-12"})
    assert caught.value.expression == ["Patient.birthDate"]
