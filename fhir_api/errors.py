"""FHIR errors and the OperationOutcome body every failure under /fhir/ answers with.

Views (and the interaction, search and operation code behind them) raise ``FhirError``;
``fhir_api.views.base.FhirView`` turns it, the domain errors of ``patients.errors`` and
anything unexpected into an OperationOutcome with the right HTTP status.
http://hl7.org/fhir/R4/operationoutcome.html
"""

from __future__ import annotations


def issue(
    code: str,
    diagnostics: str,
    *,
    severity: str = "error",
    expression: list[str] | None = None,
) -> dict:
    """One ``OperationOutcome.issue``. ``code`` is a FHIR IssueType (invalid, not-found, ...)."""
    item = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        item["expression"] = list(expression)
    return item


def operation_outcome(issues: list[dict]) -> dict:
    """An OperationOutcome resource around ``issues`` (at least one, as the spec requires)."""
    if not issues:
        issues = [issue("informational", "All OK.", severity="information")]
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


class FhirError(Exception):
    """A failure with its HTTP status and FHIR IssueType.

    ``expression`` holds FHIRPath expressions of the offending input
    (``Patient.name[0].family``, or a parameter/header name). ``issues`` carries more
    than one issue when a validation found several; ``headers`` are added to the
    response (an ETag on 412, for instance).
    """

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        expression: list[str] | None = None,
        severity: str = "error",
        issues: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = list(expression) if expression else None
        self.severity = severity
        self.issues = issues
        self.headers = headers or {}

    def to_outcome(self) -> dict:
        if self.issues:
            return operation_outcome(self.issues)
        return operation_outcome(
            [issue(self.code, self.diagnostics, severity=self.severity, expression=self.expression)]
        )

    def __repr__(self) -> str:
        return f"FhirError({self.status}, {self.code!r}, {self.diagnostics!r})"


def not_found(diagnostics: str) -> FhirError:
    return FhirError(404, "not-found", diagnostics)


def invalid(diagnostics: str, *, expression: list[str] | None = None, status: int = 400) -> FhirError:
    return FhirError(status, "invalid", diagnostics, expression=expression)


def not_supported(diagnostics: str, *, expression: list[str] | None = None, status: int = 400) -> FhirError:
    return FhirError(status, "not-supported", diagnostics, expression=expression)


def unreadable_structure(value, root: str, exc: Exception) -> tuple[str, str]:
    """(diagnostics, FHIRPath) for a resource fhir.resources failed on with an exception
    of its own rather than a validation error (a ``TypeError`` or ``KeyError`` from an
    embedded resource whose ``resourceType`` is not a string, or names no R4 resource).

    The usual cause is named with its path; otherwise the library's message is passed
    on, at the root.
    """
    found = _bad_resource_type(value, root)
    if found is not None:
        return found
    return f"The resource could not be read: {exc}.", root


def _bad_resource_type(value, path: str) -> tuple[str, str] | None:
    from fhir.resources.R4B import get_fhir_model_class

    if isinstance(value, dict):
        if "resourceType" in value:
            kind = value["resourceType"]
            if not isinstance(kind, str) or not kind:
                return "'resourceType' must be the name of a FHIR resource type.", f"{path}.resourceType"
            try:
                get_fhir_model_class(kind)
            except (KeyError, ValueError):
                return f"Unknown resource type {kind[:64]!r}: not an R4 resource.", f"{path}.resourceType"
        items = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    else:
        return None
    for where, item in items:
        if (found := _bad_resource_type(item, where)) is not None:
            return found
    return None
