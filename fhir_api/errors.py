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
