"""Integrity lives in the database: these write around the services on purpose."""

from datetime import UTC, date, datetime

import pytest
from django.db import IntegrityError, transaction

from patients.models import Identifier, Link, Name, Patient
from patients.services import delete_patient, register_patient
from tests.factories import MRN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db


def _integrity_error(fn) -> str:
    with pytest.raises(IntegrityError) as exc, transaction.atomic():
        fn()
    return str(exc.value)


def test_live_identifier_is_unique_in_the_database(clerk):
    patient = register_patient(data=patient_data(mrn="77"), actor=clerk)
    other = Patient.objects.create()
    error = _integrity_error(lambda: Identifier.objects.create(patient=other, system=MRN_SYSTEM, value="77"))
    assert "uniq_live_identifier" in error
    delete_patient(patient=patient, actor=clerk)
    Identifier.objects.create(patient=other, system=MRN_SYSTEM, value="77")  # freed by the soft delete


def test_identifier_needs_system_and_value():
    patient = Patient.objects.create()
    assert "identifier_system_and_value" in _integrity_error(
        lambda: Identifier.objects.create(patient=patient, system="", value="1")
    )


def test_one_primary_name_per_patient_and_no_empty_name():
    patient = Patient.objects.create()
    Name.objects.create(patient=patient, family="Smith", primary=True)
    assert "uniq_primary_name" in _integrity_error(
        lambda: Name.objects.create(patient=patient, family="Smyth", primary=True)
    )
    assert "name_not_empty" in _integrity_error(lambda: Name.objects.create(patient=patient))


def test_no_link_to_self():
    patient = Patient.objects.create()
    assert "link_not_to_self" in _integrity_error(
        lambda: Link.objects.create(patient=patient, other=patient, type="seealso")
    )


def test_patient_checks():
    assert "patient_deceased_at_implies_deceased" in _integrity_error(
        lambda: Patient.objects.create(deceased=False, deceased_at=datetime(2020, 1, 1, tzinfo=UTC))
    )
    assert "patient_not_deceased_before_birth" in _integrity_error(
        lambda: Patient.objects.create(
            birth_date=date(2000, 1, 1),
            deceased=True,
            deceased_at=datetime(1999, 1, 1, tzinfo=UTC),
        )
    )
    assert "patient_multiple_birth_order_positive" in _integrity_error(
        lambda: Patient.objects.create(multiple_birth_order=0)
    )


def test_extensions_exist():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        names = {row[0] for row in cursor.fetchall()}
    assert {"pg_trgm", "unaccent", "fuzzystrmatch"} <= names


def test_role_groups_exist_with_permissions():
    from django.contrib.auth.models import Group

    groups = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert {"clerk", "steward", "integrator", "auditor"} <= set(groups)
    assert "restore_patient" in groups["steward"]
    assert "add_patient" in groups["clerk"] and "delete_patient" in groups["clerk"]
    assert "add_patient" not in groups["auditor"] and "view_historicalpatient" in groups["auditor"]
    assert "purge_patient" not in set().union(*groups.values())
