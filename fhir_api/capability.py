"""The CapabilityStatement, built from what the modules of fhir_api register.

Each module that implements something declares it here at import time (the search module
its parameters, the operations module its operations), so ``GET /fhir/metadata`` lists
exactly what the server does. Registration is idempotent (keyed by name).
http://hl7.org/fhir/R4/capabilitystatement.html
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings

FHIR_VERSION = "4.0.1"
SOFTWARE_NAME = "MPI"
SOFTWARE_VERSION = "0.1.0"

# Patient interactions implemented by fhir_api.views.patient (codes of
# http://hl7.org/fhir/R4/valueset-type-restful-interaction.html).
PATIENT_INTERACTIONS: list[str] = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
]
# System interactions implemented by fhir_api.views.system.
SYSTEM_INTERACTIONS: list[str] = ["transaction", "batch"]
# rest.resource.searchParam entries for Patient: {"name", "type", "documentation"[, "definition"]}.
SEARCH_PARAMS: list[dict] = []
# rest.resource.searchInclude values for Patient (e.g. "Patient:organization").
SEARCH_INCLUDES: list[str] = []
# rest.resource.operation entries for Patient: {"name", "definition"[, "documentation"]}.
OPERATIONS: list[dict] = []
# rest.operation entries (system level).
SYSTEM_OPERATIONS: list[dict] = []
# rest.resource entries of other resource types (AuditEvent), keyed by type.
RESOURCES: list[dict] = []


def _put(items: list[dict], entry: dict) -> None:
    for i, item in enumerate(items):
        if item["name"] == entry["name"]:
            items[i] = entry
            return
    items.append(entry)


def register_interaction(code: str) -> None:
    """Add a Patient interaction, e.g. ``"search-type"`` (by the search module)."""
    if code not in PATIENT_INTERACTIONS:
        PATIENT_INTERACTIONS.append(code)


def register_search_param(name: str, type: str, documentation: str, definition: str | None = None) -> None:
    """Declare a Patient search parameter (``type``: string, token, date, reference, ...)."""
    entry = {"name": name, "type": type, "documentation": documentation}
    if definition:
        entry["definition"] = definition
    _put(SEARCH_PARAMS, entry)


def register_search_include(value: str) -> None:
    """Declare an ``_include`` the Patient search honours."""
    if value not in SEARCH_INCLUDES:
        SEARCH_INCLUDES.append(value)


def register_operation(name: str, definition: str, documentation: str = "", *, system: bool = False) -> None:
    """Declare an operation by its name without ``$`` (``match``) and its OperationDefinition URL."""
    entry = {"name": name, "definition": definition}
    if documentation:
        entry["documentation"] = documentation
    _put(SYSTEM_OPERATIONS if system else OPERATIONS, entry)


def register_resource(
    type: str,
    *,
    profile: str,
    interactions: list[str],
    search_params: list[tuple[str, str, str]],
    documentation: str = "",
) -> None:
    """Declare another resource type with its interactions and search parameters
    (``(name, type, documentation)`` each)."""
    entry = {
        "name": type,  # the key of _put; not part of the statement
        "type": type,
        "profile": profile,
        "interaction": [{"code": code} for code in interactions],
        "searchParam": [{"name": n, "type": t, "documentation": doc} for n, t, doc in search_params],
    }
    if documentation:
        entry["documentation"] = documentation
    _put(RESOURCES, entry)


def capability_statement(*, base_url: str, date: str) -> dict:
    """The server's CapabilityStatement (kind instance) as JSON."""
    # The URL configuration imports the search and operations modules, which register.
    import_module(settings.ROOT_URLCONF)
    patient = {
        "type": "Patient",
        "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
        "interaction": [{"code": code} for code in PATIENT_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,  # ids are assigned by the server (UUIDs)
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "not-supported",
        "referencePolicy": ["literal", "local"],
    }
    if SEARCH_INCLUDES:
        patient["searchInclude"] = list(SEARCH_INCLUDES)
    if SEARCH_PARAMS:
        patient["searchParam"] = list(SEARCH_PARAMS)
    if OPERATIONS:
        patient["operation"] = list(OPERATIONS)
    rest = {
        "mode": "server",
        "documentation": "Patients of the Master Patient Index. Errors are OperationOutcomes.",
        "security": {
            "cors": False,
            "description": "Authorization: Bearer <API token> (issued in the admin or by "
            "manage.py issue_token), or a browser session. "
            "Roles: integrator (create, read, update, search, match), steward (+ delete, history, merge), "
            "auditor (read, history, AuditEvent).",
        },
        "resource": [patient, *({k: v for k, v in r.items() if k != "name"} for r in RESOURCES)],
        "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
    }
    if SYSTEM_OPERATIONS:
        rest["operation"] = list(SYSTEM_OPERATIONS)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "MPI",
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": SOFTWARE_VERSION},
        "implementation": {"description": "Master Patient Index FHIR R4 API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
