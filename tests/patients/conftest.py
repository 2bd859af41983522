import pytest

from patients.models import Patient
from patients.services import register_patient
from tests.factories import patient_data


@pytest.fixture
def smith(clerk) -> Patient:
    return register_patient(data=patient_data(), actor=clerk, reason="seed")


@pytest.fixture
def nunez(clerk) -> Patient:
    data = patient_data(
        family="Núñez", given=("José",), gender="female", mrn="78", phone="617 555 0199", postal_code="02135"
    )
    return register_patient(data=data, actor=clerk)
