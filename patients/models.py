"""The registry core: a Patient and the FHIR child rows hanging off it.

Rows are only written through ``patients.services`` (one transaction per write,
normalised input, version bump, history, index signal). Models hold fields,
constraints and single-row derived values; ``save()`` never touches other rows.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

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


class PeriodMixin(models.Model):
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def period_constraint(cls, name: str) -> models.CheckConstraint:
        return models.CheckConstraint(
            condition=Q(period_start__isnull=True)
            | Q(period_end__isnull=True)
            | Q(period_start__lte=F("period_end")),
            name=name,
        )


class Organization(models.Model):
    """A facility whose identifiers (MRNs) the registry holds."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    identifier_system = models.CharField(
        max_length=255, blank=True, help_text="The URI of the identifiers this facility issues."
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["identifier_system"],
                condition=~Q(identifier_system=""),
                name="uniq_organization_identifier_system",
            )
        ]

    def __str__(self) -> str:
        return self.name


class PatientQuerySet(models.QuerySet):
    def active(self):
        return self.filter(active=True)

    def with_identifier(self, system: str, value: str):
        return self.filter(identifiers__system=system, identifiers__value=value, identifiers__live=True)

    def with_children(self):
        """Everything a full read needs, in one query: the child rows come along as
        ``jsonb`` arrays and are put where ``prefetch_related`` would (patients/children.py)."""
        from patients import children

        queryset = self.select_related("managing_organization").annotate(**children.annotations())
        queryset._iterable_class = children.ChildrenIterable
        return queryset


class LivePatientManager(models.Manager.from_queryset(PatientQuerySet)):
    """Hides soft-deleted patients; ``Patient.all_objects`` sees them."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class Patient(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    active = models.BooleanField(default=True)
    gender = models.CharField(max_length=16, choices=Gender.choices, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    deceased = models.BooleanField(default=False)
    deceased_at = models.DateTimeField(null=True, blank=True)
    marital_status = models.CharField(max_length=8, choices=MaritalStatus.choices, blank=True)
    multiple_birth = models.BooleanField(null=True, blank=True)
    multiple_birth_order = models.PositiveSmallIntegerField(null=True, blank=True)
    managing_organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="patients"
    )
    # Bumped by the services on every change to the patient or any child row:
    # the FHIR meta.versionId and the ETag.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = LivePatientManager()
    all_objects = models.Manager.from_queryset(PatientQuerySet)()
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        base_manager_name = "all_objects"
        permissions = [
            ("restore_patient", "Can restore a soft-deleted patient"),
            ("purge_patient", "Can permanently purge a patient"),
        ]
        indexes = [models.Index(fields=["updated_at"], name="patient_updated_at_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(deceased_at__isnull=True) | Q(deceased=True),
                name="patient_deceased_at_implies_deceased",
            ),
            models.CheckConstraint(
                condition=Q(multiple_birth_order__isnull=True) | Q(multiple_birth_order__gte=1),
                name="patient_multiple_birth_order_positive",
            ),
            models.CheckConstraint(
                condition=Q(deceased_at__isnull=True)
                | Q(birth_date__isnull=True)
                | Q(deceased_at__date__gte=F("birth_date")),
                name="patient_not_deceased_before_birth",
            ),
            models.CheckConstraint(
                condition=Q(deleted_at__isnull=True, deleted_by__isnull=True) | Q(deleted_at__isnull=False),
                name="patient_deleted_by_needs_deleted_at",
            ),
        ]

    def __str__(self) -> str:
        name = self.primary_name
        return f"{name.display} ({self.birth_date or 'no birth date'})" if name else str(self.uuid)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def primary_name(self) -> "Name | None":
        names = list(self.names.all())
        return next((n for n in names if n.primary), names[0] if names else None)

    @property
    def primary_address(self) -> "Address | None":
        addresses = list(self.addresses.all())
        return next((a for a in addresses if a.primary), addresses[0] if addresses else None)


class LiveChildManager(models.Manager):
    """Hides the child rows of soft-deleted patients; ``all_objects`` sees them."""

    def get_queryset(self):
        return super().get_queryset().filter(patient__deleted_at__isnull=True)


class PatientChild(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE)

    objects = LiveChildManager()
    all_objects = models.Manager()

    class Meta:
        abstract = True
        base_manager_name = "all_objects"


class Name(PatientChild, PeriodMixin):
    """FHIR HumanName."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="names")
    use = models.CharField(max_length=16, choices=NameUse.choices, blank=True)
    family = models.CharField(max_length=200, blank=True)
    given = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    prefix = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    suffix = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    text = models.CharField(max_length=400, blank=True)
    primary = models.BooleanField(default=False)
    history = HistoricalRecords()

    class Meta(PatientChild.Meta):
        constraints = [
            models.UniqueConstraint(fields=["patient"], condition=Q(primary=True), name="uniq_primary_name"),
            models.CheckConstraint(condition=~Q(family="", given=[], text=""), name="name_not_empty"),
            PeriodMixin.period_constraint("name_period_ordered"),
        ]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        if self.family or self.given:
            return " ".join([*self.given, self.family]).strip()
        return self.text


