"""``$merge``'s ``result-patient`` -> the steward's survivorship choices. Pure code.

The R5 merge operation lets the client send the target patient as it should be after
the merge. Our merge service does not take an arbitrary patient: it chooses, per field,
between the two records (``matching.merging.MergeChoices``) and never drops anything
(identifiers move, names/addresses/telecoms of the losing side are kept as ``old``).
So a ``result-patient`` is honoured when it is one of the outcomes those choices can
produce, and refused — with an issue per element saying what the choices allow —
otherwise. A silently different survivor would be worse than a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from fhir_api.operations.parameters import Issue, OperationError
from matching.merging import MergeChoices
from patients.codes import LinkType
from patients.data import AddressData, ContactData, NameData, PatientData

OLD = "old"

# MergeChoices scalar choice -> (PatientData fields, FHIR element for messages).
SCALARS: dict[str, tuple[tuple[str, ...], str]] = {
    "gender": (("gender",), "gender"),
    "birth_date": (("birth_date",), "birthDate"),
    "deceased": (("deceased", "deceased_at"), "deceased[x]"),
    "marital_status": (("marital_status",), "maritalStatus"),
    "multiple_birth": (("multiple_birth", "multiple_birth_order"), "multipleBirth[x]"),
    "managing_organization": (("managing_organization",), "managingOrganization"),
}


def _name_key(n: NameData) -> tuple:
    # The text only identifies a name that has no parts: FHIR output may generate a
    # text for a name stored without one.
    return (n.family, n.given, n.prefix, n.suffix, "" if (n.family or n.given) else n.text)


def _address_key(a: AddressData) -> tuple:
    parts = (a.line, a.city, a.district, a.state, a.postal_code, a.country)
    return (*parts, "" if any(parts) else a.text)


def _contact_key(c: ContactData) -> tuple:
    return (c.system, c.normalized_value or c.value)


# PatientData attribute -> (content key, FHIR element, label for messages).
ROWS: dict[str, tuple[Callable, str, str]] = {
    "names": (_name_key, "name", "names"),
    "addresses": (_address_key, "address", "addresses"),
    "contacts": (_contact_key, "telecom", "telecoms"),
}


def _current(rows: Iterable, key: Callable) -> frozenset:
    return frozenset(key(r) for r in rows if r.use != OLD)


def _side(kind: str, result: PatientData, target: PatientData, source: PatientData, prefix: str):
    """The MergeChoices side whose outcome has the result's current rows, or issues."""
    key, element, label = ROWS[kind]
    mine, theirs, wanted = getattr(target, kind), getattr(source, kind), getattr(result, kind)
    known = {key(r) for r in (*mine, *theirs)}
    issues = [
        Issue(
            f"result-patient.{element}[{i}] is on neither record; a merge only chooses between "
            f"the two records' {label} (add it with an update after the merge).",
            code="business-rule",
            expression=f"{prefix}.{element}[{i}]",
        )
        for i, row in enumerate(wanted)
        if key(row) not in known
    ]
    if issues:
        return None, issues
    # What stays current on the survivor under each choice (matching/survivorship.py:
    # copies keep their own use; "duplicate" marks the survivor's own rows old unless
    # one of the duplicate's rows has the same content).
    outcomes = {
        "both": _current(mine, key) | _current(theirs, key),
        "survivor": _current(mine, key),
        "duplicate": _current(theirs, key) | (_current(mine, key) & {key(r) for r in theirs}),
    }
    current = _current(wanted, key)
    for side, outcome in outcomes.items():
        if current == outcome:
            return side, []
    return None, [
        Issue(
            f"The current {label} of result-patient (those without use 'old') must be the target's, "
            f"the source's or both records' {label}; the merge keeps the others with use 'old'.",
            code="business-rule",
            expression=f"{prefix}.{element}",
        )
    ]


