"""REST shapes of a patient.

Reads use ``PatientSerializer`` (model serializers, explicit fields). Writes validate
types and sizes with the input serializers and hand one ``PatientData`` to the
services, which normalise and validate the content (their errors keep the same field
paths, e.g. ``names[0].family``). Sizes are bounded so that no input reaches the
database too long or out of range.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import replace

from rest_framework import serializers

from patients.codes import (
    AddressType,
    AddressUse,
    ContactSystem,
    ContactUse,
    Gender,
    IdentifierType,
    IdentifierUse,
    LinkType,
    MaritalStatus,
    NameUse,
)
from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData, PatientData
from patients.models import Address, Contact, Identifier, Link, Name, Patient

MAX_INT = 2**31 - 1  # PostgreSQL integer

# --- Reads ----------------------------------------------------------------------------


class NameSerializer(serializers.ModelSerializer):
    class Meta:
        model = Name
        fields = (
            "use",
            "family",
            "given",
            "prefix",
            "suffix",
            "text",
            "period_start",
            "period_end",
            "primary",
        )


class IdentifierSerializer(serializers.ModelSerializer):
    class Meta:
        model = Identifier
        fields = ("system", "value", "use", "type", "assigner", "period_start", "period_end")


class AddressSerializer(serializers.ModelSerializer):
    class Meta:
        model = Address
        fields = (
            "use", "type", "line", "city", "district", "state", "postal_code", "country", "text",
            "period_start", "period_end", "primary",
        )  # fmt: skip


class ContactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Contact
        fields = ("system", "value", "normalized_value", "use", "rank", "period_start", "period_end")


class LinkSerializer(serializers.ModelSerializer):
    other = serializers.UUIDField(source="other.uuid", help_text="The linked patient's id.")

    class Meta:
        model = Link
        fields = ("other", "type", "reason")


class PatientSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    managing_organization = serializers.SlugRelatedField(slug_field="uuid", read_only=True, allow_null=True)
    names = NameSerializer(many=True, read_only=True)
    identifiers = IdentifierSerializer(many=True, read_only=True)
    addresses = AddressSerializer(many=True, read_only=True)
    contacts = ContactSerializer(many=True, read_only=True)
    links = LinkSerializer(
        many=True,
        read_only=True,
        help_text="replaced-by / replaces come from merges; refer / seealso are yours.",
    )

    class Meta:
        model = Patient
        fields = (
            "id", "version", "active", "gender", "birth_date", "deceased", "deceased_at", "marital_status",
            "multiple_birth", "multiple_birth_order", "managing_organization",
            "names", "identifiers", "addresses", "contacts", "links", "created_at", "updated_at",
        )  # fmt: skip
        # Output only, but not declared read-only: DRF would drop allow_blank from the
        # choice fields and the schema would not admit an empty gender.


class CandidateSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The candidate's id (candidates endpoint).")
    patient = serializers.UUIDField(help_text="The other patient, which this one may duplicate.")
    grade = serializers.ChoiceField(choices=["certain", "probable", "possible"])
    probability = serializers.FloatField(min_value=0, max_value=1)


class RegisteredPatientSerializer(PatientSerializer):
    candidates = CandidateSerializer(
        many=True, read_only=True, help_text="Duplicate candidates the matcher opened for this registration."
    )

    class Meta(PatientSerializer.Meta):
        fields = (*PatientSerializer.Meta.fields, "candidates")


# --- Writes ---------------------------------------------------------------------------


class Text(serializers.CharField):
    """An optional string that still fits its column after normalisation (NFC)."""

    def __init__(self, max_length: int, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", not kwargs["required"])
        super().__init__(max_length=max_length, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        # NFC can lengthen a string (a few scripts decompose); the column counts code points.
        if len(unicodedata.normalize("NFC", value)) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return value


def Code(choices, *, required: bool = False, **kwargs) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=choices, required=required, allow_blank=not required, **kwargs)


def Parts(max_length: int, max_items: int = 10) -> serializers.ListField:
    return serializers.ListField(
        child=Text(max_length, allow_blank=False), max_length=max_items, required=False
    )


def Date() -> serializers.DateField:
    return serializers.DateField(required=False, allow_null=True)


class StrictSerializer(serializers.Serializer):
    """Refuses unknown keys (a typo must not be dropped silently), but ignores the
    read-only keys of the read shape, so a client may send back what it read."""

    ignored_fields: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = set(data) - set(self.fields) - set(self.ignored_fields)
            if unknown:
                raise serializers.ValidationError(
                    {str(key): ["Unknown field."] for key in sorted(unknown, key=str)}, code="unknown-field"
                )
        return super().to_internal_value(data)


class NameInput(StrictSerializer):
    use = Code(NameUse.choices)
    family = Text(200)
    given = Parts(100)
    prefix = Parts(50)
    suffix = Parts(50)
    text = Text(400)
    period_start = Date()
    period_end = Date()
    primary = serializers.BooleanField(required=False, help_text="One primary name; the first by default.")


class IdentifierInput(StrictSerializer):
    system = Text(255, required=True, help_text="A URI: urn:oid:..., https://...")
    value = Text(255, required=True)
    use = Code(IdentifierUse.choices)
    type = Code(IdentifierType.choices, help_text="v2-0203 code, e.g. MR.")
    assigner = Text(200)
    period_start = Date()
    period_end = Date()


class AddressInput(StrictSerializer):
    use = Code(AddressUse.choices)
    type = Code(AddressType.choices)
    line = Parts(200)
    city = Text(100)
    district = Text(100)
    state = Text(100)
    postal_code = Text(20)
    country = Text(100)
    text = Text(400)
    period_start = Date()
    period_end = Date()
    primary = serializers.BooleanField(required=False)


class ContactInput(StrictSerializer):
    ignored_fields = ("normalized_value",)

    system = Code(ContactSystem.choices, required=True)
    value = Text(255, required=True)
    use = Code(ContactUse.choices)
    rank = serializers.IntegerField(min_value=1, max_value=MAX_INT, required=False, allow_null=True)
    period_start = Date()
    period_end = Date()


class LinkInput(StrictSerializer):
    other = serializers.UUIDField(help_text="The linked patient's id.")
    type = Code([LinkType.REFER, LinkType.SEEALSO], help_text="Merge links are written by merges only.")
    reason = Text(500)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.get("type"):
            value.pop("type", None)  # the data shape's default, seealso
        return value


def Children(serializer, max_items: int, **kwargs):
    kwargs.setdefault("required", False)
    return serializer(many=True, max_length=max_items, **kwargs)


class PatientInputSerializer(StrictSerializer):
    """A patient to register, with all its children."""

    ignored_fields = ("id", "version", "created_at", "updated_at", "candidates")

    names = Children(NameInput, 20, required=True)
    identifiers = Children(IdentifierInput, 50)
    addresses = Children(AddressInput, 20)
    contacts = Children(ContactInput, 50)
    links = Children(LinkInput, 50, help_text="refer / seealso links to other patients.")
    active = serializers.BooleanField(required=False)
    gender = Code(Gender.choices)
    birth_date = Date()
    deceased = serializers.BooleanField(required=False)
    deceased_at = serializers.DateTimeField(required=False, allow_null=True)
    marital_status = Code(MaritalStatus.choices)
    multiple_birth = serializers.BooleanField(required=False, allow_null=True)
    multiple_birth_order = serializers.IntegerField(
        min_value=1, max_value=32767, required=False, allow_null=True
    )
    managing_organization = serializers.UUIDField(required=False, allow_null=True)
    reason = Text(1000, write_only=True, help_text="Why; kept in the history (or X-Change-Reason).")


class PatientUpdateSerializer(PatientInputSerializer):
    """A full replacement (PUT): omitted optional fields are cleared. PATCH sends any subset."""

    ignored_fields = ("id", "created_at", "updated_at", "candidates")

    version = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, required=False, help_text="The version you read (or If-Match)."
    )


def _tuples(values: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


_CHILDREN = {
    "names": NameData,
    "identifiers": IdentifierData,
    "addresses": AddressData,
    "contacts": ContactData,
    "links": LinkData,
}
_NOT_DATA = ("reason", "version")


def to_patient_data(values: dict, *, base: PatientData | None = None) -> PatientData:
    """Validated input -> PatientData; with ``base``, only the given keys replace its own."""
    fields = {}
    for key, value in values.items():
        if key in _NOT_DATA:
            continue
        if key in _CHILDREN:
            value = tuple(_CHILDREN[key](**_tuples(item)) for item in value)
        fields[key] = value
    return replace(base, **fields) if base is not None else PatientData(**fields)


def validate_patch(data) -> dict:
    """Validate a PATCH body key by key with the full (not partial) serializer fields.

    DRF's partial mode would also skip required keys inside nested items, but a list in
    a patch replaces the whole list, so each of its items must be complete.
    """
    serializer = PatientUpdateSerializer()
    if not isinstance(data, Mapping):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]}, code="invalid")
    unknown = set(data) - set(serializer.fields) - set(serializer.ignored_fields)
    if unknown:
        raise serializers.ValidationError(
            {str(key): ["Unknown field."] for key in sorted(unknown, key=str)}, code="unknown-field"
        )
    values, errors = {}, {}
    for key, raw in data.items():
        if key in serializer.ignored_fields:
            continue
        try:
            values[key] = serializer.fields[key].run_validation(raw)
        except serializers.ValidationError as exc:
            errors[key] = exc.detail
    if errors:
        raise serializers.ValidationError(errors)
    return values


class ReasonInput(StrictSerializer):
    reason = Text(1000, help_text="Why; kept in the history (or X-Change-Reason).")


# --- History and identifier resolution ------------------------------------------------


class ChangeSerializer(serializers.Serializer):
    field = serializers.CharField(
        help_text="A patient field, or names / identifiers / addresses / contacts / links."
    )
    op = serializers.ChoiceField(choices=["set", "add", "remove", "change"])
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


class VersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    at = serializers.DateTimeField()
    by = serializers.CharField(allow_null=True, help_text="Username of who made the change.")
    reason = serializers.CharField(allow_blank=True)
    action = serializers.ChoiceField(choices=["created", "updated", "deleted", "restored", "purged"])
    changes = ChangeSerializer(many=True)


class ResolveQuerySerializer(serializers.Serializer):
    system = Text(255, required=True, help_text="The identifier's system URI.")
    value = Text(255, required=True)


class CrossReferenceSerializer(IdentifierSerializer):
    patient = serializers.UUIDField(source="patient.uuid", help_text="The record that holds it.")

    class Meta(IdentifierSerializer.Meta):
        fields = (*IdentifierSerializer.Meta.fields, "patient")


class ResolutionSerializer(serializers.Serializer):
    patient = PatientSerializer(help_text="The live patient the identifier resolves to.")
    resolved_via = serializers.SerializerMethodField(
        help_text="Merged-away records followed through replaced-by links, the identifier's holder first."
    )
    identifiers = CrossReferenceSerializer(
        many=True, help_text="Every live identifier of the patient and of the records merged into it."
    )

    def get_resolved_via(self, resolution) -> list[str]:
        return [str(p.uuid) for p in resolution.via]
