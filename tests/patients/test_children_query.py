"""The one-query child loading (patients/children.py, patients/queries.py) against the
plain ORM reads it replaced: same rows, same order, same values and types."""

from dataclasses import replace
from datetime import date

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext

from matching.merging import merge_patients
from patients.children import many_with_children, one_with_children
from patients.codes import LinkType
from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData
from patients.models import Address, Contact, Identifier, Link, Name, Patient
from patients.queries import load_patient_data
from patients.services import delete_patient, register_patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, OrganizationFactory, patient_data

pytestmark = pytest.mark.django_db

CHILDREN = ("names", "identifiers", "addresses", "contacts", "links")


def _prefetched():
    """What ``with_children()`` used to be: one query per child table."""
    return Patient.all_objects.select_related("managing_organization").prefetch_related(
        Prefetch("names", queryset=Name.all_objects.order_by("-primary", "id")),
        Prefetch("identifiers", queryset=Identifier.all_objects.order_by("id")),
        Prefetch("addresses", queryset=Address.all_objects.order_by("-primary", "id")),
        Prefetch("contacts", queryset=Contact.all_objects.order_by("system", "rank", "id")),
        Prefetch("links", queryset=Link.objects.select_related("other").order_by("id")),
    )


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.fixture
def rich(clerk):
    organization = OrganizationFactory()
    other = register_patient(data=patient_data(family="Other", mrn="1"), actor=clerk)
    third = register_patient(data=patient_data(family="Third", mrn="3"), actor=clerk)
    data = patient_data(
        family="Ñúñez-García",
        given=("José", "María"),
        mrn="2",
        email="Jose@Example.org",
        managing_organization=organization.uuid,
        multiple_birth=True,
        multiple_birth_order=2,
    )
    data = replace(
        data,
        **{
            "names": (
                NameData(family="Nunez", given=("Jose",), use="usual", period_end=date(2001, 1, 1)),
                NameData(family="Ñúñez-García", given=("José", "María"), prefix=("Dr",), use="official"),
            ),
            "identifiers": (
                IdentifierData(system=MRN_SYSTEM, value="2", type="MR", period_start=date(2010, 5, 6)),
                IdentifierData(system=SSN_SYSTEM, value="123-45-6780", assigner="SSA"),
            ),
            "addresses": (
                *data.addresses,
                AddressData(line=("PO Box 9", "Unit 3"), city="Springfield", postal_code="01101", use="old"),
            ),
            "contacts": (
                ContactData(system="phone", value="+1 617 555 0199", use="work", rank=2),
                ContactData(system="phone", value="+1 617 555 0100", use="home", rank=1),
                ContactData(system="email", value="Jose@Example.org"),
                ContactData(system="phone", value="+1 617 555 0111"),
            ),
            "links": (
                LinkData(other=other.uuid, type=LinkType.SEEALSO, reason="Same household"),
                LinkData(other=third.uuid, type=LinkType.REFER),
            ),
        },
    )
    patient = register_patient(data=data, actor=clerk)
    return patient, other, third


@pytest.fixture
def merged_and_deleted(rich, steward):
    """``rich`` plus a merged-away duplicate of ``third`` and a deleted patient: a merge
    adds replaced-by / replaces links; a deletion hides a patient's links."""
    patient, other, third = rich
    duplicate = register_patient(data=patient_data(family="Third", mrn="4"), actor=steward)
    merge_patients(survivor=third, duplicate=duplicate, actor=steward, reason="same person")
    gone = register_patient(data=patient_data(family="Gone", mrn="5"), actor=steward)
    delete_patient(patient=gone, actor=steward, reason="test")
    return patient, other, third, duplicate, gone


def test_with_children_gives_what_prefetch_related_gave(merged_and_deleted):
    patient, other, third, duplicate, gone = merged_and_deleted
    ids = [patient.pk, other.pk, third.pk, duplicate.pk, gone.pk]
    old = {p.pk: p for p in _prefetched().filter(pk__in=ids)}
    with CaptureQueriesContext(connection) as queries:
        new = {p.pk: p for p in Patient.all_objects.with_children().filter(pk__in=ids)}
        for p in new.values():  # reading the children and the links' other patients: no query
            for name in CHILDREN:
                for child in getattr(p, name).all():
                    assert child.patient is p
                    if name == "links":
                        assert child.other.uuid
    assert len(queries) == 1
    assert new.keys() == old.keys()
    for pk, p in new.items():
        assert _fields(p) == _fields(old[pk])
        assert p.managing_organization == old[pk].managing_organization
        for name in CHILDREN:
            got = [_fields(c) for c in getattr(p, name).all()]
            assert got == [_fields(c) for c in getattr(old[pk], name).all()], name
            for mine, theirs in zip(getattr(p, name).all(), getattr(old[pk], name).all(), strict=True):
                for field, value in _fields(mine).items():
                    assert type(value) is type(getattr(theirs, field)), (name, field)
        for mine, theirs in zip(p.links.all(), old[pk].links.all(), strict=True):
            assert _fields(mine.other) == _fields(theirs.other)
    assert [link.type for link in new[patient.pk].links.all()] == [LinkType.SEEALSO, LinkType.REFER]
    assert new[gone.pk].links.all().count() == 0 and not list(new[gone.pk].links.all())
    assert {link.type for link in new[duplicate.pk].links.all()} == {LinkType.REPLACED_BY}


