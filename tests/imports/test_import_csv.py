"""import_patients with CSV: columns, mapping, rejects, re-runs and the written rows."""

from dataclasses import replace
from datetime import date

import pytest
from django.core.management.base import CommandError

from matching.models import MatchCandidate
from patients.data import IdentifierData
from patients.models import Address, Contact, Identifier, Name, Patient
from patients.services import register_patient
from search.maintenance import check_index
from search.queries import search_patients
from tests.factories import patient_data
from tests.imports.conftest import HEADER, MRN, SSN, csv_file, read_rejects_csv, row, run_import, write

pytestmark = pytest.mark.django_db


def test_csv_rows_become_patients_with_history_and_search_index(
    workdir, clerk, django_capture_on_commit_callbacks
):
    path = csv_file(workdir, row("A1"), row("A2", family="Núñez", given="José María", gender="F"))
    with django_capture_on_commit_callbacks(execute=True):  # the name vocabulary is written on commit
        out = run_import(path, "--no-match", "--user", "clerk", "--reason", "Go-live load")

    assert "created 2, updated 0, unchanged 0, rejected 0" in out
    nunez = Patient.objects.with_identifier(MRN, "A2").get()
    name = Name.objects.get(patient=nunez)
    assert (name.family, name.given, name.primary) == ("Núñez", ["José", "María"], True)
    assert nunez.gender == "female" and nunez.birth_date == date(1980, 3, 4)
    assert Contact.objects.get(patient=nunez).normalized_value == "+16175550100"
    assert Address.objects.get(patient=nunez).postal_code == "02134"
    # Every row has its creation in history, with who and why.
    for model in (Patient, Name, Identifier, Contact, Address):
        rows = model.history.all()
        assert rows.count() == 2, model
        assert {(h.history_type, h.history_user, h.history_change_reason) for h in rows} == {
            ("+", clerk, "Go-live load")
        }
    # The search index is written as the signal path writes it, and finds the patient.
    hits = search_patients(text="jose nunez 1980-03-04").hits
    assert [h.patient_id for h in hits][:1] == [nunez.pk]
    assert search_patients(identifier="A2").hits[0].patient_id == nunez.pk
    assert check_index().clean


def test_foreign_layout_is_read_through_a_mapping_defaults_and_date_format(workdir):
    path = write(
        workdir / "legacy.csv",
        "MRN;LAST_NAME;FIRST;MIDDLE;DOB;SEX;NOTES\nX-1;Olsen;Mary;Ann;31/12/1975;F;likes tea\n",
    )
    mapping = write(workdir / "legacy.map", "# legacy export\nfamily=LAST_NAME\n\ngiven=FIRST+MIDDLE\n")
    out = run_import(
        path,
        "--no-match",
        "--delimiter",
        ";",
        "--map-file",
        str(mapping),
        "--map",
        "identifier_value=MRN,birth_date=DOB,gender=SEX",
        "--default",
        f"identifier_system={MRN},country=NO",
        "--date-format",
        "%d/%m/%Y",
    )
    patient = Patient.objects.with_identifier(MRN, "X-1").get()
    assert Name.objects.get(patient=patient).given == ["Mary", "Ann"]
    assert (patient.birth_date, patient.gender) == (date(1975, 12, 31), "female")
    assert Address.objects.get(patient=patient).country == "NO"
    assert "columns ignored (not a known field; see --map): NOTES" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "family=SURNAME"], "no column 'SURNAME' in the header"),
        (["--map", "surname=family"], "'surname' is not a field"),
        (["--map", "family"], "is not field=value"),
        (["--default", "gender=female,gender=male"], "'gender' is given twice"),
    ],
)
def test_a_bad_mapping_is_refused_before_anything_is_written(workdir, args, message):
    path = csv_file(workdir, row("A1"))
    with pytest.raises(CommandError, match=message):
        run_import(path, "--no-match", *args)
    assert not Patient.objects.exists()


def test_rejects_file_names_line_field_and_reason_and_keeps_the_row(workdir):
    path = csv_file(
        workdir,
        row("A1"),
        row("A2", birth_date="04/03/1980"),
        # A quoted cell spanning two lines: the next record starts on line 5.
        row("A3", city='"Boston\nMA"'),
        row("A4", family="", given=""),
        row("A5", birth_date="2999-01-01", gender="x"),
        row("A6", phone="call me"),
    )
    out = run_import(path, "--no-match")
    assert "created 2, updated 0, unchanged 0, rejected 4" in out
    rejects = read_rejects_csv(workdir / "patients.rejects.csv")
    assert [(r["_line"], r["_field"]) for r in rejects] == [
        ("3", "birth_date"),
        ("6", "family"),
        ("7", "gender; birth_date"),
        ("8", "phone"),
    ]
    assert rejects[0]["_reason"] == "'04/03/1980' is not a date in the format YYYY-MM-DD (--date-format)."
    assert rejects[1]["_reason"] == "At least one name is required."
    assert "gender: Unknown code 'x'" in rejects[2]["_reason"]
    assert "birth_date: The birth date is in the future." in rejects[2]["_reason"]
    assert rejects[3]["_reason"] == "'call me' is not a phone number."
    # The original columns follow, so the fixed rejects file can be imported as it is.
    assert rejects[0]["identifier_value"] == "A2" and rejects[0]["family"] == "Smith"
    fixed = (workdir / "patients.rejects.csv").read_text().replace("04/03/1980", "1980-03-04")
    out = run_import(write(workdir / "fixed.csv", fixed), "--no-match")
    assert "created 1" in out and "columns ignored" not in out


