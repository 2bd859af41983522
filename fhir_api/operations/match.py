"""``Patient/$match``: the result Bundle, its grades and our evidence extension.

http://hl7.org/fhir/R4/patient-operation-match.html: a searchset Bundle, one entry per
candidate with ``search.mode = match``, ``search.score`` (our probability) and the
core ``match-grade`` extension; an OperationOutcome entry (``search.mode = outcome``)
for warnings. Each entry also carries ``match-evidence``, our extension that says why:
the field-by-field comparison (values, level, weight), the guard rails that capped
the grade, the search blocks that found the record and the model version that scored
it. Building the Bundle is pure; ``run_match`` calls ``matching.services``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fhir_api.operations.parameters import Issue, OperationInput
from matching.model import MatchGrade
from matching.services import CANDIDATE_POOL, MatchOutcome
from patients.data import PatientData

MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
DEFAULT_COUNT = 10
# ``count`` above this is accepted and capped: the matcher scores at most this many
# candidates per probe (matching.services.CANDIDATE_POOL).
MAX_COUNT = CANDIDATE_POOL
PARAMETERS = ("resource", "onlyCertainMatches", "count")


@dataclass(frozen=True)
class MatchRequest:
    patient: dict  # the Patient resource as sent
    expression: str  # its FHIRPath, for the mapper's error messages
    only_certain: bool
    count: int


def read_input(params: OperationInput) -> MatchRequest:
    params.reject_unknown(PARAMETERS)
    patient, expression = params.resource("resource", "Patient", required=True)
    count = params.integer("count", default=DEFAULT_COUNT, minimum=1, maximum=10_000)
    return MatchRequest(
        patient=patient,
        expression=expression,
        only_certain=params.boolean("onlyCertainMatches"),
        count=min(count, MAX_COUNT),
    )


def thin_probe_issue(probe: PatientData) -> Issue | None:
    """A warning when the probe gives the matcher nothing to look candidates up by.

    The matcher retrieves candidates through indexed blocks (search/blocking.py); a
    probe that forms none (only a gender, only a family name, a birth date without a
    name) can match nobody, and the client should hear why rather than see an empty
    result that looks like "no such patient".
    """
    from search.blocking import normalised_probe, probe_blocks
    from search.indexing import index_values

    cleaned = normalised_probe(probe)
    if probe_blocks(cleaned, index_values(cleaned)):
        return None
    present = [
        label
        for label, there in (
            ("family name", any(n.family for n in cleaned.names)),
            ("given name", any(n.given for n in cleaned.names)),
            ("birth date", cleaned.birth_date is not None),
            ("gender", bool(cleaned.gender)),
            ("address", bool(cleaned.addresses)),
        )
        if there
    ]
    has = f"It has only: {', '.join(present)}. " if present else "It has no usable element. "
    return Issue(
        "The Patient is too thin to match: "
        + has
        + "Add an identifier (system and value), a phone or an email, a birth date with a name, "
        "or a family name with a given name.",
        code="incomplete",
        severity="warning",
    )


def _ext(url: str, value_type: str, value: Any) -> dict[str, Any] | None:
    # FHIR strings may not be empty: an absent value is left out.
    if value is None or value == "":
        return None
    return {"url": url, f"value{value_type}": value}


def _complex(url: str, *parts: dict | None) -> dict[str, Any]:
    return {"url": url, "extension": [p for p in parts if p is not None]}


def evidence_extension(outcome: MatchOutcome, *, url: str, model_version: int) -> dict[str, Any]:
    """Our ``match-evidence`` extension for one candidate (docs/fhir.md, "Operations")."""
    result = outcome.result
    parts: list[dict | None] = [
        _ext("weight", "Decimal", round(result.weight, 3)),
        _ext("modelVersion", "Integer", model_version),
        _ext("parameters", "String", result.params_version),
        *(_ext("block", "Code", block) for block in outcome.blocks),
    ]
    for e in result.evidence:
        parts.append(
            _complex(
                "field",
                _ext("name", "Code", e.field),
                _ext("level", "Code", e.level),
                _ext("probeValue", "String", e.value_a),
                _ext("candidateValue", "String", e.value_b),
                _ext("weight", "Decimal", round(e.weight, 3)),
            )
        )
    for rail in result.guard_rails:
        parts.append(
            _complex(
                "guardRail",
                _ext("name", "Code", rail.name),
                _ext("ceiling", "Decimal", rail.ceiling),
                _ext("reason", "String", rail.reason),
            )
        )
    return _complex(url, *parts)


def match_bundle(
    outcomes: list[MatchOutcome],
    *,
    resources: Mapping[UUID, dict],
    full_url: Callable[[UUID], str],
    evidence_url: str,
    model_version: int,
    issues: list[Issue],
) -> dict[str, Any]:
    """The searchset Bundle: matches most likely first, then one OperationOutcome entry
    when there is anything to warn about."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": full_url(o.patient_uuid),
            "resource": resources[o.patient_uuid],
            "search": {
                "extension": [
                    {"url": MATCH_GRADE_URL, "valueCode": str(o.grade)},
                    evidence_extension(o, url=evidence_url, model_version=model_version),
                ],
                "mode": "match",
                "score": round(o.probability, 6),
            },
        }
        for o in outcomes
    ]
    if issues:
        entries.append(
            {
                "resource": {"resourceType": "OperationOutcome", "issue": [i.as_json() for i in issues]},
                "search": {"mode": "outcome"},
            }
        )
    return {"resourceType": "Bundle", "type": "searchset", "total": len(outcomes), "entry": entries}


def run_match(probe: PatientData, request: MatchRequest) -> tuple[list[MatchOutcome], int]:
    """Candidates for ``probe`` (nothing is written) and the version of the model that scored them."""
    from matching.services import active_matcher, match_patient

    matcher = active_matcher()
    grade = MatchGrade.CERTAIN if request.only_certain else MatchGrade.POSSIBLE
    return match_patient(probe, limit=request.count, min_grade=grade, matcher=matcher), matcher[0].version


NO_NAME = "At least one name is required."


def probe_from_fhir(resource: dict, expression: str) -> PatientData:
    """The probe's data through the foundation mapper (same validation as a create).

    The one rule a probe is spared is the registry's "a patient has a name": a probe
    without one is mapped with a placeholder name that is then dropped, so that it
    reaches the thin-input warning instead of a 422.
    """
    from dataclasses import replace

    from fhir_api.errors import FhirError
    from fhir_api.mapping import patient_from_fhir
    from fhir_api.operations.merge import embedded

    try:
        return embedded(patient_from_fhir, resource, expression)
    except FhirError as exc:
        if not any(NO_NAME in (i.get("diagnostics") or "") for i in exc.issues or []):
            raise
    data = embedded(patient_from_fhir, {**resource, "name": [{"text": "probe"}]}, expression)
    return replace(data, names=())
