"""Filters and ordering of the candidate and merge lists."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from matching.model import MatchGrade
from matching.models import CandidateStatus, MatchCandidate, Merge, MergeStatus
from patients.api.filters import StableOrderingFilter

QUEUE_GRADES = [(str(g), str(g)) for g in (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE)]


class CandidateFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CandidateStatus.choices)
    grade = django_filters.ChoiceFilter(choices=QUEUE_GRADES)
    patient = django_filters.UUIDFilter(method="filter_patient", help_text="Either patient of the pair.")
    ordering = StableOrderingFilter(
        fields=(("probability", "probability"), ("created_at", "created_at")),
        help_text="probability or created_at, '-' for descending; most likely first by default.",
    )

    class Meta:
        model = MatchCandidate
        fields = ()

    def filter_patient(self, queryset, name, value):
        return queryset.filter(Q(patient_a__uuid=value) | Q(patient_b__uuid=value))


class MergeFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=MergeStatus.choices)
    patient = django_filters.UUIDFilter(method="filter_patient", help_text="The survivor or the duplicate.")

    class Meta:
        model = Merge
        fields = ()

    def filter_patient(self, queryset, name, value):
        return queryset.filter(Q(survivor__uuid=value) | Q(duplicate__uuid=value))
