"""What a FHIR response showed, for the access audit trail (``mpi.access.note_access``)."""

from __future__ import annotations


def patient_ids(bundle: dict) -> list[str]:
    """The ids of the Patient resources a Bundle returns (search and match entries)."""
    return [
        entry["resource"]["id"]
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "Patient" and "id" in entry["resource"]
    ]
