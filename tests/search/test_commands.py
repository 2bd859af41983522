"""rebuild_search_index, check_search_index and the benchmark command."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from patients.models import Patient
from patients.services import delete_patient, register_patient
from search.bench.loader import PLANTED_TABLE
from search.models import NameWord, PatientIndex
from tests.factories import patient_data


def run(command: str, *args) -> str:
    out = StringIO()
    call_command(command, *args, "--batch-size", "2", verbosity=0, stdout=out)
    return out.getvalue()


@pytest.fixture
def patients(clerk, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the vocabulary is written on commit
        return [
            register_patient(data=patient_data(family=family, mrn=str(n)), actor=clerk)
            for n, family in enumerate(("Smith", "Jones", "Taylor", "Brown", "Wilson"))
        ]


@pytest.mark.django_db
def test_check_passes_when_the_index_follows_the_writes(patients, steward):
    delete_patient(patient=patients[0], actor=steward)
    assert "in step" in run("check_search_index")


@pytest.mark.django_db
def test_check_reports_missing_extra_and_stale_rows_and_exits_1(patients, steward):
    PatientIndex.objects.filter(patient=patients[0]).delete()
    PatientIndex.objects.filter(patient=patients[1]).update(block_keys=["x"], birth_year=1900)
    delete_patient(patient=patients[2], actor=steward)
    PatientIndex.objects.create(patient=patients[2])
    NameWord.objects.filter(word="brown").delete()
    out = StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("check_search_index", verbosity=0, stdout=out)
    assert exc.value.returncode == 1
    report = out.getvalue()
    assert f"1 missing (live patient without a row): patient ids {patients[0].pk}" in report
    assert f"1 extra (row of a deleted patient): patient ids {patients[2].pk}" in report
    assert f"patient {patients[1].pk}: block_keys, birth_year" in report
    assert "1 name words missing from the search vocabulary" in report


@pytest.mark.django_db
def test_rebuild_repairs_every_kind_of_drift(patients, steward):
    PatientIndex.objects.filter(patient=patients[0]).delete()
    PatientIndex.objects.filter(patient=patients[1]).update(block_keys=[], phones=["+10000000000"])
    delete_patient(patient=patients[2], actor=steward)
    PatientIndex.objects.create(patient=patients[2], name_text="ghost")
    NameWord.objects.all().delete()
    assert "Rebuilt the search index of 5 patients" in run("rebuild_search_index")
    assert "in step" in run("check_search_index")
    assert not PatientIndex.objects.filter(patient=patients[2]).exists()
    assert NameWord.objects.filter(word="smith").exists()


@pytest.mark.django_db(transaction=True)
def test_bench_loads_rows_equal_to_the_write_path_and_prints_figures():
    """The bulk loader builds index rows with the same function as the signal path:
    the check command finds no drift after a benchmark load."""
    out = StringIO()
    try:
        call_command(
            "bench_search", "--patients", "400", "--probes", "20", "--seed", "3", verbosity=0, stdout=out
        )
        report = out.getvalue()
        assert "Search benchmark: 400 patients" in report
        assert "candidate retrieval (limit 50)" in report and "Blocking recall:" in report
        assert Patient.objects.count() == 400
        assert "in step" in run("check_search_index")
        with pytest.raises(CommandError, match="refusing"):
            call_command("bench_search", "--patients", "10", verbosity=0, stdout=StringIO())
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {PLANTED_TABLE}")
