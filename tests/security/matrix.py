"""Who may do what, in every interface: the one permission matrix (issue 9).

Each ``Capability`` names the roles allowed and every endpoint (interface, method,
path) that exercises it, so one role set governs the admin, the pages, REST and FHIR
alike: an interface cannot let a role do what another refuses without this table
saying so. ``tests/security/test_role_matrix.py`` sends every endpoint's request as
every role and fails on any unexpected success or refusal; the README's "Roles and
permissions" table is ``render_readme_table()``, and a test checks the two agree.
After changing this file run ``python -m tests.security.matrix`` and paste its output
into the README.

Paths are templates: ``{patient}`` a live patient's public id (``{patient_pk}`` its
admin key), ``{deleted}`` / ``{deleted_pk}`` a soft-deleted one, ``{candidate}`` an
open match candidate between ``{a}`` and ``{b}``, ``{merge}`` a merge, ``{audit_event}``
an audit trail entry. ``body`` names the request body the test sends (``BODIES`` there).
"""

from __future__ import annotations

from dataclasses import dataclass

# Columns, in README order. "superuser" is Django's flag, not a group; "outsider" is a
# signed-in user with no group; "anonymous" sends no credentials.
ROLES = ("clerk", "steward", "integrator", "auditor", "admin", "superuser", "outsider", "anonymous")
# The admin (/admin/) needs a staff account on top of the permission: every other user
# is sent to its login page. Integrators are API clients, not staff.
STAFF = frozenset({"clerk", "steward", "auditor", "admin", "superuser"})

INTERFACES = ("rest", "fhir", "pages", "admin")


@dataclass(frozen=True)
class Endpoint:
    interface: str
    method: str
    path: str
    body: str = ""  # a key of the test's BODIES; "" sends none

    @property
    def label(self) -> str:
        return f"{self.interface} {self.method} {self.path}" + (f" [{self.body}]" if self.body else "")


@dataclass(frozen=True)
class Capability:
    key: str
    title: str  # the README row
    roles: frozenset[str]
    endpoints: tuple[Endpoint, ...]

    def allowed(self, endpoint: Endpoint) -> frozenset[str]:
        """The roles this endpoint lets through: the capability's, and staff only in the admin."""
        return self.roles & STAFF if endpoint.interface == "admin" else self.roles


def _roles(*names: str) -> frozenset[str]:
    unknown = set(names) - set(ROLES)
    assert not unknown, unknown
    return frozenset(names)


def rest(method: str, path: str, body: str = "") -> Endpoint:
    return Endpoint("rest", method, f"/api/v1/{path}", body)


def fhir(method: str, path: str, body: str = "") -> Endpoint:
    return Endpoint("fhir", method, f"/fhir/{path}".rstrip("/"), body)


def page(method: str, path: str, body: str = "") -> Endpoint:
    return Endpoint("pages", method, path, body)


def admin(method: str, path: str, body: str = "") -> Endpoint:
    return Endpoint("admin", method, f"/admin/{path}", body)


PATIENT = "patients/{patient}/"
FHIR_PATIENT = "Patient/{patient}"
ADMIN_PATIENT = "patients/patient/{patient_pk}/"
PAIR = "/review/{a}/{b}/"

EVERYONE = _roles(*ROLES)
READERS = _roles("clerk", "steward", "integrator", "auditor", "admin", "superuser")
WRITERS = _roles("clerk", "steward", "integrator", "admin", "superuser")
DELETERS = _roles("clerk", "steward", "admin", "superuser")
HISTORY_READERS = _roles("clerk", "steward", "auditor", "admin", "superuser")
STEWARDS = _roles("steward", "admin", "superuser")
AUDIT_READERS = _roles("auditor", "admin", "superuser")
ADMINS = _roles("admin", "superuser")

