from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData
from patients.errors import IdentifierConflict, PatientStateError, VersionConflict
from patients.models import Identifier, Link, Name, Patient
from patients.services import (
    delete_patient,
    patient_to_data,
    register_patient,
    restore_patient,
    update_patient,
)
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, OrganizationFactory, patient_data

pytestmark = pytest.mark.django_db


def test_register_normalises_input(clerk):
    data = patient_data(
        family="  van   der Berg ",
        given=(" Anna ", "", "Maria"),
        phone="(617) 555-0100",
        email="  Anna.Berg@Example.ORG ",
        postal_code=" sw1a  1aa ",
    )
    patient = register_patient(data=data, actor=clerk)
    name = patient.names.get()
    assert name.family == "van der Berg"
    assert name.given == ["Anna", "Maria"]
    assert name.primary is True
    phone = patient.contacts.get(system="phone")
    assert phone.value == "(617) 555-0100"
    assert phone.normalized_value == "+16175550100"
    assert patient.contacts.get(system="email").normalized_value == "anna.berg@example.org"
    assert patient.addresses.get().postal_code == "SW1A 1AA"
    assert patient.created_by == clerk and patient.updated_by == clerk


def test_register_uses_configured_phone_region(clerk, settings):
    settings.MPI_DEFAULT_PHONE_REGION = "GB"
    patient = register_patient(data=patient_data(phone="020 7946 0018"), actor=clerk)
    assert patient.contacts.get().normalized_value == "+442079460018"


def test_register_keeps_one_primary_name_and_address(clerk):
    data = patient_data()
    data = replace(
        data,
        names=(
            NameData(family="Smith", given=("John",)),
            NameData(family="Smyth", given=("Jon",), primary=True),
        ),
        addresses=(AddressData(city="Boston"), AddressData(city="Salem")),
    )
    patient = register_patient(data=data, actor=clerk)
    assert patient.names.get(primary=True).family == "Smyth"
    assert patient.addresses.get(primary=True).city == "Boston"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"birth_date": date.today() + timedelta(days=1)}, "birth_date"),
        ({"gender": "M"}, "gender"),
        ({"marital_status": "married"}, "marital_status"),
        ({"names": (NameData(family=" ", given=("",)),)}, "names[0].family"),
        ({"names": ()}, "names"),
        ({"names": (NameData(family="Smith", use="formal"),)}, "names[0].use"),
        ({"identifiers": (IdentifierData(system="", value="1"),)}, "identifiers[0].system"),
        ({"identifiers": (IdentifierData(system=MRN_SYSTEM, value=" "),)}, "identifiers[0].value"),
        ({"identifiers": (IdentifierData(system="not a uri", value="1"),)}, "identifiers[0].system"),
        ({"identifiers": (IdentifierData(system=MRN_SYSTEM, value="1", type="XX"),)}, "identifiers[0].type"),
        (
            {
                "identifiers": (
                    IdentifierData(system=MRN_SYSTEM, value="1"),
                    IdentifierData(system=MRN_SYSTEM, value="1"),
                )
            },
            "identifiers[1]",
        ),
        ({"contacts": (ContactData(system="email", value="not-an-email"),)}, "contacts[0].value"),
        ({"contacts": (ContactData(system="pigeon", value="x"),)}, "contacts[0].system"),
        ({"contacts": (ContactData(system="phone", value="call me"),)}, "contacts[0].value"),
        ({"addresses": (AddressData(),)}, "addresses[0]"),
        (
            {
                "addresses": (
                    AddressData(city="Boston", period_start=date(2020, 1, 2), period_end=date(2020, 1, 1)),
                )
            },
            "addresses[0].period",
        ),
        ({"deceased_at": datetime(1970, 1, 1, tzinfo=UTC)}, "deceased_at"),
        ({"deceased_at": datetime.now(UTC) + timedelta(days=2)}, "deceased_at"),
        ({"multiple_birth_order": 0}, "multiple_birth_order"),
        (
            {"links": (LinkData(other="00000000-0000-0000-0000-000000000000", type="replaced-by"),)},
            "links[0].type",
        ),
    ],
)
def test_register_rejects_impossible_data_by_field(clerk, change, path):
    with pytest.raises(ValidationError) as exc:
        register_patient(data=replace(patient_data(), **change), actor=clerk)
    assert path in exc.value.message_dict
    assert Patient.all_objects.count() == 0