class Identifier(PatientChild, PeriodMixin):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="identifiers")
    use = models.CharField(max_length=16, choices=IdentifierUse.choices, blank=True)
    type = models.CharField(max_length=8, choices=IdentifierType.choices, blank=True)
    system = models.CharField(max_length=255)
    value = models.CharField(max_length=255)
    assigner = models.CharField(max_length=200, blank=True)
    # Denormalised "this identifier is claimed": false while its patient is
    # soft-deleted. A partial unique index cannot look at the patient row, so the
    # services keep this flag and the database enforces uniqueness on it.
    live = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta(PatientChild.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["system", "value"], condition=Q(live=True), name="uniq_live_identifier"
            ),
            models.CheckConstraint(
                condition=~Q(system="") & ~Q(value=""), name="identifier_system_and_value"
            ),
            PeriodMixin.period_constraint("identifier_period_ordered"),
        ]
        indexes = [models.Index(fields=["value"], name="identifier_value_idx")]

    def __str__(self) -> str:
        return f"{self.system}|{self.value}"


class Address(PatientChild, PeriodMixin):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="addresses")
    use = models.CharField(max_length=16, choices=AddressUse.choices, blank=True)
    type = models.CharField(max_length=16, choices=AddressType.choices, blank=True)
    line = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    city = models.CharField(max_length=100, blank=True)
    district = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=100, blank=True)
    text = models.CharField(max_length=400, blank=True)
    primary = models.BooleanField(default=False)
    history = HistoricalRecords()

    class Meta(PatientChild.Meta):
        verbose_name_plural = "addresses"
        constraints = [
            models.UniqueConstraint(
                fields=["patient"], condition=Q(primary=True), name="uniq_primary_address"
            ),
            PeriodMixin.period_constraint("address_period_ordered"),
        ]

    def __str__(self) -> str:
        parts = [*self.line, self.city, self.postal_code, self.country]
        return ", ".join(p for p in parts if p) or self.text


class Contact(PatientChild, PeriodMixin):
    """FHIR ContactPoint (Patient.telecom)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="contacts")
    system = models.CharField(max_length=16, choices=ContactSystem.choices)
    value = models.CharField(max_length=255, help_text="As given.")
    normalized_value = models.CharField(
        max_length=255, db_index=True, help_text="Phones in E.164, emails lower-cased."
    )
    use = models.CharField(max_length=16, choices=ContactUse.choices, blank=True)
    rank = models.PositiveIntegerField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta(PatientChild.Meta):
        constraints = [
            models.CheckConstraint(condition=~Q(value=""), name="contact_value_not_empty"),
            models.CheckConstraint(
                condition=Q(rank__isnull=True) | Q(rank__gte=1), name="contact_rank_positive"
            ),
            PeriodMixin.period_constraint("contact_period_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.system}: {self.value}"


class Link(PatientChild):
    """FHIR Patient.link: this patient's relation to ``other``."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="links")
    other = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="incoming_links")
    type = models.CharField(max_length=16, choices=LinkType.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    history = HistoricalRecords()

    class Meta(PatientChild.Meta):
        constraints = [
            models.CheckConstraint(condition=~Q(patient=F("other")), name="link_not_to_self"),
            models.UniqueConstraint(fields=["patient", "other", "type"], name="uniq_link"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.other.uuid}"
