"""Domain errors of the write services. Each interface translates them: DRF to
409/412, FHIR to an OperationOutcome, the admin and pages to form errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patients.models import Patient


class PatientConflict(Exception):
    """A write that cannot happen in the registry's current state."""

    code = "conflict"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class IdentifierConflict(PatientConflict):
    code = "identifier-conflict"

    def __init__(self, *, system: str, value: str, existing: Patient, field: str | None = None):
        super().__init__(
            f"Identifier {system}|{value} already belongs to patient {existing.uuid}.", field=field
        )
        self.system = system
        self.value = value
        self.existing = existing


class VersionConflict(PatientConflict):
    code = "version-conflict"

    def __init__(self, *, expected: int, current: int) -> None:
        super().__init__(
            f"The patient is at version {current}, not {expected}: "
            "it was changed since you read it. Read it again and reapply your change."
        )
        self.expected = expected
        self.current = current


class PatientStateError(PatientConflict):
    """The patient is deleted (or not deleted) when the operation needs otherwise."""

    code = "invalid-state"