def _same_patient(mine, theirs) -> None:
    assert _fields(mine) == _fields(theirs)
    for field, value in _fields(mine).items():
        assert type(value) is type(getattr(theirs, field)), field
    assert mine.managing_organization == theirs.managing_organization
    if theirs.managing_organization is not None:
        assert _fields(mine.managing_organization) == _fields(theirs.managing_organization)
    for name in CHILDREN:
        got, want = list(getattr(mine, name).all()), list(getattr(theirs, name).all())
        assert [_fields(c) for c in got] == [_fields(c) for c in want], name
        for child, other in zip(got, want, strict=True):
            assert child.patient is mine
            assert {f: type(v) for f, v in _fields(child).items()} == {
                f: type(v) for f, v in _fields(other).items()
            }, name
            if name == "links":
                assert _fields(child.other) == _fields(other.other)


def test_one_with_children_is_with_children_in_one_query(merged_and_deleted):
    """The compiled-once read (REST and FHIR read) gives what the queryset gives."""
    patient, *_, gone = merged_and_deleted
    for p in merged_and_deleted:
        want = Patient.all_objects.with_children().get(pk=p.pk)
        with CaptureQueriesContext(connection) as queries:
            by_uuid = one_with_children(uuid=p.uuid)
            by_text = one_with_children(uuid=str(p.uuid))
            by_pk = one_with_children(pk=p.pk)
            for loaded in (by_uuid, by_text, by_pk):
                for name in CHILDREN:
                    list(getattr(loaded, name).all())
                loaded.managing_organization  # noqa: B018 (select_related: no query)
        assert len(queries) == 3
        for loaded in (by_uuid, by_text, by_pk):
            _same_patient(loaded, want)
    assert one_with_children(uuid=patient.uuid).managing_organization is not None
    assert not list(one_with_children(pk=gone.pk).links.all())


def test_many_with_children_is_with_children_in_one_query(merged_and_deleted):
    pks = [p.pk for p in merged_and_deleted]
    want = {p.pk: p for p in Patient.all_objects.with_children().filter(pk__in=pks)}
    with CaptureQueriesContext(connection) as queries:
        got = many_with_children([*pks, 0])  # an unknown pk is left out
        for p in got.values():
            for name in CHILDREN:
                list(getattr(p, name).all())
    assert len(queries) == 1
    assert got.keys() == want.keys()
    for pk, p in got.items():
        _same_patient(p, want[pk])
    assert many_with_children([]) == {}


def test_one_with_children_without_a_patient(db):
    assert one_with_children(uuid="00000000-0000-0000-0000-000000000001") is None
    assert one_with_children(pk=0) is None
    with pytest.raises(TypeError):
        one_with_children()


def test_a_further_filter_on_loaded_children_stays_with_its_patient(rich):
    patient, other, _ = rich
    loaded = Patient.all_objects.with_children().get(pk=patient.pk)
    assert [n.family for n in loaded.names.filter(use="usual")] == ["Nunez"]
    assert loaded.identifiers.count() == 2  # the cached rows
    assert set(loaded.names.values_list("patient_id", flat=True)) == {patient.pk}
    assert Patient.objects.with_children().filter(pk=other.pk).count() == 1
    # The cached queryset itself, used directly, also stays with its patient.
    cached = loaded.addresses.all()
    assert cached.exclude(pk=0).count() == len(cached) > 0
    theirs = list(Address.objects.filter(patient=other).values_list("city", flat=True))
    assert cached.update(city="Elsewhere") == len(cached)
    assert list(Address.objects.filter(patient=other).values_list("city", flat=True)) == theirs


def test_load_patient_data_is_what_was_registered(rich, clerk):
    patient, other, third = rich
    data = load_patient_data([patient.pk, other.pk])[patient.pk]
    assert [(n.family, n.primary) for n in data.names] == [("Nunez", True), ("Ñúñez-García", False)]
    assert data.names[0].period_end == date(2001, 1, 1)
    assert data.names[1].prefix == ("Dr",) and isinstance(data.names[1].given, tuple)
    assert data.identifiers[0].period_start == date(2010, 5, 6)
    assert [c.normalized_value for c in data.contacts] == [
        "+16175550199",
        "+16175550100",
        "jose@example.org",
        "+16175550111",
    ]  # fmt: skip  (by id, not by rank: the stored order)
    assert [(link.other, link.type) for link in data.links] == [
        (other.uuid, LinkType.SEEALSO),
        (third.uuid, LinkType.REFER),
    ]
    assert data.multiple_birth_order == 2
    assert load_patient_data([]) == {}
