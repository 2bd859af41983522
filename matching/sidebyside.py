"""The candidate page's comparison: the two records row by row, with the matcher's evidence.

Each row holds every value of one kind on both records (all names, all identifiers,
...) and the evidence items the matcher scored for it, as stored on the candidate
(``MatchResult.to_dict()``). A row agrees when its evidence added weight, disagrees
when it took weight away, and is neutral otherwise; a row the matcher does not score
is marked by plain equality of the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matching import levels as L
from patients.models import Patient

# Which evidence fields speak for which row.
ROW_EVIDENCE = {
    "names": (L.FAMILY, L.GIVEN, L.GENERATION),
    "birth_date": (L.BIRTH_DATE,),
    "gender": (L.GENDER,),
    "identifiers": (L.IDENTIFIER,),
    "addresses": (L.ADDRESS, L.CITY, L.POSTCODE),
    "contacts": (L.PHONE, L.EMAIL),
    "multiple_birth": (L.MULTIPLE_BIRTH,),
}
FIELD_LABELS = {
    L.FAMILY: "family name",
    L.GIVEN: "given name",
    L.GENERATION: "Jr/Sr",
    L.BIRTH_DATE: "birth date",
    L.GENDER: "gender",
    L.IDENTIFIER: "identifier",
    L.ADDRESS: "street",
    L.CITY: "city",
    L.POSTCODE: "postcode",
    L.PHONE: "phone",
    L.EMAIL: "email",
    L.MULTIPLE_BIRTH: "birth order",
}


@dataclass(frozen=True)
class EvidenceItem:
    field: str
    level: str
    weight: float
    value_a: str
    value_b: str

    @property
    def label(self) -> str:
        return FIELD_LABELS.get(self.field, self.field.replace("_", " "))

    @property
    def level_label(self) -> str:
        return self.level.replace("_", " ")

    @property
    def tone(self) -> str:
        return "agree" if self.weight > 0 else "disagree" if self.weight < 0 else "neutral"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    left: list[str]
    right: list[str]
    evidence: list[EvidenceItem] = field(default_factory=list)

    @property
    def weight(self) -> float:
        return sum(e.weight for e in self.evidence)

    @property
    def tone(self) -> str:
        if self.evidence and any(e.weight for e in self.evidence):
            return "agree" if self.weight > 0 else "disagree"
        if self.evidence or not (self.left or self.right):
            return "neutral"
        # Not scored by the matcher: plain equality, shown more quietly.
        return "same" if sorted(self.left) == sorted(self.right) else "differs"


def evidence_items(evidence: dict) -> list[EvidenceItem]:
    items = []
    for item in evidence.get("evidence", []):
        items.append(
            EvidenceItem(
                field=item.get("field", ""),
                level=item.get("level", ""),
                weight=float(item.get("weight") or 0.0),
                value_a=str(item.get("value_a") or ""),
                value_b=str(item.get("value_b") or ""),
            )
        )
    return items


def _name(name) -> str:
    text = name.display or name.text
    extras = [*name.prefix, *name.suffix]
    if extras:
        text = f"{text} ({' '.join(extras)})"
    return f"{text} · {name.get_use_display().lower()}" if name.use else text


def _identifier(ident) -> str:
    kind = f"{ident.type} " if ident.type else ""
    return f"{kind}{ident.value} · {ident.system}"


def _address(address) -> str:
    text = str(address)
    return f"{text} · {address.get_use_display().lower()}" if address.use else text


def _contact(contact) -> str:
    use = f" · {contact.get_use_display().lower()}" if contact.use else ""
    return f"{contact.get_system_display()}: {contact.value}{use}"


def _link(link) -> str:
    return f"{link.get_type_display()} {link.other}"


def _yes_no(value) -> str:
    return "" if value is None else "yes" if value else "no"


def _multiple_birth(patient: Patient) -> list[str]:
    if patient.multiple_birth is None and patient.multiple_birth_order is None:
        return []
    text = _yes_no(patient.multiple_birth) or "yes"
    return [f"{text}, order {patient.multiple_birth_order}" if patient.multiple_birth_order else text]


def _values(patient: Patient) -> dict[str, list[str]]:
    """Every displayed value of one record, by row (children must be prefetched)."""
    return {
        "names": [_name(n) for n in patient.names.all()],
        "birth_date": [patient.birth_date.isoformat()] if patient.birth_date else [],
        "gender": [patient.get_gender_display()] if patient.gender else [],
        "identifiers": [_identifier(i) for i in patient.identifiers.all()],
        "addresses": [_address(a) for a in patient.addresses.all()],
        "contacts": [_contact(c) for c in patient.contacts.all()],
        "multiple_birth": _multiple_birth(patient),
        "deceased": (
            [f"yes, {patient.deceased_at:%Y-%m-%d}" if patient.deceased_at else "yes"]
            if patient.deceased
            else []
        ),
        "marital_status": [patient.get_marital_status_display()] if patient.marital_status else [],
        "managing_organization": [str(patient.managing_organization)]
        if patient.managing_organization_id
        else [],
        "links": [_link(link) for link in patient.links.all()],
    }


ROWS = {
    "names": "Names",
    "birth_date": "Birth date",
    "gender": "Gender",
    "identifiers": "Identifiers",
    "addresses": "Addresses",
    "contacts": "Phone, email",
    "multiple_birth": "Multiple birth",
    "deceased": "Deceased",
    "marital_status": "Marital status",
    "managing_organization": "Managing organization",
    "links": "Links",
}


def compare_rows(left: Patient, right: Patient, evidence: dict) -> list[Row]:
    """The rows of the side-by-side table; ``evidence`` is oriented left (a) to right (b)."""
    items = evidence_items(evidence)
    by_row: dict[str, list[EvidenceItem]] = {key: [] for key in ROWS}
    row_of = {f: key for key, fields in ROW_EVIDENCE.items() for f in fields}
    unplaced = []
    for item in items:
        key = row_of.get(item.field)
        (by_row[key] if key else unplaced).append(item)
    left_values, right_values = _values(left), _values(right)
    rows = [
        Row(key=key, label=label, left=left_values[key], right=right_values[key], evidence=by_row[key])
        for key, label in ROWS.items()
    ]
    if unplaced:  # a field a newer matcher compares: shown rather than dropped
        rows.append(Row(key="other", label="Other evidence", left=[], right=[], evidence=unplaced))
    return rows


def _row_text(kind: str, values: dict) -> str:
    if kind == "name":
        text = " ".join([*(values.get("given") or []), values.get("family") or ""]).strip()
        return text or values.get("text") or "?"
    if kind == "address":
        parts = [
            *(values.get("line") or []),
            values.get("city"),
            values.get("postal_code"),
            values.get("country"),
        ]
        return ", ".join(p for p in parts if p) or values.get("text") or "?"
    if kind == "contact":
        return f"{values.get('system')}: {values.get('value')}"
    if kind == "identifier":
        return f"{values.get('system')}|{values.get('value')}"
    return str(values)


def _field_changes(old: dict, new: dict) -> str:
    return ", ".join(f"{f.removesuffix('_id')} {old[f] or '—'} → {new[f] or '—'}" for f in new)


def describe_changes(changes: dict) -> list[str]:
    """A merge's ``changes`` (matching.survivorship) as sentences for a person."""
    lines = []
    for entry in changes.get("identifiers_moved", []):
        lines.append(f"Identifier {_row_text('identifier', entry['values'])} moves to the surviving record.")
    for entry in changes.get("copied", []):
        values = entry["values"]
        use = f" (use: {values['use']})" if values.get("use") else ""
        lines.append(f"{entry['model'].capitalize()} {_row_text(entry['model'], values)} is copied{use}.")
    for entry in changes.get("altered", []):
        lines.append(f"Surviving {entry['model']}: {_field_changes(entry['old'], entry['new'])}.")
    for column, values in changes.get("scalars", {}).items():
        label = column.removesuffix("_id").replace("_", " ")
        lines.append(f"{label.capitalize()}: {values['old'] or '—'} → {values['new'] or '—'}.")
    return lines
