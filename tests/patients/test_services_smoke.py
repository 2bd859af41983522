from patients.models import Patient
from patients.services import patient_to_data, register_patient, update_patient
from tests.factories import patient_data


def test_register_and_noop_update(db, clerk):
    p = register_patient(data=patient_data(), actor=clerk, reason="walk-in")
    assert p.version == 1
    assert p.names.get().family == "Smith"
    p2 = update_patient(patient=p, data=patient_to_data(p), expected_version=1, actor=clerk)
    assert p2.version == 1
    assert Patient.objects.count() == 1
