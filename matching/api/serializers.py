"""REST shapes of matching: the match probe and its results, candidates, decisions, merges.

Input serializers check types and sizes; the services check the rest (a merge's
preconditions, a probe's content) and their errors keep the same field paths.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.merging import SIDES, MergeChoices
from matching.model import MatchGrade
from matching.models import MatchCandidate, Merge, MergeStatus
from matching.sidebyside import describe_changes
from matching.survivorship import SCALAR_COLUMNS
from patients.api.serializers import (
    MAX_INT,
    Children,
    NameInput,
    PatientInputSerializer,
    StrictSerializer,
    Text,
)

GRADES = [str(g) for g in (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE)]
MAX_MATCHES = 50

# --- Evidence (as matching.model.MatchResult.to_dict() writes it) ---------------------


class EvidenceSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The compared field, e.g. family, birth_date, identifier.")
    level = serializers.CharField(help_text="The comparison level, e.g. exact, jw_high, missing.")
    value_a = serializers.CharField(allow_blank=True, allow_null=True, help_text="The first record's value.")
    value_b = serializers.CharField(allow_blank=True, allow_null=True, help_text="The second record's value.")
    weight = serializers.FloatField(help_text="Bits this field added to the match weight.")
    m = serializers.FloatField(allow_null=True, required=False)
    u = serializers.FloatField(allow_null=True, required=False)
    tf_frequency = serializers.FloatField(
        allow_null=True, required=False, help_text="The name's frequency when term-frequency adjusted."
    )
    damping = serializers.FloatField(required=False, help_text="Below 1 for discounted household evidence.")


class GuardRailSerializer(serializers.Serializer):
    name = serializers.CharField()
    ceiling = serializers.FloatField(help_text="The probability the pair was capped at.")
    reason = serializers.CharField()


# --- Match -----------------------------------------------------------------------------


class MatchInputSerializer(PatientInputSerializer):
    """A probe in the registration shape (nothing is written), plus how many and how sure."""

    names = Children(NameInput, 20)  # optional here: an identifier alone can be a probe
    limit = serializers.IntegerField(min_value=1, max_value=MAX_MATCHES, default=10, required=False)
    min_grade = serializers.ChoiceField(
        choices=GRADES, default=MatchGrade.POSSIBLE, required=False, help_text="The lowest grade returned."
    )


class MatchSerializer(serializers.Serializer):
    patient = serializers.UUIDField(source="patient_uuid", help_text="The matching patient's id.")
    grade = serializers.ChoiceField(choices=GRADES)
    probability = serializers.FloatField(min_value=0, max_value=1)
    weight = serializers.FloatField(source="result.weight", help_text="Match weight in bits.")
    evidence = EvidenceSerializer(
        many=True, source="result.evidence", help_text="value_a is the probe's, value_b the patient's."
    )
    guard_rails = GuardRailSerializer(many=True, source="result.guard_rails")
    blocks = serializers.ListField(child=serializers.CharField(), help_text="The searches that found it.")


class MatchResponseSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(help_text="The match model version that scored them.")
    results = MatchSerializer(many=True, help_text="Most likely first.")


# --- Candidates ------------------------------------------------------------------------


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class MatchCandidateSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    patient_a = serializers.UUIDField(source="patient_a.uuid", help_text="The older record (lower key).")
    patient_b = serializers.UUIDField(source="patient_b.uuid")
    grade = serializers.ChoiceField(choices=GRADES, help_text="The matcher never opens a certainly-not pair.")
    evidence = serializers.SerializerMethodField(help_text="Per field; value_a is patient_a's.")
    guard_rails = serializers.SerializerMethodField()
    model_version = serializers.IntegerField(source="model_version.version")
    decided_by = serializers.SerializerMethodField(help_text="Username; null for the system.")
    claimed_by = serializers.SerializerMethodField(help_text="The steward reviewing it now, if any.")

    class Meta:
        model = MatchCandidate
        fields = (
            "id", "patient_a", "patient_b", "probability", "weight", "grade", "evidence", "guard_rails",
            "blocks", "model_version", "status", "decided_by", "decided_at", "reason", "note",
            "claimed_by", "claimed_until", "created_at", "updated_at",
        )  # fmt: skip

    @extend_schema_field(EvidenceSerializer(many=True))
    def get_evidence(self, candidate) -> list[dict]:
        return EvidenceSerializer((candidate.evidence or {}).get("evidence", []), many=True).data

    @extend_schema_field(GuardRailSerializer(many=True))
    def get_guard_rails(self, candidate) -> list[dict]:
        return GuardRailSerializer((candidate.evidence or {}).get("guard_rails", []), many=True).data

    def get_decided_by(self, candidate) -> str | None:
        return _username(candidate.decided_by)

    def get_claimed_by(self, candidate) -> str | None:
        return _username(candidate.claimed_by)


class DecisionSerializer(MatchCandidateSerializer):
    merge = serializers.UUIDField(
        allow_null=True, help_text="The merge's id when the decision was merge (merges endpoint)."
    )

    class Meta(MatchCandidateSerializer.Meta):
        fields = (*MatchCandidateSerializer.Meta.fields, "merge")


class MergeChoicesInput(StrictSerializer):
    """matching.merging.MergeChoices: which record's values survive."""

    take_from_duplicate = serializers.ListField(
        child=serializers.ChoiceField(choices=list(SCALAR_COLUMNS)),
        max_length=len(SCALAR_COLUMNS),
        required=False,
        help_text="Patient fields taken from the duplicate instead of the survivor.",
    )
    names = serializers.ChoiceField(choices=SIDES, default="both", required=False)
    addresses = serializers.ChoiceField(choices=SIDES, default="both", required=False)
    contacts = serializers.ChoiceField(choices=SIDES, default="both", required=False)

    @staticmethod
    def to_choices(values: dict | None) -> MergeChoices:
        values = values or {}
        return MergeChoices(
            take_from_duplicate=frozenset(values.get("take_from_duplicate", ())),
            names=values.get("names", "both"),
            addresses=values.get("addresses", "both"),
            contacts=values.get("contacts", "both"),
        )


