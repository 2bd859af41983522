"""The steward pages' forms: queue filters, decisions with a reason, and the merge form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.db.models import Q
from django.utils import timezone

from matching.model import MatchGrade
from patients.models import Patient

# Grades a candidate can have (the matcher never opens a certainly-not pair).
QUEUE_GRADES = (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE)

# Patient columns a merge can take from either record (matching.merging.MergeChoices).
MERGE_SCALAR_FIELDS = {
    "gender": "Gender",
    "birth_date": "Birth date",
    "deceased": "Deceased",
    "marital_status": "Marital status",
    "multiple_birth": "Multiple birth",
    "managing_organization": "Managing organization",
}
MERGE_COLLECTIONS = {"names": "Names", "addresses": "Addresses", "contacts": "Contacts"}
SIDES = [("left", "Left"), ("right", "Right")]
COLLECTION_SIDES = [*SIDES, ("both", "Both")]


class QueueFilterForm(forms.Form):
    AGES = {
        "1": ("Opened today", timedelta(days=1), True),
        "7": ("Opened this week", timedelta(days=7), True),
        "older-7": ("Waiting over a week", timedelta(days=7), False),
        "older-30": ("Waiting over 30 days", timedelta(days=30), False),
    }
    ASSIGNEES = {"me": "Claimed by me", "unclaimed": "Not claimed", "others": "Claimed by others"}

    grade = forms.ChoiceField(
        required=False, choices=[("", "All grades"), *((g.value, g.label) for g in QUEUE_GRADES)]
    )
    age = forms.ChoiceField(required=False, choices=[("", "Any age"), *((k, v[0]) for k, v in AGES.items())])
    assignee = forms.ChoiceField(
        required=False, choices=[("", "Anyone"), *ASSIGNEES.items()], label="Claimed"
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def filter(self, queryset, user, *, grade: bool = True):
        """``queryset`` narrowed by the valid filters (all of them unless ``grade`` is False)."""
        self.is_valid()  # an invalid filter is left out; the valid ones still apply
        data = getattr(self, "cleaned_data", {})
        now = timezone.now()
        if grade and data.get("grade"):
            queryset = queryset.filter(grade=data["grade"])
        if data.get("age"):
            _, span, newer = self.AGES[data["age"]]
            since = Q(created_at__gte=now - span)
            queryset = queryset.filter(since if newer else ~since)
        held = Q(claimed_by__isnull=False, claimed_until__gt=now)
        assignee = data.get("assignee")
        if assignee == "me":
            queryset = queryset.filter(held, claimed_by=user)
        elif assignee == "unclaimed":
            queryset = queryset.exclude(held)
        elif assignee == "others":
            queryset = queryset.filter(held).exclude(claimed_by=user)
        return queryset


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the history of both records.",
    )

    def __init__(self, *args, required: bool = True, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required


@dataclass(frozen=True)
class MergeRequest:
    """What the merge form asks for, in the terms of ``merge_patients``."""

    survivor: Patient
    duplicate: Patient
    take_from_duplicate: frozenset[str]
    names: str
    addresses: str
    contacts: str
    survivor_version: int
    duplicate_version: int
    reason: str


class MergeForm(forms.Form):
    """Survivor, then per field which record's value the survivor keeps.

    ``left`` is the candidate's patient_a, ``right`` its patient_b, as on the page. The
    versions are the ones the page showed: a record changed since is a clear conflict.
    """

    survivor = forms.ChoiceField(choices=SIDES, widget=forms.RadioSelect, initial="left")
    left_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    right_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why these are the same person; kept with the merge and in both histories.",
    )

    def __init__(self, *args, left: Patient, right: Patient, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.left, self.right = left, right
        self.fields["left_version"].initial = left.version
        self.fields["right_version"].initial = right.version
        for name, label in MERGE_SCALAR_FIELDS.items():
            self.fields[name] = forms.ChoiceField(
                label=label, choices=SIDES, widget=forms.RadioSelect, initial=self._default_side(name)
            )
        for name, label in MERGE_COLLECTIONS.items():
            self.fields[name] = forms.ChoiceField(
                label=label, choices=COLLECTION_SIDES, widget=forms.RadioSelect, initial="both"
            )

    def _default_side(self, field: str) -> str:
        # Keep the left value unless only the right record has one.
        def empty(patient: Patient) -> bool:
            return getattr(patient, f"{field}_id" if field == "managing_organization" else field) in (
                None,
                "",
                False,
            )

        return "right" if empty(self.left) and not empty(self.right) else "left"

    def scalar_rows(self) -> list[tuple[forms.BoundField, str, str]]:
        """Each scalar choice with the left and right values it chooses between."""
        return [
            (self[name], scalar_display(self.left, name), scalar_display(self.right, name))
            for name in MERGE_SCALAR_FIELDS
        ]

    def collection_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in MERGE_COLLECTIONS]

    def merge_request(self) -> MergeRequest:
        data = self.cleaned_data
        keep_left = data["survivor"] == "left"
        survivor, duplicate = (self.left, self.right) if keep_left else (self.right, self.left)
        duplicate_side = "right" if keep_left else "left"

        def collection(choice: str) -> str:
            if choice == "both":
                return "both"
            return "duplicate" if choice == duplicate_side else "survivor"

        return MergeRequest(
            survivor=survivor,
            duplicate=duplicate,
            # Only where the records differ: taking an equal value is no choice at all.
            take_from_duplicate=frozenset(
                f
                for f in MERGE_SCALAR_FIELDS
                if data[f] == duplicate_side and scalar_display(survivor, f) != scalar_display(duplicate, f)
            ),
            names=collection(data["names"]),
            addresses=collection(data["addresses"]),
            contacts=collection(data["contacts"]),
            survivor_version=data["left_version"] if keep_left else data["right_version"],
            duplicate_version=data["right_version"] if keep_left else data["left_version"],
            reason=data["reason"].strip(),
        )


def scalar_display(patient: Patient, field: str) -> str:
    """A merge choice's value on one record, as the merge form shows it."""
    if field == "gender":
        return patient.get_gender_display()
    if field == "birth_date":
        return patient.birth_date.isoformat() if patient.birth_date else ""
    if field == "deceased":
        if not patient.deceased:
            return "no"
        return f"yes, {patient.deceased_at:%Y-%m-%d}" if patient.deceased_at else "yes"
    if field == "marital_status":
        return patient.get_marital_status_display()
    if field == "multiple_birth":
        if patient.multiple_birth is None:
            return ""
        order = f", order {patient.multiple_birth_order}" if patient.multiple_birth_order else ""
        return f"{'yes' if patient.multiple_birth else 'no'}{order}"
    if field == "managing_organization":
        return str(patient.managing_organization) if patient.managing_organization_id else ""
    raise ValueError(field)