def test_register_rejects_unknown_organization_and_link_target(clerk):
    import uuid

    with pytest.raises(ValidationError) as exc:
        register_patient(data=patient_data(managing_organization=uuid.uuid4()), actor=clerk)
    assert "managing_organization" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        register_patient(data=patient_data(links=(LinkData(other=uuid.uuid4()),)), actor=clerk)
    assert "links[0].other" in exc.value.message_dict
    assert Patient.all_objects.count() == 0


def test_register_duplicate_identifier_names_existing_patient(clerk):
    first = register_patient(data=patient_data(mrn="77"), actor=clerk)
    with pytest.raises(IdentifierConflict) as exc:
        register_patient(data=patient_data(family="Jones", mrn="77"), actor=clerk)
    assert exc.value.existing == first
    assert str(first.uuid) in str(exc.value)
    assert exc.value.field == "identifiers[0]"
    assert Patient.objects.count() == 1


def test_same_value_in_another_system_is_not_a_conflict(clerk):
    register_patient(data=patient_data(mrn="77"), actor=clerk)
    other = replace(patient_data(mrn=None), identifiers=(IdentifierData(system=SSN_SYSTEM, value="77"),))
    register_patient(data=other, actor=clerk)
    assert Identifier.objects.filter(value="77").count() == 2


def test_update_bumps_version_and_records_history(clerk, steward):
    patient = register_patient(data=patient_data(), actor=clerk, reason="walk-in")
    data = replace(patient_to_data(patient), gender="female", birth_date=date(1980, 4, 3))
    updated = update_patient(patient=patient, data=data, expected_version=1, actor=steward, reason="typo fix")
    assert updated.version == 2
    assert updated.updated_by == steward
    latest = updated.history.first()
    assert latest.history_user == steward
    assert latest.history_change_reason == "typo fix"
    assert latest.version == 2
    assert updated.history.last().history_change_reason == "walk-in"


def test_update_with_stale_version_raises_conflict_naming_both(clerk):
    patient = register_patient(data=patient_data(), actor=clerk)
    data = patient_to_data(patient)
    update_patient(patient=patient, data=replace(data, gender="female"), expected_version=1, actor=clerk)
    with pytest.raises(VersionConflict) as exc:
        update_patient(patient=patient, data=replace(data, gender="other"), expected_version=1, actor=clerk)
    assert (exc.value.expected, exc.value.current) == (1, 2)
    assert "version 2" in str(exc.value) and "not 1" in str(exc.value)
    patient.refresh_from_db()
    assert patient.gender == "female"


def test_update_without_changes_keeps_version(clerk):
    patient = register_patient(data=patient_data(email="a@example.org"), actor=clerk)
    same = update_patient(patient=patient, data=patient_to_data(patient), expected_version=None, actor=clerk)
    assert same.version == 1
    assert patient.history.count() == 1


def test_update_of_a_child_row_bumps_version_and_keeps_unchanged_rows(clerk):
    patient = register_patient(data=patient_data(), actor=clerk)
    name_id = patient.names.get().id
    data = patient_to_data(patient)
    data = replace(data, contacts=(ContactData(system="phone", value="617-555-0199"),))
    updated = update_patient(patient=patient, data=data, expected_version=1, actor=clerk, reason="new phone")
    assert updated.version == 2
    assert patient.names.get().id == name_id  # untouched rows keep their identity
    assert patient.contacts.get().normalized_value == "+16175550199"
    removed = Patient.objects.get(pk=patient.pk).contacts.model.history.filter(history_type="-").get()
    assert removed.value == "+1 617 555 0100"
    assert removed.history_user == clerk and removed.history_change_reason == "new phone"


def test_update_can_move_primary_flag(clerk):
    data = replace(
        patient_data(), names=(NameData(family="Smith", given=("John",)), NameData(family="Smyth"))
    )
    patient = register_patient(data=data, actor=clerk)
    swapped = replace(
        data, names=(NameData(family="Smith", given=("John",)), NameData(family="Smyth", primary=True))
    )
    update_patient(patient=patient, data=swapped, expected_version=1, actor=clerk)
    assert patient.names.get(primary=True).family == "Smyth"
    assert patient.names.count() == 2


def test_update_identifier_conflict_changes_nothing(clerk):
    register_patient(data=patient_data(mrn="1"), actor=clerk)
    second = register_patient(data=patient_data(family="Jones", mrn="2"), actor=clerk)
    data = replace(
        patient_to_data(second), gender="female", identifiers=(IdentifierData(system=MRN_SYSTEM, value="1"),)
    )
    with pytest.raises(IdentifierConflict):
        update_patient(patient=second, data=data, expected_version=1, actor=clerk)
    second.refresh_from_db()
    assert second.gender == "male" and second.version == 1
    assert list(second.identifiers.values_list("value", flat=True)) == ["2"]


