"""manage.py export_patients: the registry as FHIR NDJSON, audited, and read back by the importer."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from fhir_api.management.commands import export_patients
from matching.merging import merge_patients
from patients.data import LinkData
from patients.models import Patient
from patients.services import delete_patient, patient_to_data, register_patient, update_patient
from tests.factories import OrganizationFactory, patient_data
from tests.fhir.conftest import BASE

pytestmark = pytest.mark.django_db


def export(*args, stdout=None, stderr=None) -> str:
    out = stdout or io.StringIO()
    call_command("export_patients", *[str(a) for a in args], stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def registry(clerk):
    """Five patients, one with every kind of child row and an organization, one with accents."""
    org = OrganizationFactory(name="Mercy Hospital")
    people = [
        register_patient(
            data=patient_data(
                family="Núñez",
                given=("José", "María"),
                mrn="901",
                email="jose@example.org",
                managing_organization=org.uuid,
                multiple_birth=True,
                multiple_birth_order=2,
            ),
            actor=clerk,
            reason="seed",
        )
    ]
    for i in range(4):
        data = patient_data(family=f"Family{i}", given=(f"Given{i}",), mrn=f"90{i + 2}", phone=None)
        people.append(register_patient(data=data, actor=clerk, reason="seed"))
    return people


def test_each_line_is_the_fhir_read_of_a_patient_in_id_order(registry, as_integrator, tmp_path):
    target = tmp_path / "Patient.ndjson"
    out = export(target)
    assert "Exported 5 patients" in out
    exported = lines(target)
    assert [r["id"] for r in exported] == [str(p.uuid) for p in registry]
    for resource in exported:
        assert resource == as_integrator.get(f"{BASE}/Patient/{resource['id']}").json()
    assert exported[0]["name"][0]["family"] == "Núñez"  # UTF-8, not \u escapes
    assert "Núñez" in target.read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".*partial"))


def test_an_export_imports_back_unchanged(registry, tmp_path):
    target = tmp_path / "Patient.ndjson"
    export(target)
    versions = dict(Patient.objects.values_list("pk", "version"))
    out = io.StringIO()
    call_command("import_patients", str(target), "--no-match", stdout=out)
    assert "unchanged 5" in out.getvalue().replace(":", ""), out.getvalue()
    assert dict(Patient.objects.values_list("pk", "version")) == versions


def test_merged_away_records_are_exported_unless_active_only_and_deleted_never(
    registry, steward, clerk, tmp_path, as_integrator
):
    merge_patients(survivor=registry[1], duplicate=registry[2], actor=steward, reason="same person")
    delete_patient(patient=registry[3], actor=clerk, reason="test record")
    link = LinkData(other=registry[4].uuid, type="seealso")
    update_patient(
        patient=registry[0],
        data=replace(patient_to_data(registry[0]), links=(link,)),
        expected_version=None,
        actor=clerk,
    )
    everything = tmp_path / "all.ndjson"
    export(everything)
    by_id = {r["id"]: r for r in lines(everything)}
    # Merge and seealso links come out as the read shows them, on both sides.
    for resource in by_id.values():
        assert resource == as_integrator.get(f"{BASE}/Patient/{resource['id']}").json()
    survivor_links = by_id[str(registry[1].uuid)]["link"]
    assert {"other": {"reference": f"Patient/{registry[2].uuid}"}, "type": "replaces"} in survivor_links
    assert by_id[str(registry[4].uuid)]["link"] == [
        {"other": {"reference": f"Patient/{registry[0].uuid}"}, "type": "seealso"}
    ]
    assert set(by_id) == {str(p.uuid) for p in (registry[0], registry[1], registry[2], registry[4])}
    merged = by_id[str(registry[2].uuid)]
    assert merged["active"] is False
    assert {"other": {"reference": f"Patient/{registry[1].uuid}"}, "type": "replaced-by"} in merged["link"]
    active = tmp_path / "active.ndjson"
    export(active, "--active-only")
    assert {r["id"] for r in lines(active)} == {str(p.uuid) for p in (registry[0], registry[1], registry[4])}


def test_since_exports_only_patients_changed_from_then(registry, clerk, tmp_path):
    Patient.objects.filter(pk__in=[p.pk for p in registry[1:]]).update(
        updated_at=timezone.now() - timedelta(days=10)
    )
    recent = tmp_path / "recent.ndjson"
    export(recent, "--since", (date.today() - timedelta(days=2)).isoformat())
    assert [r["id"] for r in lines(recent)] == [str(registry[0].uuid)]
    older = tmp_path / "older.ndjson"
    export(older, "--since", (timezone.now() - timedelta(days=11)).isoformat())
    assert len(lines(older)) == 5


def test_every_exported_patient_is_in_the_audit_trail_one_event_per_batch(registry, tmp_path):
    export(tmp_path / "Patient.ndjson", "--batch-size", "2", "--active-only")
    events = list(AuditEvent.objects.filter(action="export").order_by("pk"))
    assert len(events) == 3  # 2 + 2 + 1
    assert sorted(u for e in events for u in e.patients) == sorted(p.uuid for p in registry)
    assert all(e.interface == "command" and e.query == "active-only" for e in events)
    assert events[0].detail == {"format": "ndjson", "output": str(tmp_path / "Patient.ndjson")}


def test_dash_writes_the_records_to_stdout_and_the_summary_to_stderr(registry, capsys):
    stdout = io.StringIO()
    export("-", stdout=stdout)
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 5 and all(r["resourceType"] == "Patient" for r in records)
    assert "Exported 5 patients to stdout" in captured.err
    assert stdout.getvalue() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "--since"),
        (["--since", "2025-02-30"], "--since"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "10001"], "--batch-size"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_written(registry, tmp_path, args, message):
    target = tmp_path / "Patient.ndjson"
    with pytest.raises(CommandError, match=message):
        export(target, *args)
    assert not target.exists() and not AuditEvent.objects.filter(action="export").exists()


def test_an_existing_file_is_kept_unless_forced_and_a_missing_folder_refused(registry, tmp_path):
    target = tmp_path / "Patient.ndjson"
    target.write_text("precious\n")
    with pytest.raises(CommandError, match="exists"):
        export(target)
    assert target.read_text() == "precious\n"
    export(target, "--force")
    assert len(lines(target)) == 5
    with pytest.raises(CommandError, match="No directory"):
        export(tmp_path / "nowhere" / "Patient.ndjson")
    with pytest.raises(CommandError, match="is a directory"):
        export(tmp_path, "--force")
    assert target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["Patient.ndjson"]


def test_a_folder_it_cannot_write_in_is_refused_not_a_traceback(registry):
    # /proc takes no new file, not even from root (the tests may run as root).
    with pytest.raises(CommandError, match="Cannot write in /proc"):
        export("/proc/Patient.ndjson")
    assert not AuditEvent.objects.filter(action="export").exists()


def test_an_export_that_fails_midway_leaves_no_file(registry, tmp_path, monkeypatch):
    calls = []

    def failing(data, **kwargs):
        calls.append(data)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return {"resourceType": "Patient", "id": str(kwargs["id"])}

    monkeypatch.setattr(export_patients, "data_to_fhir", failing)
    target = tmp_path / "Patient.ndjson"
    with pytest.raises(RuntimeError, match="disk full"):
        export(target, "--batch-size", "2")
    assert list(tmp_path.iterdir()) == []
