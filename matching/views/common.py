"""What the steward views share: finding a candidate by its pair, and error wording."""

from __future__ import annotations

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404

from matching.models import MatchCandidate
from patients.errors import PatientConflict
from patients.models import Patient

# Permissions, named once (the decorators on each view say which one it needs).
REVIEW = "matching.review_candidate"
MERGE = "matching.merge_patients"
VIEW_PATIENT = "patients.view_patient"


def get_candidate(a: UUID, b: UUID) -> MatchCandidate:
    """The candidate of the pair, whichever order the two patient ids come in.

    A pair is its public id: candidates have no UUID of their own, and a pair has at
    most one candidate (uniq_candidate_pair).
    """
    pair = Q(patient_a__uuid=a, patient_b__uuid=b) | Q(patient_a__uuid=b, patient_b__uuid=a)
    candidate = (
        MatchCandidate.objects.filter(pair)
        .select_related("model_version", "claimed_by", "decided_by", "patient_a", "patient_b")
        .first()
    )
    if candidate is None:
        raise Http404("No such candidate pair.")
    return candidate


def load_pair(candidate: MatchCandidate) -> tuple[Patient, Patient]:
    """Both patients with every child row, left (patient_a) first."""
    patients = Patient.all_objects.with_children().in_bulk([candidate.patient_a_id, candidate.patient_b_id])
    return patients[candidate.patient_a_id], patients[candidate.patient_b_id]


def error_text(exc: Exception) -> str:
    """A service refusal as one sentence for a message box."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    if isinstance(exc, PatientConflict):
        return exc.message
    return str(exc)
