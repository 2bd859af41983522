"""Numbers from outside (URLs, files, request bodies) never wrap and never crash."""

from __future__ import annotations

import pytest
from django.db import DataError, transaction

from patients.data import whole_number
from patients.models import Contact, Patient
from patients.services import register_patient
from tests.factories import patient_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("9" * 18, 10**18 - 1),
        ("9" * 19, None),  # past a bigint's reach
        ("9" * 5000, None),  # int() refuses more than 4,300 digits
        ("²", None),  # str.isdigit() says yes, int() says no
        ("١٢", None),  # Arabic-Indic digits: int() reads them, a URL should not
        ("-1", None),
        ("1.0", None),
        (" 1", None),
        ("", None),
        (None, None),
    ],
)
def test_whole_number_takes_only_ascii_digits_of_bounded_length(text, expected):
    assert whole_number(text) == expected


def test_whole_number_with_fewer_digits():
    assert whole_number("123456789", max_digits=9) == 123456789
    assert whole_number("1234567890", max_digits=9) is None


def test_an_integer_beyond_its_column_is_refused_not_wrapped(clerk):
    """psycopg packs an Int2/Int4 parameter into 2/4 bytes without a check under
    server-side binding: 65537 was stored as 1 in a smallint column, 2**32 as 0 in an
    integer one. The backend refuses such values with the DataError PostgreSQL would
    raise."""
    patient = register_patient(data=patient_data(), actor=clerk)
    with pytest.raises(DataError, match="smallint out of range"), transaction.atomic():
        Patient.all_objects.filter(pk=patient.pk).update(multiple_birth_order=65537)
    contact = Contact.all_objects.filter(patient=patient).first()
    with pytest.raises(DataError, match="integer out of range"), transaction.atomic():
        Contact.all_objects.filter(pk=contact.pk).update(rank=2**32)
    patient.refresh_from_db()
    contact.refresh_from_db()
    assert patient.multiple_birth_order is None and contact.rank != 0
    # In range, as before.
    Patient.all_objects.filter(pk=patient.pk).update(multiple_birth_order=32767)
    assert Patient.all_objects.get(pk=patient.pk).multiple_birth_order == 32767
    # An exact lookup out of range matches nothing (Django's own rule), it does not fail.
    assert not Patient.all_objects.filter(version=2**40).exists()
