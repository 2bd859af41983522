"""Pure parts of the operations: Parameters reading, result-patient -> MergeChoices, tokens,
definitions and their registration. No database."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest

from fhir_api.operations.definitions import DEFINITIONS, operation_definition
from fhir_api.operations.parameters import OperationError, parse_parameters, query_parameters
from fhir_api.operations.pix import split_token
from fhir_api.operations.survivorship import choices_from_result
from patients.data import ContactData, IdentifierData, NameData, PatientData


def test_parameters_give_typed_values_and_fhirpath_errors():
    params = parse_parameters(
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "count", "valueInteger": 3}, {"name": "x", "valueBoolean": True}],
        }
    )
    assert (
        params.integer("count", maximum=10) == 3
        and params.boolean("x") is True
        and params.boolean("y") is False
    )
    with pytest.raises(OperationError) as caught:
        params.integer("count", maximum=2)
    assert caught.value.status == 400 and caught.value.expression == ["Parameters.parameter[0].valueInteger"]
    with pytest.raises(OperationError) as caught:
        params.reject_unknown(["count"])
    assert caught.value.code == "not-supported" and caught.value.expression == ["Parameters.parameter[1]"]


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        (
            {"resourceType": "Parameters", "parameter": [{"name": "a", "valueInteger": "many"}]},
            "Parameters.parameter[0].valueInteger",
        ),
        ({"resourceType": "Parameters", "parameter": [{"valueInteger": 1}]}, "Parameters.parameter[0].name"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "a", "valueInteger": 1, "valueString": "b"}],
            },
            "Parameters.parameter[0]",
        ),
        ({"resourceType": "Parameters", "parameter": "x"}, "Parameters.parameter"),
    ],
)
def test_malformed_parameters_name_the_element(body, expression):
    with pytest.raises(OperationError) as caught:
        parse_parameters(body)
    assert expression in {e for i in caught.value.issues for e in i.get("expression", [])}


def test_query_parameters_convert_types_and_skip_underscored_names():
    params = query_parameters(
        {"flag": ["true"], "n": ["4"], "_format": ["json"]}, {"flag": "Boolean", "n": "Integer"}
    )
    assert (
        params.boolean("flag") is True
        and params.integer("n", maximum=9) == 4
        and params.names() == {"flag", "n"}
    )
    with pytest.raises(OperationError):
        query_parameters({"flag": ["yes"]}, {"flag": "Boolean"})


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("urn:oid:1.2|77", ("urn:oid:1.2", "77")),
        (r"sys|a\|b", ("sys", "a|b")),
        ("77", None),
        ("|77", ("", "77")),
    ],
)
def test_split_token(token, expected):
    assert split_token(token) == expected


TARGET = PatientData(
    names=(NameData(family="Smith", given=("John",), use="official", primary=True),),
    identifiers=(IdentifierData(system="s", value="1"),),
    contacts=(ContactData(system="phone", value="1", normalized_value="+1"),),
    gender="male",
    birth_date=date(1980, 3, 4),
)
SOURCE = PatientData(
    names=(NameData(family="Smyth", given=("Jon",), primary=True),),
    identifiers=(IdentifierData(system="s", value="2"),),
    contacts=(ContactData(system="phone", value="2", normalized_value="+2"),),
    gender="male",
    birth_date=date(1980, 4, 3),
)


def result(**changes) -> PatientData:
    from dataclasses import replace

    return replace(TARGET, identifiers=TARGET.identifiers + SOURCE.identifiers, **changes)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"names": "survivor", "contacts": "survivor", "take": set()}),
        ({"names": TARGET.names + SOURCE.names}, {"names": "both", "contacts": "survivor", "take": set()}),
        (
            {"names": SOURCE.names, "birth_date": date(1980, 4, 3)},
            {"names": "duplicate", "contacts": "survivor", "take": {"birth_date"}},
        ),
        (
            {"names": (*TARGET.names, NameData(family="Smyth", given=("Jon",), use="old"))},
            {"names": "survivor", "contacts": "survivor", "take": set()},
        ),
    ],
    ids=["as-target", "both-names", "source-names-and-birth-date", "source-name-as-old"],
)
def test_result_patient_maps_onto_merge_choices(changes, expected):
    choices = choices_from_result(
        result(**changes), target=TARGET, source=SOURCE, source_uuid=uuid4(), prefix="R"
    )
    assert (choices.names, choices.contacts, set(choices.take_from_duplicate)) == (
        expected["names"],
        expected["contacts"],
        expected["take"],
    )


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"gender": "female"}, "R.gender"),
        ({"names": (NameData(family="Nobody"),)}, "R.name[0]"),
        ({"identifiers": TARGET.identifiers}, "R.identifier"),
        (
            {
                "identifiers": TARGET.identifiers
                + SOURCE.identifiers
                + (IdentifierData(system="s", value="9"),)
            },
            "R.identifier[2]",
        ),
        ({"active": False}, "R.active"),
        ({"contacts": ()}, "R.telecom"),
    ],
)
def test_result_patient_that_cannot_be_honoured_is_refused(changes, expression):
    from dataclasses import replace

    data = replace(result(), **changes)
    with pytest.raises(OperationError) as caught:
        choices_from_result(data, target=TARGET, source=SOURCE, source_uuid=uuid4(), prefix="R")
    assert caught.value.status == 422
    assert expression in {e for i in caught.value.issues for e in i.get("expression", [])}


def test_definitions_are_valid_r4b_operation_definitions():
    from fhir.resources.R4B.operationdefinition import OperationDefinition

    for key in DEFINITIONS:
        resource = operation_definition(key, base_url="https://mpi.test/fhir")
        OperationDefinition.model_validate(resource)
        assert resource["url"] == f"https://mpi.test/fhir/OperationDefinition/{key}"
    assert operation_definition("nope", base_url="x") is None