def test_soft_delete_hides_patient_and_children_and_restore_undoes_it(clerk, steward):
    patient = register_patient(data=patient_data(), actor=clerk)
    delete_patient(patient=patient, actor=steward, reason="registered in error")
    assert not Patient.objects.filter(pk=patient.pk).exists()
    assert not Name.objects.filter(patient=patient).exists()
    assert Name.all_objects.filter(patient=patient).exists()
    deleted = Patient.all_objects.get(pk=patient.pk)
    assert deleted.deleted_by == steward and deleted.deleted_at is not None
    assert deleted.version == 2
    assert deleted.history.first().history_change_reason == "registered in error"

    restored = restore_patient(patient=deleted, actor=steward, reason="was right after all")
    assert restored.deleted_at is None and restored.deleted_by is None
    assert restored.version == 3
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert Identifier.objects.get(patient=patient).live is True


def test_delete_frees_identifier_and_restore_refuses_when_taken(clerk):
    first = register_patient(data=patient_data(mrn="77"), actor=clerk)
    delete_patient(patient=first, actor=clerk)
    second = register_patient(data=patient_data(family="Jones", mrn="77"), actor=clerk)
    with pytest.raises(IdentifierConflict) as exc:
        restore_patient(patient=first, actor=clerk)
    assert exc.value.existing == second
    assert Patient.all_objects.get(pk=first.pk).deleted_at is not None


def test_delete_and_restore_refuse_the_wrong_state(clerk):
    patient = register_patient(data=patient_data(), actor=clerk)
    with pytest.raises(PatientStateError):
        restore_patient(patient=patient, actor=clerk)
    delete_patient(patient=patient, actor=clerk)
    with pytest.raises(PatientStateError):
        delete_patient(patient=patient, actor=clerk)
    with pytest.raises(PatientStateError):
        update_patient(patient=patient, data=patient_data(), expected_version=None, actor=clerk)


def test_delete_with_stale_version_is_refused(clerk):
    patient = register_patient(data=patient_data(), actor=clerk)
    with pytest.raises(VersionConflict):
        delete_patient(patient=patient, actor=clerk, expected_version=5)
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_seealso_link_is_kept_symmetric(clerk):
    a = register_patient(data=patient_data(mrn="1"), actor=clerk)
    b = register_patient(data=patient_data(mrn="2", family="Smyth"), actor=clerk)
    data = replace(patient_to_data(a), links=(LinkData(other=b.uuid, type="seealso", reason="same person?"),))
    update_patient(patient=a, data=data, expected_version=1, actor=clerk)
    assert Link.objects.filter(patient=a, other=b, type="seealso").exists()
    assert Link.objects.filter(patient=b, other=a, type="seealso").exists()
    b.refresh_from_db()
    assert b.version == 2  # its children changed too

    update_patient(patient=a, data=replace(data, links=()), expected_version=2, actor=clerk)
    assert not Link.objects.filter(type="seealso").exists()


def test_link_to_self_is_rejected(clerk):
    a = register_patient(data=patient_data(), actor=clerk)
    data = replace(patient_to_data(a), links=(LinkData(other=a.uuid),))
    with pytest.raises(ValidationError) as exc:
        update_patient(patient=a, data=data, expected_version=1, actor=clerk)
    assert "links[0].other" in exc.value.message_dict


def test_managing_organization_is_resolved_by_uuid(clerk):
    org = OrganizationFactory()
    patient = register_patient(data=patient_data(managing_organization=org.uuid), actor=clerk)
    assert patient.managing_organization == org
    assert patient_to_data(patient).managing_organization == org.uuid


def test_birth_order_implies_multiple_birth(clerk):
    patient = register_patient(data=patient_data(multiple_birth_order=2), actor=clerk)
    assert patient.multiple_birth is True and patient.multiple_birth_order == 2


def test_patient_to_data_round_trips(clerk):
    data = patient_data(email="x@example.org", marital_status="M")
    patient = register_patient(data=data, actor=clerk)
    again = patient_to_data(patient)
    assert again.names[0].family == "Smith"
    assert again.contacts[1].normalized_value == "x@example.org"
    assert again.marital_status == "M"
