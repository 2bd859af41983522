import pytest

from matching.models import MatchCandidate
from patients.services import register_patient
from tests.factories import patient_data
from tests.patients.api.conftest import (  # noqa: F401 (fixtures)
    as_admin,
    as_auditor,
    as_clerk,
    as_integrator,
    as_outsider,
    as_steward,
)


@pytest.fixture
def pair(clerk):
    """Two records of one John Smith (the second typed "Jon"): the matcher opens a candidate."""
    first = register_patient(data=patient_data(mrn="77"), actor=clerk, reason="seed")
    second = register_patient(data=patient_data(given=("Jon",), mrn="78"), actor=clerk, reason="seed")
    candidate = MatchCandidate.objects.pair(first, second).get()
    return first, second, candidate
