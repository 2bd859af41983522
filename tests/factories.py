"""Deterministic test data: fixed defaults and sequences, no random values."""

from datetime import date

import factory

from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from patients.models import Organization

MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"General Hospital {n}")
    identifier_system = factory.Sequence(lambda n: f"urn:oid:1.2.3.4.{n}")


def patient_data(
    *,
    family: str = "Smith",
    given: tuple[str, ...] = ("John",),
    birth_date: date | None = date(1980, 3, 4),
    gender: str = "male",
    mrn: str | None = "77",
    phone: str | None = "+1 617 555 0100",
    email: str | None = None,
    postal_code: str = "02134",
    **extra,
) -> PatientData:
    identifiers = (IdentifierData(system=MRN_SYSTEM, value=mrn, type="MR"),) if mrn else ()
    contacts = []
    if phone:
        contacts.append(ContactData(system="phone", value=phone, use="home"))
    if email:
        contacts.append(ContactData(system="email", value=email))
    return PatientData(
        names=(NameData(family=family, given=given, use="official"),),
        identifiers=identifiers,
        addresses=(
            AddressData(
                line=("1 Main St",), city="Boston", state="MA", postal_code=postal_code, country="US"
            ),
        ),
        contacts=tuple(contacts),
        gender=gender,
        birth_date=birth_date,
        **extra,
    )
