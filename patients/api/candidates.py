"""The duplicate candidates returned with a registration (POST /api/v1/patients/).

The matching app owns candidates, and ``patients`` imports no other app, so the
matching app plugs its lookup in here: in its ``AppConfig.ready()`` it calls
``set_candidate_provider(fn)``, where ``fn(patient)`` returns the ``DuplicateCandidate``s
that registering ``patient`` opened (the registration's transaction has already recorded
them). Until then no provider is set and registrations return ``candidates: []``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from patients.models import Patient


@dataclass(frozen=True)
class DuplicateCandidate:
    id: UUID  # the candidate's public id, for the candidates endpoint
    patient: UUID  # the other patient: the one this registration may duplicate
    grade: str  # "certain", "probable" or "possible"
    probability: float  # 0..1


CandidateProvider = Callable[[Patient], list[DuplicateCandidate]]

_provider: CandidateProvider | None = None


def set_candidate_provider(provider: CandidateProvider | None) -> CandidateProvider | None:
    """Called once by the matching app; returns the previous provider (tests put it back)."""
    global _provider
    previous, _provider = _provider, provider
    return previous


def candidates_for(patient: Patient) -> list[DuplicateCandidate]:
    """The duplicate candidates the matcher opened for a newly registered patient."""
    return list(_provider(patient)) if _provider else []
