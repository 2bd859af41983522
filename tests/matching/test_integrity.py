"""check_integrity and manage.py check_integrity: silent on sound data, every kind of
corruption (made through the ORM, behind the services' back) reported."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from matching.integrity import check_integrity
from matching.merging import link_patients, merge_patients
from matching.models import MatchCandidate
from matching.services import active_matcher, matching_disabled
from patients.codes import LinkType
from patients.models import Identifier, Link, Patient
from patients.services import delete_patient, register_patient
from search.models import PatientIndex
from tests.factories import patient_data

pytestmark = pytest.mark.django_db


def person(n: int) -> Patient:
    data = patient_data(family=f"Family{n}", given=("Ann",), mrn=f"M-{n}", phone=None)
    with matching_disabled():  # the candidates these tests need are made by hand
        return register_patient(data=data)


def kinds(violations) -> dict[str, list[tuple[int, ...]]]:
    out: dict[str, list] = {}
    for v in violations:
        out.setdefault(v.kind, []).append(v.patient_ids)
    return out


def link(patient, other, type_):
    return Link.all_objects.create(patient=patient, other=other, type=type_)


def test_a_registry_worked_through_the_services_has_no_violations(
    clerk, steward, django_capture_on_commit_callbacks
):
    # The name vocabulary is written after commit; run those callbacks as a commit would.
    with django_capture_on_commit_callbacks(execute=True):
        a, b, c, d = (person(n) for n in range(4))
        merge_patients(survivor=a, duplicate=b, actor=steward, reason="dupe")
        merge_patients(survivor=c, duplicate=a, actor=steward, reason="dupe again")
        link_patients(patient=c, other=d, actor=steward, reason="same person, two hospitals")
        delete_patient(patient=person(5), actor=clerk)
    assert check_integrity() == []


def test_duplicate_live_identifiers_are_reported():
    a, b = person(1), person(2)
    with connection.cursor() as cursor:  # what the unique index normally forbids
        cursor.execute("DROP INDEX uniq_live_identifier")
    Identifier.all_objects.create(patient=b, system=a.identifiers.get().system, value="M-1")
    found = kinds(check_integrity())
    assert found["duplicate-live-identifier"] == [(a.pk, b.pk)]


def test_identifier_live_flag_out_of_step_is_reported():
    a = person(1)
    Patient.all_objects.filter(pk=a.pk).update(deleted_at="2024-01-01T00:00:00Z")
    assert kinds(check_integrity(include_index=False)) == {"identifier-live-flag": [(a.pk,)]}


def test_merge_cycles_and_chains_without_live_record_are_reported():
    a, b, c = person(1), person(2), person(3)
    Patient.all_objects.filter(pk__in=[a.pk, b.pk, c.pk]).update(active=False)
    for x, y in ((a, b), (b, a), (c, a)):  # a <-> b, and c leads into the cycle
        link(x, y, LinkType.REPLACED_BY)
        link(y, x, LinkType.REPLACES)
    found = kinds(check_integrity(include_index=False))
    assert found["merge-cycle"] == [(a.pk, b.pk)]
    assert found["chain-without-live-record"] == [(c.pk,)]


def test_a_chain_ending_at_a_deleted_patient_is_reported(clerk, steward):
    a, b = person(1), person(2)
    merge_patients(survivor=a, duplicate=b, actor=steward, reason="dupe")
    # The services refuse to delete a survivor; a direct write can still do it.
    Patient.all_objects.filter(pk=a.pk).update(deleted_at=timezone.now())
    found = kinds(check_integrity())
    assert found["chain-without-live-record"] == [(b.pk, a.pk)]


def test_merged_patient_still_active_and_links_without_reverse_are_reported():
    a, b, c, d = (person(n) for n in range(4))
    link(b, a, LinkType.REPLACED_BY)  # no "replaces" back, and b still active
    link(c, d, LinkType.SEEALSO)  # no seealso back
    found = kinds(check_integrity(include_index=False))
    assert found["merged-but-active"] == [(b.pk,)]
    assert sorted(found["link-without-reverse"]) == sorted([(b.pk, a.pk), (c.pk, d.pk)])
    assert found["link-without-merge-record"] == [(b.pk, a.pk)]


def test_several_replaced_by_and_a_merge_record_without_its_link_are_reported(steward):
    a, b, c = person(1), person(2), person(3)
    merge = merge_patients(survivor=a, duplicate=b, actor=steward, reason="dupe")
    Link.all_objects.filter(pk__in=merge.changes["links_created"]).delete()
    link(c, a, LinkType.REPLACED_BY)
    link(c, b, LinkType.REPLACED_BY)
    found = kinds(check_integrity(include_index=False))
    assert found["merge-record-without-link"] == [(a.pk, b.pk)]
    assert found["several-replaced-by"] == [(c.pk, a.pk, b.pk)]


def test_open_candidates_on_retired_records_are_reported(steward):
    a, b, c = person(1), person(2), person(3)
    merge_patients(survivor=a, duplicate=b, actor=steward, reason="dupe")
    version, _ = active_matcher()
    low, high = sorted((b.pk, c.pk))
    MatchCandidate.objects.create(
        patient_a_id=low,
        patient_b_id=high,
        probability=0.9,
        weight=5,
        grade="probable",
        model_version=version,
    )
    found = kinds(check_integrity(include_index=False))
    assert found == {"open-candidate-on-retired-record": [(low, high)]}


def test_index_rows_out_of_step_are_reported():
    a, b, c = person(1), person(2), person(3)
    PatientIndex.objects.filter(patient=a).update(display_name="Someone Else")
    PatientIndex.objects.filter(patient=b).delete()
    Patient.all_objects.filter(pk=c.pk).update(deleted_at="2024-01-01T00:00:00Z")
    Identifier.all_objects.filter(patient=c).update(live=False)
    found = kinds(check_integrity())
    assert found["index-stale"] == [(a.pk,)]
    assert found["index-missing"] == [(b.pk,)]
    assert found["index-extra"] == [(c.pk,)]
    assert "index-stale" not in kinds(check_integrity(include_index=False))


def test_command_prints_no_violations_and_exits_0(steward, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        a, b = person(1), person(2)
        merge_patients(survivor=a, duplicate=b, actor=steward, reason="dupe")
    out = StringIO()
    call_command("check_integrity", stdout=out)
    assert "No violations." in out.getvalue()


def test_command_prints_each_violation_and_exits_1(steward):
    a, b = person(1), person(2)
    link(a, b, LinkType.SEEALSO)
    out = StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("check_integrity", "--skip-index", stdout=out)
    assert exc.value.returncode == 1
    assert f"[link-without-reverse] Patient {a.pk} has a seealso link to {b.pk}" in out.getvalue()


def test_command_exit_status_from_the_command_line():
    from django.core.management import ManagementUtility

    person(1)
    PatientIndex.objects.all().delete()
    with pytest.raises(SystemExit) as exc:
        ManagementUtility(["manage.py", "check_integrity"]).execute()
    assert exc.value.code == 1
