"""import_patients with FHIR NDJSON and Bundles: the FHIR mapper's rules, FHIRPath in rejects."""

import json

import pytest
from django.core.management.base import CommandError

from patients.models import Name, Patient
from patients.services import register_patient
from tests.factories import patient_data
from tests.imports.conftest import MRN, read_ndjson, run_import, write

pytestmark = pytest.mark.django_db


def resource(mrn: str, family: str = "Olsen", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": ["Kari"]}],
        "birthDate": "1970-01-02",
        "gender": "female",
        **extra,
    }


def ndjson(*lines) -> str:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"


def test_ndjson_lines_become_patients_and_bad_lines_rejects(workdir):
    path = write(
        workdir / "export.ndjson",
        ndjson(
            resource("F1"),
            resource("F2", gender="F"),
            "{not json",
            "",
            {"resourceType": "Observation", "status": "final"},
            resource("F3", family="Berg", birthDate="2999-01-01"),
            resource("F4", telecom=[{"system": "phone", "value": "+47 22 33 44 55", "rank": 1}]),
        ),
    )
    out = run_import(path, "--no-match")

    assert "created 2, updated 0, unchanged 0, rejected 4" in out
    assert Patient.objects.with_identifier(MRN, "F4").get().contacts.get().rank == 1
    rejects = read_ndjson(workdir / "export.rejects.ndjson")
    assert [(r["line"], r["field"]) for r in rejects] == [
        (2, "Patient.gender"),
        (3, "record"),
        (5, "resourceType"),
        (6, "Patient.birthDate"),
    ]
    assert rejects[0]["reason"].startswith("Unknown code 'F'")
    assert rejects[0]["record"]["identifier"][0]["value"] == "F2"  # the resource as it was
    assert rejects[1]["record"] == "{not json"
    assert rejects[3]["reason"] == "The birth date is in the future."

    assert "created 0, updated 0, unchanged 2, rejected 4" in run_import(path, "--no-match")


def test_a_writer_reject_is_named_by_its_fhir_path(workdir):
    holder = register_patient(data=patient_data(mrn="77"))
    taken = resource("G1")
    taken["identifier"].append({"system": MRN, "value": "77"})
    run_import(write(workdir / "g.ndjson", ndjson(taken)), "--no-match")
    (reject,) = read_ndjson(workdir / "g.rejects.ndjson")
    assert reject["field"] == "Patient.identifier[1]"
    assert reject["reason"] == f"Identifier {MRN}|77 already belongs to patient {holder.uuid}."


def test_a_bundle_is_read_entry_by_entry(workdir):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": resource("B1")},
            {"fullUrl": "urn:uuid:2", "resource": resource("B2", gender="nope")},
            {"fullUrl": "urn:uuid:3"},
            {"resource": resource("B3", family="Dahl", name=[{"family": "Dahl", "given": ["Per", "Ola"]}])},
        ],
    }
    path = write(workdir / "bundle.json", json.dumps(bundle, indent=1))
    out = run_import(path, "--no-match")
    assert "created 2, updated 0, unchanged 0, rejected 2" in out
    assert Name.objects.get(family="Dahl").given == ["Per", "Ola"]
    rejects = read_ndjson(workdir / "bundle.rejects.ndjson")
    assert [(r["line"], r["field"]) for r in rejects] == [(2, "Patient.gender"), (3, "Bundle.entry.resource")]


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("one.json", json.dumps(resource("P1")), [], r"a Patient, not a Bundle \(NDJSON"),
        ("list.json", "[1, 2]", [], "is not a JSON object"),
        ("cut.json", '{"resourceType": "Bundle", "entry": [{"resource": ', [], "is not valid JSON"),
        ("rows.ndjson", "family,given\nSmith,John\n", [], "Line 1 is not JSON.*is this NDJSON"),
        ("b.ndjson", json.dumps({"resourceType": "Bundle"}), [], "import it with --format bundle"),
        ("blank.ndjson", "\n\n", [], "holds no resource"),
        ("x.ndjson", ndjson(resource("X1")), ["--map", "family=LAST"], "are for CSV input"),
        ("x.ndjson", ndjson(resource("X1")), ["--encoding", "latin-1"], "JSON is UTF-8"),
    ],
)  # fmt: skip
def test_fhir_files_that_cannot_be_read_stop_with_a_clear_error(workdir, name, content, args, message):
    with pytest.raises(CommandError, match=message):
        run_import(write(workdir / name, content), "--no-match", *args)


def test_csv_content_read_as_a_bundle_is_refused(workdir):
    path = write(workdir / "patients.csv", "family,given\nSmith,John\n")
    with pytest.raises(CommandError, match="is not valid JSON"):
        run_import(path, "--format", "bundle", "--no-match")
    assert not Patient.objects.exists()
