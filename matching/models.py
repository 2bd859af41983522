"""Stored match models (versioned parameters), name frequencies, the candidate queue and merges."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from matching.model import MatchGrade
from patients.models import Patient


class MatchModelVersion(models.Model):
    """One parameter set of the matcher (m/u per level, prior, thresholds).

    Exactly one is active; every stored score names the version it came from.
    Migration 0002 stores the shipped defaults as version 1.
    """

    version = models.PositiveIntegerField(unique=True)
    params = models.JSONField(help_text="matching.params.MatchParams.to_dict()")
    active = models.BooleanField(default=False)
    notes = models.TextField(blank=True, help_text="How it was made: defaults, or a training summary.")
    training = models.JSONField(default=dict, blank=True, help_text="Training statistics, if trained.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=Q(active=True), name="one_active_match_model"
            )
        ]

    def __str__(self) -> str:
        return f"match model v{self.version}{' (active)' if self.active else ''}"


class NameFrequency(models.Model):
    """How many live patients carry a name key (``matching.prepare.*_tf_key``).

    The row with key ``""`` holds the number of patients counted. Refreshed by
    ``manage.py refresh_name_frequencies`` (and by train_matcher / find_duplicates);
    used for the term-frequency adjustment of exact name agreement.
    """

    class Kind(models.TextChoices):
        FAMILY = "family"
        GIVEN = "given"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    key = models.CharField(max_length=200, blank=True)
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="uniq_name_frequency")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key!r}: {self.count}"


class CandidateStatus(models.TextChoices):
    OPEN = "open", "Open"
    MERGED = "merged", "Merged"
    LINKED = "linked", "Linked (same person, both kept)"
    NOT_DUPLICATE = "not-duplicate", "Not a duplicate"
    DISMISSED = "dismissed", "Dismissed"


class MatchCandidateQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=CandidateStatus.OPEN)

    def involving(self, patient: Patient):
        return self.filter(Q(patient_a=patient) | Q(patient_b=patient))

    def pair(self, a: Patient | int, b: Patient | int):
        low, high = sorted((getattr(a, "pk", a), getattr(b, "pk", b)))
        return self.filter(patient_a_id=low, patient_b_id=high)


class MatchCandidate(models.Model):
    """A possible duplicate: an unordered pair, stored with the lower patient id first."""

    # The public id (REST candidates endpoint, registration responses).
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient_a = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    patient_b = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    probability = models.FloatField()
    weight = models.FloatField(help_text="Match weight in bits.")
    grade = models.CharField(max_length=16, choices=MatchGrade.choices)
    evidence = models.JSONField(default=dict, help_text="Per-field comparison: values, level, weight.")
    blocks = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    model_version = models.ForeignKey(MatchModelVersion, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=CandidateStatus.choices, default=CandidateStatus.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was decided so.")
    note = models.TextField(blank=True, help_text="What the system did with it last (e.g. why re-opened).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # A steward's claim, so two stewards don't work the same pair (matching/claims.py).
    # Not history-tracked: a claim is a lock, not a decision.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["updated_at", "claimed_by", "claimed_until"])

    objects = MatchCandidateQuerySet.as_manager()

    class Meta:
        permissions = [
            ("review_candidate", "Can review duplicate candidates"),
            ("merge_patients", "Can merge and unmerge patients"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(patient_a__lt=F("patient_b")), name="candidate_pair_ordered"),
            models.UniqueConstraint(fields=["patient_a", "patient_b"], name="uniq_candidate_pair"),
        ]
        indexes = [
            models.Index(fields=["status", "-probability"], name="candidate_queue_idx"),
            models.Index(fields=["patient_b"], name="candidate_patient_b_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_a_id} ~ {self.patient_b_id} ({self.grade}, {self.status})"

    @property
    def is_decided(self) -> bool:
        return self.status != CandidateStatus.OPEN

    def other(self, patient: Patient | int) -> int:
        pk = getattr(patient, "pk", patient)
        return self.patient_b_id if pk == self.patient_a_id else self.patient_a_id


class MergeStatus(models.TextChoices):
    MERGED = "merged", "Merged"
    UNMERGED = "unmerged", "Unmerged"


class Merge(models.Model):
    """One merge of ``duplicate`` into ``survivor``: who, when, why, and exactly what changed.

    Written by ``matching.merging`` only. ``changes`` lists every row the merge moved,
    copied or altered (with the old values) so that ``unmerge_patients`` can undo it
    exactly; ``snapshot`` is both patients' data before the merge, for audit and as
    the yardstick the unmerge is checked against.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    survivor = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges_as_survivor")
    duplicate = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges_as_duplicate")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    survivor_version_before = models.PositiveIntegerField()
    survivor_version_after = models.PositiveIntegerField()
    duplicate_version_before = models.PositiveIntegerField()
    duplicate_version_after = models.PositiveIntegerField()
    changes = models.JSONField(default=dict, help_text="What moved or changed; see docs/merge.md.")
    snapshot = models.JSONField(default=dict, help_text="Both patients' data before the merge.")
    status = models.CharField(max_length=16, choices=MergeStatus.choices, default=MergeStatus.MERGED)
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    unmerge_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(survivor=F("duplicate")), name="merge_not_into_itself"),
            # A patient is merged away at most once at a time: the last line of defence
            # against two concurrent merges of one duplicate.
            models.UniqueConstraint(
                fields=["duplicate"], condition=Q(status="merged"), name="uniq_standing_merge_of_duplicate"
            ),
            models.CheckConstraint(
                condition=Q(status="merged", unmerged_at__isnull=True)
                | Q(status="unmerged", unmerged_at__isnull=False),
                name="merge_unmerged_at_matches_status",
            ),
        ]
        indexes = [models.Index(fields=["survivor", "status"], name="merge_survivor_idx")]

    def __str__(self) -> str:
        return f"merge {self.duplicate_id} -> {self.survivor_id} ({self.status})"

    @property
    def is_undone(self) -> bool:
        return self.status == MergeStatus.UNMERGED