def _scalars(result: PatientData, target: PatientData, source: PatientData, prefix: str):
    taken, issues = set(), []
    for choice, (fields, element) in SCALARS.items():
        wanted = tuple(getattr(result, f) for f in fields)
        if wanted == tuple(getattr(target, f) for f in fields):
            continue
        if wanted == tuple(getattr(source, f) for f in fields):
            taken.add(choice)
            continue
        issues.append(
            Issue(
                f"result-patient.{element} is neither the target's nor the source's value; a merge only "
                f"chooses between the two records (change it with an update after the merge).",
                code="business-rule",
                expression=f"{prefix}.{element}",
            )
        )
    return taken, issues


def _identifiers(result: PatientData, target: PatientData, source: PatientData, prefix: str) -> list[Issue]:
    def keys(data: PatientData) -> set[tuple[str, str]]:
        return {(i.system, i.value) for i in data.identifiers}

    issues = [
        Issue(
            f"result-patient.identifier[{i}] ({ident.system}|{ident.value}) is on neither record; "
            "a merge does not add identifiers.",
            code="business-rule",
            expression=f"{prefix}.identifier[{i}]",
        )
        for i, ident in enumerate(result.identifiers)
        if (ident.system, ident.value) not in keys(target) | keys(source)
    ]
    missing = sorted((keys(target) | keys(source)) - keys(result))
    if missing:
        listed = ", ".join(f"{s}|{v}" for s, v in missing)
        issues.append(
            Issue(
                f"result-patient leaves out {listed}: a merge never drops an identifier (the source's "
                "move to the target), so list every identifier of both records.",
                code="business-rule",
                expression=f"{prefix}.identifier",
            )
        )
    return issues


def _links(result: PatientData, target: PatientData, source_uuid: UUID, prefix: str) -> list[Issue]:
    """Links are kept by the merge: the result may list the target's own and ``replaces``
    the source; it may not add or remove any."""
    issues = []
    mine = {(link.other, link.type) for link in target.links}
    for i, link in enumerate(result.links):
        if (link.other, link.type) in mine or (link.type == LinkType.REPLACES and link.other == source_uuid):
            continue
        issues.append(
            Issue(
                f"result-patient.link[{i}] ({link.type} Patient/{link.other}) is not a link of the target "
                "nor 'replaces' the source; the merge cannot add it (use a link operation).",
                code="business-rule",
                expression=f"{prefix}.link[{i}]",
            )
        )
    dropped = mine - {(link.other, link.type) for link in result.links}
    if dropped:
        listed = ", ".join(f"{t} Patient/{o}" for o, t in sorted(dropped, key=str))
        issues.append(
            Issue(
                f"result-patient leaves out the target's link(s) {listed}; a merge does not remove links.",
                code="business-rule",
                expression=f"{prefix}.link",
            )
        )
    return issues


def choices_from_result(
    result: PatientData, *, target: PatientData, source: PatientData, source_uuid: UUID, prefix: str
) -> MergeChoices:
    """The MergeChoices that turn ``target`` + ``source`` into ``result``.

    ``result`` is the normalised data of the result-patient; ``target``/``source`` the
    stored data of the two records. Raises OperationError (422) listing every element
    that no choice can produce; ``prefix`` is the FHIRPath of the result-patient.
    """
    issues: list[Issue] = []
    sides = {}
    for kind in ROWS:
        side, found = _side(kind, result, target, source, prefix)
        sides[kind] = side
        issues += found
    taken, found = _scalars(result, target, source, prefix)
    issues += found
    issues += _identifiers(result, target, source, prefix)
    issues += _links(result, target, source_uuid, prefix)
    if not result.active:
        issues.append(
            Issue(
                "result-patient.active is false; the surviving record stays active.",
                code="business-rule",
                expression=f"{prefix}.active",
            )
        )
    if issues:
        raise OperationError(status=422, issues=issues)
    return MergeChoices(take_from_duplicate=frozenset(taken), **sides)
