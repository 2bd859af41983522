"""A CSV of synthetic patients in the importer's columns, for ``make bench-import``.

The records come from ``patients.demo`` (realistic names, MRN + SSN, addresses,
phones, about 17% planted duplicates, some without any identifier), written as a
source system would export them: phones as typed, dates ISO.
"""

from __future__ import annotations

import csv
import sys

from patients.data import PatientData
from patients.demo import generate_demo

COLUMNS = (
    "identifier_system", "identifier_value", "identifier_type", "identifier_2_system", "identifier_2_value",
    "identifier_2_type", "family", "given", "prefix", "name_use", "birth_date", "gender", "marital_status",
    "address_line", "address_line_2", "city", "state", "postal_code", "country", "phone", "mobile", "email",
)  # fmt: skip


def csv_row(data: PatientData) -> dict[str, str]:
    row: dict[str, str] = {}
    for group, ident in zip(("identifier", "identifier_2"), data.identifiers, strict=False):
        row.update(
            {f"{group}_system": ident.system, f"{group}_value": ident.value, f"{group}_type": ident.type}
        )
    if data.names:
        name = data.names[0]
        row.update(
            family=name.family, given=" ".join(name.given), prefix=" ".join(name.prefix), name_use=name.use
        )
    row.update(
        birth_date=data.birth_date.isoformat() if data.birth_date else "",
        gender=data.gender,
        marital_status=data.marital_status,
    )
    if data.addresses:
        a = data.addresses[0]
        lines = [*a.line, "", ""]
        row.update(
            address_line=lines[0],
            address_line_2=lines[1],
            city=a.city,
            state=a.state,
            postal_code=a.postal_code,
            country=a.country,
        )
    for c in data.contacts:
        column = "email" if c.system == "email" else ("mobile" if c.use == "mobile" else "phone")
        row.setdefault(column, c.value)
    return row


def write_demo_csv(count: int, seed: int, path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for record in generate_demo(count, seed).records:
            writer.writerow(csv_row(record.data))
    print(f"wrote {count:,} patients to {path}", file=sys.stderr)
