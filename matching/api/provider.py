"""The candidates a registration opened, for POST /api/v1/patients/ (patients/api/candidates.py).

Plugged in by ``MatchingConfig.ready()``: ``patients`` imports nothing of matching, so
it asks through this provider. A new patient's candidates were all opened by its own
registration (the matcher runs inside that transaction).
"""

from __future__ import annotations

from matching.models import CandidateStatus, MatchCandidate
from patients.api.candidates import DuplicateCandidate
from patients.models import Patient


def registration_candidates(patient: Patient) -> list[DuplicateCandidate]:
    candidates = (
        MatchCandidate.objects.involving(patient)
        .filter(status=CandidateStatus.OPEN)
        .select_related("patient_a", "patient_b")
        .order_by("-probability", "pk")
    )
    return [
        DuplicateCandidate(
            id=c.uuid,
            patient=(c.patient_b if c.patient_a_id == patient.pk else c.patient_a).uuid,
            grade=c.grade,
            probability=c.probability,
        )
        for c in candidates
    ]
