"""Shared set-up of the steward page tests: a typo duplicate that opens a candidate."""

from dataclasses import replace
from datetime import date

from matching.models import MatchCandidate
from patients.data import IdentifierData
from patients.services import register_patient
from tests.factories import patient_data

OTHER_MRN = "urn:oid:1.2.36.146.595.217.0.2"
# Whitenoise warns that `collectstatic` has not run; these tests do not serve static files.
NO_STATIC_WARNING = "ignore:No directory at:UserWarning"


def john(**extra):
    return patient_data(**{"family": "Smith", "given": ("John",), "mrn": "77", **extra})


def jon_smyth_elsewhere(*, other_mrn: str = "A-1", **extra):
    """The same man registered at another hospital, with typos in his name."""
    data = patient_data(**{"family": "Smyth", "given": ("Jon",), "mrn": None, **extra})
    return replace(data, identifiers=(IdentifierData(system=OTHER_MRN, value=other_mrn),))


def maria(**extra):
    return patient_data(
        **{
            "family": "Garcia",
            "given": ("Maria",),
            "gender": "female",
            "birth_date": date(1955, 1, 2),
            "mrn": "90",
            "phone": "+1 508 555 0111",
            "postal_code": "01001",
            **extra,
        }
    )


def maria_elsewhere(*, other_mrn: str = "B-2", **extra):
    """Another woman's second record: fewer agreeing fields than John's pair."""
    data = maria(**{"family": "Garcya", "mrn": None, "phone": None, "postal_code": "01002", **extra})
    return replace(data, identifiers=(IdentifierData(system=OTHER_MRN, value=other_mrn),))


def make_pair(actor, *, first=None, second=None) -> MatchCandidate:
    """Register two records of one person; the matcher opens their candidate."""
    a = register_patient(data=first or john(), actor=actor, reason="seed")
    b = register_patient(data=second or jon_smyth_elsewhere(), actor=actor, reason="seed")
    return MatchCandidate.objects.pair(a, b).get()


def pair_url(candidate: MatchCandidate, action: str = "") -> str:
    base = f"/review/{candidate.patient_a.uuid}/{candidate.patient_b.uuid}/"
    return f"{base}{action}/" if action else base