MATRIX: tuple[Capability, ...] = (
    Capability(
        "descriptions",
        "Read the API descriptions: OpenAPI schema, FHIR CapabilityStatement (no patient data)",
        EVERYONE,
        (
            Endpoint("rest", "GET", "/api/schema/"),
            fhir("GET", "metadata"),
            fhir("GET", "OperationDefinition/Patient-merge"),
        ),
    ),
    Capability(
        "read",
        "Find, read and match patients; resolve identifiers (PIX); read organizations",
        READERS,
        (
            rest("GET", "patients/"),
            rest("GET", "organizations/"),
            fhir("GET", "Organization?name=a"),
            rest("GET", PATIENT),
            rest("GET", "identifiers/resolve/?system={mrn_system}&value={mrn}"),
            rest("GET", "search/?q=smith"),
            rest("POST", "match/", "rest-probe"),
            fhir("GET", FHIR_PATIENT),
            fhir("GET", FHIR_PATIENT + "/_history/1"),
            fhir("GET", "Patient?family=smith"),
            fhir("POST", "Patient/_search", "fhir-search-form"),
            fhir("POST", "Patient/$match", "fhir-match"),
            fhir("GET", "Patient/$ihe-pix?sourceIdentifier={mrn_system}|{mrn}"),
            fhir("POST", "Patient/$ihe-pix", "fhir-pix"),
            page("GET", "/search/?q=smith"),
            page("GET", "/patients/{patient}/"),
            admin("GET", "patients/patient/"),
            admin("GET", ADMIN_PATIENT + "change/"),
            admin("GET", "patients/organization/"),
        ),
    ),
    Capability(
        "register",
        "Register patients",
        WRITERS,
        (
            rest("POST", "patients/", "rest-patient"),
            fhir("POST", "Patient", "fhir-patient"),
            fhir("POST", "", "fhir-transaction"),
            admin("GET", "patients/patient/add/"),
            admin("POST", "patients/patient/add/", "empty-form"),
        ),
    ),
    Capability(
        "update",
        "Update patients",
        WRITERS,
        (
            rest("PUT", PATIENT, "rest-patient-update"),
            rest("PATCH", PATIENT, "rest-patch"),
            fhir("PUT", FHIR_PATIENT, "fhir-patient-update"),
            fhir("PUT", "Patient?identifier={mrn_system}|{mrn}", "fhir-patient-update"),
            admin("POST", ADMIN_PATIENT + "change/", "empty-form"),
        ),
    ),
    Capability(
        "delete",
        "Delete patients (soft delete: they can be restored)",
        DELETERS,
        (
            rest("DELETE", PATIENT, "if-match"),
            fhir("DELETE", FHIR_PATIENT),
            admin("GET", ADMIN_PATIENT + "delete/"),
            admin("POST", ADMIN_PATIENT + "delete/", "reason-form"),
            admin("POST", "patients/patient/", "soft-delete-action"),
        ),
    ),
    Capability(
        "history",
        "Read a patient's history (who changed what, when, why)",
        HISTORY_READERS,
        (
            rest("GET", PATIENT + "history/"),
            fhir("GET", FHIR_PATIENT + "/_history"),
            fhir("GET", "Patient/_history"),
            admin("GET", ADMIN_PATIENT + "history/"),
        ),
    ),
    Capability(
        "restore",
        "Restore deleted patients",
        STEWARDS,
        (
            rest("POST", "patients/{deleted}/restore/", "reason"),
            admin("POST", "patients/patient/", "restore-action"),
        ),
    ),
    Capability(
        "review",
        "Work the duplicate queue: read candidates; decide link, not-duplicate, dismiss",
        STEWARDS,
        (
            rest("GET", "candidates/"),
            rest("GET", "candidates/{candidate}/"),
            rest("POST", "candidates/{candidate}/decide/", "decide-not-duplicate"),
            page("GET", "/"),
            page("GET", "/review/"),
            page("POST", "/review/next/"),
            page("GET", PAIR),
            page("POST", PAIR + "claim/"),
            page("POST", PAIR + "link/", "link-form"),
            page("POST", PAIR + "not-duplicate/", "not-duplicate-form"),
        ),
    ),
    Capability(
        "merge",
        "Merge and unmerge patients",
        STEWARDS,
        (
            rest("POST", "merges/", "rest-merge"),
            rest("POST", "merges/{merge}/unmerge/", "reason"),
            rest("POST", "candidates/{candidate}/decide/", "decide-merge"),
            fhir("POST", "Patient/$merge", "fhir-merge"),
            fhir("POST", "Patient/$unmerge", "fhir-unmerge"),
            page("POST", PAIR + "merge/", "merge-form"),
            page("POST", "/merges/{merge}/unmerge/", "unmerge-form"),
        ),
    ),
    Capability(
        "merges",
        "Read past merges",
        STEWARDS,
        (
            rest("GET", "merges/"),
            rest("GET", "merges/{merge}/"),
            page("GET", "/merges/"),
            page("GET", "/merges/{merge}/"),
        ),
    ),
    Capability(
        "audit",
        "Read the access audit trail",
        AUDIT_READERS,
        (
            admin("GET", "audit/auditevent/"),
            fhir("GET", "AuditEvent?patient={patient}"),
            fhir("GET", "AuditEvent/{audit_event}"),
        ),
    ),
    Capability(
        "tokens",
        "Issue and revoke API tokens",
        ADMINS,
        (
            admin("GET", "accounts/apitoken/"),
            admin("GET", "accounts/apitoken/add/"),
        ),
    ),
    Capability(
        "organizations",
        "Add and change organizations",
        ADMINS,
        (admin("GET", "patients/organization/add/"),),
    ),
    Capability(
        "purge",
        "Purge deleted patients (permanent)",
        _roles("superuser"),
        (admin("POST", "patients/patient/", "purge-action"),),
    ),
)


def cases() -> list[tuple[Capability, Endpoint, str]]:
    """Every (capability, endpoint, role): what the matrix test runs."""
    return [(cap, endpoint, role) for cap in MATRIX for endpoint in cap.endpoints for role in ROLES]


# --- The README table -------------------------------------------------------------------

_INTERFACE_NAMES = {"rest": "REST", "fhir": "FHIR", "pages": "pages", "admin": "admin"}


def _where(cap: Capability) -> str:
    shown = [_INTERFACE_NAMES[i] for i in INTERFACES if any(e.interface == i for e in cap.endpoints)]
    return ", ".join(shown)


def render_readme_table() -> str:
    """The markdown table of the README's "Roles and permissions" section."""
    header = ["Capability", *ROLES, "Interfaces"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cap in MATRIX:
        marks = ["✓" if role in cap.roles else " " for role in ROLES]
        lines.append("| " + " | ".join([cap.title, *marks, _where(cap)]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_readme_table(), end="")
