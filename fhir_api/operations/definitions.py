"""The OperationDefinitions of our operations, served at ``/fhir/OperationDefinition/<id>``.

Each derives from the published definition (``base``) where there is one and says what
we add or do differently; ``$unmerge`` is ours. ``url`` is where this server serves the
definition. Pure data.
"""

from __future__ import annotations

from typing import Any

MATCH = "http://hl7.org/fhir/OperationDefinition/Patient-match"
MERGE = "http://hl7.org/fhir/OperationDefinition/Patient-merge"  # R5, offered on R4
PIX = "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"


def _param(name: str, use: str, min_: int, max_: str, type_: str, doc: str, **extra) -> dict[str, Any]:
    return {"name": name, "use": use, "min": min_, "max": max_, "type": type_, "documentation": doc, **extra}


_PATIENT = {"targetProfile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}
_REASON = _param(
    "reason",
    "in",
    0,
    "1",
    "string",
    "Why (kept in the history of both records). Required, here or in the X-Change-Reason header; "
    "optional with preview.",
)


def _source_target(verb: str) -> list[dict[str, Any]]:
    return [
        _param(
            "source-patient",
            "in",
            0,
            "1",
            "Reference",
            f"The record {verb} (the duplicate): Patient/<id>, or Patient/<id>/_history/<version> to "
            "refuse (412) when it changed since that version.",
            **_PATIENT,
        ),
        _param(
            "source-patient-identifier",
            "in",
            0,
            "*",
            "Identifier",
            "Identifiers that all name the source; they must resolve to exactly one live patient (422).",
        ),
        _param(
            "target-patient",
            "in",
            0,
            "1",
            "Reference",
            "The surviving record: Patient/<id>[/_history/<version>].",
            **_PATIENT,
        ),
        _param(
            "target-patient-identifier",
            "in",
            0,
            "*",
            "Identifier",
            "Identifiers that all name the target; exactly one live patient.",
        ),
    ]


DEFINITIONS: dict[str, dict[str, Any]] = {
    "Patient-match": {
        "name": "Match",
        "title": "Patient $match with match evidence",
        "base": MATCH,
        "affectsState": False,
        "code": "match",
        "description": (
            "The R4 Patient $match. Each entry carries search.score (probability), the match-grade "
            "extension and our match-evidence extension (per field: values compared, level, weight; "
            "blocks; model version). A probe too thin to match returns an OperationOutcome entry "
            "(search.mode = outcome). POST only: the input is a resource."
        ),
        "parameter": [
            _param("resource", "in", 1, "1", "Patient", "The patient to match (not stored)."),
            _param("onlyCertainMatches", "in", 0, "1", "boolean", "true: only matches graded certain."),
            _param("count", "in", 0, "1", "integer", "At most this many matches (default 10, capped at 50)."),
            _param("return", "out", 1, "1", "Bundle", "A searchset Bundle, most likely match first."),
        ],
    },
    "Patient-merge": {
        "name": "Merge",
        "title": "Patient $merge (FHIR R5 parameters on R4)",
        "base": MERGE,
        "affectsState": True,
        "code": "merge",
        "description": (
            "Merge the source (duplicate) into the target (survivor): the source becomes inactive with "
            "a replaced-by link, its identifiers move to the target, nothing is dropped. result-patient"
            " is honoured when it is an outcome of the survivorship choices (each scalar from one "
            "record; current names, addresses and telecoms of the target, the source or both; every "
            "identifier), else refused (422). Permission: matching.merge_patients (stewards). 400 "
            "input, 412 a version moved, 422 refused by business rules."
        ),
        "parameter": [
            *_source_target("merged away"),
            _param(
                "result-patient",
                "in",
                0,
                "1",
                "Patient",
                "The target as it should be after the merge (mapped onto the survivorship choices).",
            ),
            _param("preview", "in", 0, "1", "boolean", "true: run the merge, answer, roll it back."),
            _REASON,
            _param("input", "out", 1, "1", "Parameters", "The input parameters."),
            _param("outcome", "out", 1, "1", "OperationOutcome", "What happened (or would)."),
            _param("result", "out", 0, "1", "Patient", "The target as it is (or would be) after the merge."),
        ],
    },
    "Patient-unmerge": {
        "name": "Unmerge",
        "title": "Patient $unmerge",
        "affectsState": True,
        "code": "unmerge",
        "description": (
            "Undo a standing merge exactly: both records as before (the source active again, its "
            "identifiers back). Refused (422, every conflict listed) when something the merge left was "
            "changed since. Name the merge by its id, or by the merged-away record (reference, or the "
            "identifiers the merge moved). Permission: matching.merge_patients (stewards)."
        ),
        "parameter": [
            *_source_target("merged away by the merge to undo"),
            _param("merge", "in", 0, "1", "string", "The merge id (Merge.uuid, as in the $merge outcome)."),
            _REASON,
            _param("input", "out", 1, "1", "Parameters", "The input parameters."),
            _param("outcome", "out", 1, "1", "OperationOutcome", "What happened."),
            _param("result", "out", 1, "1", "Patient", "The former target, after the unmerge."),
            _param("source", "out", 1, "1", "Patient", "The restored source record."),
        ],
    },
    "Patient-ihe-pix": {
        "name": "IHE_PIXm_pix",
        "title": "IHE PIXm $ihe-pix (ITI-83)",
        "base": PIX,
        "affectsState": False,
        "code": "ihe-pix",
        "description": (
            "Every identifier of the live patient holding sourceIdentifier (merges followed), without "
            "the source identifier, filtered by targetSystem; and its id. Unknown source system: 400; "
            "no patient: 404; unknown targetSystem: 403 (ITI-83 2:3.83.4.2.2). GET or POST."
        ),
        "parameter": [
            _param("sourceIdentifier", "in", 1, "1", "string", "system|value (a token).", searchType="token"),
            _param("targetSystem", "in", 0, "*", "uri", "Only identifiers of these systems."),
            _param("targetIdentifier", "out", 0, "*", "Identifier", "The patient's identifiers."),
            _param("targetId", "out", 0, "*", "Reference", "The live Patient.", **_PATIENT),
        ],
    },
}


def operation_definition(definition_id: str, *, base_url: str) -> dict[str, Any] | None:
    """The OperationDefinition resource ``definition_id``, or None."""
    definition = DEFINITIONS.get(definition_id)
    if definition is None:
        return None
    return {
        "resourceType": "OperationDefinition",
        "id": definition_id,
        "url": f"{base_url}/OperationDefinition/{definition_id}",
        "status": "active",
        "kind": "operation",
        "publisher": "MPI",
        "resource": ["Patient"],
        "system": False,
        "type": True,
        "instance": False,
        **definition,
    }
