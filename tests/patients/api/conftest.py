import pytest

from patients.models import Patient
from patients.services import register_patient
from tests.factories import patient_data
from tests.patients.api.helpers import token_client


@pytest.fixture
def as_integrator(integrator):
    return token_client(integrator)


@pytest.fixture
def as_steward(steward):
    return token_client(steward)


@pytest.fixture
def as_auditor(auditor):
    return token_client(auditor)


@pytest.fixture
def as_clerk(clerk):
    return token_client(clerk)


@pytest.fixture
def as_outsider(outsider):
    return token_client(outsider)


@pytest.fixture
def as_admin(admin_user):
    return token_client(admin_user)


@pytest.fixture
def jones(clerk) -> Patient:
    data = patient_data(family="Jones", given=("Mary",), gender="female", mrn="501", phone="617 555 0142")
    return register_patient(data=data, actor=clerk, reason="seed")