def test_running_the_same_file_again_changes_nothing(workdir):
    path = csv_file(workdir, row("A1"), row("A2", family="Jones"), row("A3", birth_date="bad"))
    run_import(path, "--no-match")
    history = [m.history.count() for m in (Patient, Name, Identifier, Contact, Address)]

    out = run_import(path, "--no-match")

    assert "created 0, updated 0, unchanged 2, rejected 1" in out
    assert Patient.objects.count() == 2
    assert [m.history.count() for m in (Patient, Name, Identifier, Contact, Address)] == history
    assert set(Patient.objects.values_list("version", flat=True)) == {1}


def test_a_changed_row_updates_its_patient_with_history(workdir, clerk):
    run_import(csv_file(workdir, row("A1"), row("A2")), "--no-match")
    path = csv_file(workdir, row("A1", city="Cambridge", postal_code="02139"), row("A2"), name="v2.csv")

    out = run_import(path, "--no-match", "--user", "clerk")

    assert "created 0, updated 1, unchanged 1" in out
    patient = Patient.objects.with_identifier(MRN, "A1").get()
    assert patient.version == 2
    assert Address.objects.get(patient=patient).city == "Cambridge"
    latest = patient.history.first()
    assert (latest.history_type, latest.history_user, latest.history_change_reason) == (
        "~",
        clerk,
        "Imported from v2.csv",
    )
    drift = check_index()  # (the vocabulary is written on commit, which this test never reaches)
    assert (drift.missing, drift.extra, drift.stale) == ([], [], {})


def test_the_same_identifier_twice_in_a_file_is_one_patient(workdir):
    out = run_import(csv_file(workdir, row("A1", given="Jon"), row("A1", given="John")), "--no-match")
    assert "created 1, updated 1" in out
    assert Name.objects.get().given == ["John"]


def test_an_identifier_of_another_patient_rejects_the_record(workdir):
    holder = register_patient(data=patient_data(mrn="77"))
    header = "identifier_system,identifier_value,identifier_2_system,identifier_2_value,family,given"
    path = csv_file(workdir, f"{MRN},B1,{MRN},77,Smith,John", header=header)
    out = run_import(path, "--no-match")
    assert "rejected 1" in out
    (reject,) = read_rejects_csv(workdir / "patients.rejects.csv")
    assert reject["_field"] == "identifier_2_value"
    assert reject["_reason"] == f"Identifier {MRN}|77 already belongs to patient {holder.uuid}."


def test_key_system_chooses_the_identifier_that_finds_the_patient(workdir):
    ssn = (IdentifierData(system=SSN, value="123-45-6789"),)
    existing = register_patient(data=replace(patient_data(mrn=None), identifiers=ssn))
    header = "identifier_system,identifier_value,identifier_2_system,identifier_2_value,family,given"
    path = csv_file(workdir, f"{MRN},NEW-1,{SSN},123-45-6789,Smith,Johnny", header=header)
    out = run_import(path, "--no-match", "--key-system", SSN)
    assert "created 0, updated 1" in out
    assert set(Identifier.objects.filter(patient=existing).values_list("value", flat=True)) == {
        "NEW-1",
        "123-45-6789",
    }


def test_a_record_without_identifier_needs_allow_unidentified(workdir):
    path = csv_file(workdir, ",,Doe,Jane,1990-01-01,female,,,", name="anon.csv")
    assert "rejected 1" in run_import(path, "--no-match")
    (reject,) = read_rejects_csv(workdir / "anon.rejects.csv")
    assert reject["_field"] == "identifier_value" and "--allow-unidentified" in reject["_reason"]
    assert "created 1" in run_import(path, "--no-match", "--allow-unidentified")


def test_matching_opens_candidates_with_match_and_not_with_no_match(workdir):
    register_patient(data=patient_data(mrn="77"))
    path = csv_file(workdir, row("B1", family="Smyth"))
    out = run_import(path, "--no-match")
    assert "duplicates opened 0" in out and not MatchCandidate.objects.exists()

    path = csv_file(workdir, row("B2", family="Smith", given="Jon"), name="second.csv")
    out = run_import(path)  # matching is on by default
    new = Patient.objects.with_identifier(MRN, "B2").get()
    opened = MatchCandidate.objects.filter(patient_b=new)
    assert opened.count() == 2  # the registered Smith and the Smyth of the first file
    assert "duplicates opened 2" in out


def test_matching_finds_duplicates_inside_one_batch(workdir):
    out = run_import(csv_file(workdir, row("C1"), row("C2", family="Smyth")))
    assert "duplicates opened 1" in out
    candidate = MatchCandidate.objects.get()
    assert {candidate.patient_a.pk, candidate.patient_b.pk} == set(
        Patient.objects.values_list("pk", flat=True)
    )


def test_a_birth_order_out_of_range_is_a_reject_not_a_wrapped_value(workdir):
    """65537 once reached the database as 1 (a smallint packed in two bytes, unchecked)."""
    path = csv_file(
        workdir,
        row("B1") + ",2",
        row("B2") + ",65537",
        row("B3") + ",²",
        header=HEADER + ",multiple_birth",
    )
    out = run_import(path, "--no-match")
    assert "created 1, updated 0, unchanged 0, rejected 2" in out
    assert Patient.objects.get().multiple_birth_order == 2
    rejects = read_rejects_csv(workdir / "patients.rejects.csv")
    assert (rejects[0]["_field"], rejects[0]["_reason"]) == (
        "multiple_birth",
        "The birth order is at most 32767.",
    )
    assert rejects[1]["_field"] == "multiple_birth"