class Version(serializers.IntegerField):
    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=1, max_value=MAX_INT, required=False, allow_null=True, **kwargs)


class DecisionInput(StrictSerializer):
    decision = serializers.ChoiceField(choices=["merge", "link", "not-duplicate", "dismiss"])
    reason = Text(1000, help_text="Why (or X-Change-Reason). Required for merge and not-duplicate.")
    survivor = serializers.UUIDField(
        required=False, allow_null=True, help_text="merge only: which record survives; patient_a by default."
    )
    survivor_version = Version(help_text="merge only: the survivor's version you read.")
    duplicate_version = Version(help_text="merge only: the duplicate's version you read.")
    choices = MergeChoicesInput(required=False, help_text="merge only: survivorship choices.")


# --- Merges ----------------------------------------------------------------------------


class MergeInput(StrictSerializer):
    survivor = serializers.UUIDField(help_text="The record that stays.")
    duplicate = serializers.UUIDField(help_text="The record merged into it (kept, inactive).")
    survivor_version = Version(help_text="The survivor's version you read (412 if it moved).")
    duplicate_version = Version(help_text="The duplicate's version you read (412 if it moved).")
    choices = MergeChoicesInput(required=False)
    reason = Text(1000, help_text="Why these are one person (or X-Change-Reason). Required.")
    preview = serializers.BooleanField(
        default=False, required=False, help_text="Write nothing; answer what the merge would do."
    )


_ROW_KEYS = ("model", "label", "values", "old", "new")


def public_changes(changes: dict) -> dict:
    """A merge's ``changes`` without the row keys it stores for the unmerge: sequential
    ids never leave the database. ``summary`` is what the steward page says."""
    changes = changes or {}
    rows = {
        kind: [{k: entry[k] for k in _ROW_KEYS if k in entry} for entry in changes.get(kind, [])]
        for kind in ("identifiers_moved", "copied", "altered")
    }
    scalars = {
        column.removesuffix("_id"): values
        for column, values in changes.get("scalars", {}).items()
        if column != "managing_organization_id"  # an organization key; the summary names it
    }
    if "managing_organization_id" in changes.get("scalars", {}):
        scalars["managing_organization"] = {"changed": True}
    return {
        "choices": changes.get("choices", {}),
        **rows,
        "scalars": scalars,
        "candidates_settled": len(changes.get("candidates", [])),
        "candidates_opened": len(changes.get("candidates_opened", [])),
        "summary": describe_changes(changes),
    }


class MergeChangesSerializer(serializers.Serializer):
    choices = serializers.JSONField(help_text="The survivorship choices applied.")
    identifiers_moved = serializers.ListField(child=serializers.JSONField())
    copied = serializers.ListField(
        child=serializers.JSONField(), help_text="Rows of the duplicate copied onto the survivor."
    )
    altered = serializers.ListField(
        child=serializers.JSONField(), help_text="Survivor rows changed (old and new values)."
    )
    scalars = serializers.JSONField(help_text="Patient fields taken from the duplicate: {field: {old, new}}.")
    candidates_settled = serializers.IntegerField(help_text="Candidates the merge decided or closed.")
    candidates_opened = serializers.IntegerField(help_text="Candidates re-matching the survivor opened.")
    summary = serializers.ListField(child=serializers.CharField(), help_text="The same, as sentences.")


class MergeSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", allow_null=True, help_text="Null in a preview.")
    survivor = serializers.UUIDField(source="survivor.uuid")
    duplicate = serializers.UUIDField(source="duplicate.uuid")
    actor = serializers.SerializerMethodField()
    unmerged_by = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=MergeStatus.choices)
    changes = serializers.SerializerMethodField(help_text="What the merge moved, copied or altered.")
    preview = serializers.SerializerMethodField(help_text="True when nothing was written.")

    class Meta:
        model = Merge
        fields = (
            "id", "status", "survivor", "duplicate", "actor", "reason", "created_at",
            "survivor_version_before", "survivor_version_after",
            "duplicate_version_before", "duplicate_version_after",
            "changes", "unmerged_at", "unmerged_by", "unmerge_reason", "preview",
        )  # fmt: skip

    @extend_schema_field(MergeChangesSerializer)
    def get_changes(self, merge) -> dict:
        return public_changes(merge.changes)

    def get_actor(self, merge) -> str | None:
        return _username(merge.actor)

    def get_unmerged_by(self, merge) -> str | None:
        return _username(merge.unmerged_by)

    def get_preview(self, merge) -> bool:
        return merge.pk is None

    def to_representation(self, merge):
        data = super().to_representation(merge)
        if merge.pk is None:
            data["id"] = None  # a preview has a generated uuid that names nothing
        return data
