"""Property: whatever the two records and the steward's choices, merge-then-unmerge
restores every business field of both patients."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching.merging import MergeChoices, merge_patients, unmerge_patients
from matching.services import matching_disabled
from matching.survivorship import SCALAR_COLUMNS
from patients.codes import AddressUse, ContactUse, Gender, MaritalStatus, NameUse
from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from patients.models import Patient
from patients.queries import load_patient_data
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, OrganizationFactory

# Small shared pools, so the two records often share a name, an address or a phone
# (the "skip rows the survivor already has" path) and sometimes do not.
FAMILIES = ["Smith", "Smyth", "Jones", "O'Neil"]
GIVENS = ["John", "Jon", "Mary", "Ann"]
CITIES = ["Boston", "Cambridge", "Salem"]
PHONES = ["+1 617 555 0100", "+1 617 555 0101", "+1 508 555 0199"]
EMAILS = ["jon@example.org", "mary@example.org"]
SIDES = ["survivor", "duplicate", "both"]


def optional(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def periods(draw):
    start = draw(optional(st.dates(date(1990, 1, 1), date(2035, 1, 1))))  # some start in the future
    end = draw(optional(st.dates(start or date(1990, 1, 1), date(2036, 1, 1))))
    return {"period_start": start, "period_end": end}


names = st.builds(
    lambda family, given, use, primary, period: NameData(
        family=family, given=given, use=use, primary=primary, **period
    ),
    st.sampled_from(FAMILIES),
    st.lists(st.sampled_from(GIVENS), max_size=2).map(tuple),
    st.sampled_from(["", *NameUse.values]),
    st.booleans(),
    periods(),
)
addresses = st.builds(
    lambda city, line, use, primary, period: AddressData(
        line=line, city=city, postal_code="02134", use=use, primary=primary, **period
    ),
    st.sampled_from(CITIES),
    st.lists(st.sampled_from(["1 Main St", "9 Elm St", "Flat 2"]), max_size=2).map(tuple),
    st.sampled_from(["", *AddressUse.values]),
    st.booleans(),
    periods(),
)
contacts = st.builds(
    lambda system_value, use, rank, period: ContactData(
        system=system_value[0], value=system_value[1], use=use, rank=rank, **period
    ),
    st.one_of(
        st.sampled_from(PHONES).map(lambda v: ("phone", v)),
        st.sampled_from(EMAILS).map(lambda v: ("email", v)),
    ),
    st.sampled_from(["", *ContactUse.values]),
    optional(st.integers(1, 3)),
    periods(),
)


def identifiers(prefix: str):
    """Identifiers from a pool of the patient's own (the two never share one: that is a conflict)."""
    return st.lists(
        st.builds(
            lambda system, n, use: IdentifierData(system=system, value=f"{prefix}-{n}", use=use),
            st.sampled_from([MRN_SYSTEM, SSN_SYSTEM]),
            st.integers(1, 4),
            st.sampled_from(["", "usual", "official", "old"]),
        ),
        max_size=3,
        unique_by=lambda i: (i.system, i.value),
    ).map(tuple)


@st.composite
def patients(draw, prefix: str):
    multiple_birth = draw(optional(st.booleans()))
    return PatientData(
        names=tuple(draw(st.lists(names, min_size=1, max_size=3))),
        identifiers=draw(identifiers(prefix)),
        addresses=tuple(draw(st.lists(addresses, max_size=3))),
        contacts=tuple(draw(st.lists(contacts, max_size=3))),
        active=draw(st.booleans()),
        gender=draw(st.sampled_from(["", *Gender.values])),
        birth_date=draw(optional(st.dates(date(1930, 1, 1), date(2000, 12, 31)))),
        # Deaths after every possible birth: the "death before birth" refusal is tested apart.
        deceased=draw(st.booleans()),
        deceased_at=draw(
            optional(st.datetimes(datetime(2001, 1, 1), datetime(2020, 1, 1), timezones=st.just(UTC)))
        ),
        marital_status=draw(st.sampled_from(["", *MaritalStatus.values])),
        multiple_birth=multiple_birth,
        multiple_birth_order=draw(optional(st.integers(1, 3))) if multiple_birth else None,
    )


choices = st.builds(
    MergeChoices,
    take_from_duplicate=st.frozensets(st.sampled_from(sorted(SCALAR_COLUMNS))),
    names=st.sampled_from(SIDES),
    addresses=st.sampled_from(SIDES),
    contacts=st.sampled_from(SIDES),
)


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    survivor_data=patients("S"),
    duplicate_data=patients("D"),
    organizations=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    choices=choices,
)
def test_merge_then_unmerge_restores_every_business_field(
    steward, survivor_data, duplicate_data, organizations, choices
):
    # Each example in its own savepoint, rolled back: examples never see each other.
    with transaction.atomic():
        orgs = [None, OrganizationFactory().uuid, OrganizationFactory().uuid]
        with matching_disabled():
            survivor = register_patient(
                data=replace(survivor_data, managing_organization=orgs[organizations[0]]), actor=steward
            )
            duplicate = register_patient(
                data=replace(duplicate_data, managing_organization=orgs[organizations[1]]), actor=steward
            )
        ids = [survivor.pk, duplicate.pk]
        before = load_patient_data(ids)
        active = dict(Patient.objects.filter(pk__in=ids).values_list("pk", "active"))

        merge = merge_patients(
            survivor=survivor, duplicate=duplicate, actor=steward, reason="p", choices=choices
        )
        assert Patient.objects.get(pk=duplicate.pk).active is False
        unmerge_patients(merge=merge, actor=steward, reason="undo")

        assert load_patient_data(ids) == before
        assert dict(Patient.objects.filter(pk__in=ids).values_list("pk", "active")) == active
        transaction.set_rollback(True)
