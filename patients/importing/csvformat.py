"""CSV input: one patient per row, documented columns, and a mapping for foreign layouts.

The columns (``FIELDS``; all optional, empty cells are absent) are listed with
examples in docs/import.md. A foreign layout is read with a mapping
``field=COLUMN`` (``given=FIRST+MIDDLE`` joins several columns with a space) and
constants ``field=value`` for what the file does not say (``identifier_system``).
Columns whose name starts with ``_`` are ignored silently (the rejects file adds
``_line``, ``_field``, ``_reason``, so a corrected rejects file can be imported as is);
other unknown columns are ignored with a warning.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from uuid import UUID

from django.utils import timezone

from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData, whole_number
from patients.importing.source import ImportFileError, Source, SourceRecord

IDENTIFIER_GROUPS = ("identifier", "identifier_2", "identifier_3", "identifier_4", "identifier_5")
IDENTIFIER_PARTS = ("system", "value", "type", "use", "assigner")
NAME_FIELDS = ("family", "given", "prefix", "suffix", "name_text", "name_use")
ADDRESS_FIELDS = (
    "address_line", "address_line_2", "city", "district", "state", "postal_code", "country", "address_use",
    "address_type",
)  # fmt: skip
# column -> (contact system, use)
CONTACT_FIELDS = {
    "phone": ("phone", "home"),
    "mobile": ("phone", "mobile"),
    "work_phone": ("phone", "work"),
    "email": ("email", ""),
}
SCALAR_FIELDS = (
    "birth_date", "gender", "marital_status", "deceased", "deceased_date", "multiple_birth", "active",
    "managing_organization",
)  # fmt: skip
FIELDS = (
    *(f"{g}_{p}" for g in IDENTIFIER_GROUPS for p in IDENTIFIER_PARTS),
    *NAME_FIELDS,
    *SCALAR_FIELDS,
    *ADDRESS_FIELDS,
    *CONTACT_FIELDS,
)
GENDERS = {"m": "male", "f": "female", "o": "other", "u": "unknown"}
TRUE = frozenset({"true", "t", "yes", "y", "1"})
FALSE = frozenset({"false", "f", "no", "n", "0"})


def parse_mapping(specs: list[str], *, what: str) -> dict[str, str]:
    """``["family=LAST_NAME,given=FIRST", ...]`` -> {"family": "LAST_NAME", ...}.

    ``what`` names the option in error messages. A field may appear once.
    """
    mapping: dict[str, str] = {}
    for spec in specs:
        for item in spec.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name or not value:
                raise ImportFileError(f"{what}: {item.strip()!r} is not field=value.")
            if name not in FIELDS:
                raise ImportFileError(f"{what}: {name!r} is not a field. Fields: {', '.join(FIELDS)}.")
            if name in mapping:
                raise ImportFileError(f"{what}: {name!r} is given twice.")
            mapping[name] = value
    return mapping


def read_mapping_file(path: str) -> list[str]:
    """A mapping file: ``field=COLUMN`` lines; blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"Cannot read the mapping file {path}: {exc}.") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@dataclass(frozen=True)
class Layout:
    """Where each field's value comes from in this file: columns (joined) or a constant."""

    header: tuple[str, ...]
    sources: dict[str, tuple[int, ...]]  # field -> column indexes
    labels: dict[str, str]  # field -> how a reject names it
    defaults: dict[str, str]
    ignored: tuple[str, ...]

    @classmethod
    def build(cls, header: list[str], mapping: dict[str, str], defaults: dict[str, str]) -> Layout:
        position = {name: i for i, name in enumerate(header)}
        sources: dict[str, tuple[int, ...]] = {}
        labels: dict[str, str] = {}
        for name, spec in mapping.items():
            columns = [c.strip() for c in spec.split("+")]
            missing = [c for c in columns if c not in position]
            if missing:
                raise ImportFileError(
                    f"--map {name}={spec}: no column {', '.join(map(repr, missing))} in the header "
                    f"({', '.join(header)})."
                )
            sources[name] = tuple(position[c] for c in columns)
            labels[name] = spec
        used = {i for indexes in sources.values() for i in indexes}
        for name in FIELDS:
            if name not in sources and name in position and position[name] not in used:
                sources[name] = (position[name],)
                labels[name] = name
                used.add(position[name])
        for name in defaults:
            labels.setdefault(name, f"{name} (--default)")
        if not sources:
            raise ImportFileError(
                "No column of the header is a known field: is this a CSV file of patients? "
                f"Header: {', '.join(header[:12])}. Map columns with --map field=COLUMN "
                f"(fields: {', '.join(FIELDS)})."
            )
        ignored = tuple(n for i, n in enumerate(header) if i not in used and not n.startswith("_"))
        return cls(tuple(header), sources, labels, defaults, ignored)

    def values(self, row: list[str]) -> dict[str, str]:
        """field -> cleaned-up text ("" when absent) of one row."""
        out = {}
        for name, indexes in self.sources.items():
            if len(indexes) == 1:
                value = row[indexes[0]].strip() if indexes[0] < len(row) else ""
            else:
                value = " ".join(row[i].strip() for i in indexes if i < len(row) and row[i].strip())
            if value:
                out[name] = value
        for name, value in self.defaults.items():
            out.setdefault(name, value)
        return out


class RowErrors(dict):
    def add(self, label: str, message: str) -> None:
        self.setdefault(label, []).append(message)


class CsvReader:
    """Reads records from a CSV ``Source``; ``layout`` is known once the header is read."""

    rejects_format = "csv"

    def __init__(
        self,
        source: Source,
        *,
        mapping: dict[str, str],
        defaults: dict[str, str],
        encoding: str = "utf-8",
        delimiter: str | None = None,
        date_format: str | None = None,
    ) -> None:
        self.source = source
        self.mapping, self.defaults = mapping, defaults
        self.encoding = encoding
        self.delimiter = delimiter or ("\t" if source.name.lower().endswith(".tsv") else ",")
        self.date_format = date_format
        self.layout: Layout | None = None
        self._line = 0

    @property
    def header(self) -> tuple[str, ...]:
        return self.layout.header if self.layout else ()

    def _lines(self) -> Iterator[str]:
        for number, text in self.source.lines(self.encoding):
            self._line = number
            yield text

    def records(self) -> Iterator[SourceRecord]:
        rows = csv.reader(self._lines(), delimiter=self.delimiter, strict=True)
        try:
            header = next(rows, None)
            if not header or not any(h.strip() for h in header):
                raise ImportFileError(f"{self.source.name} is empty: a CSV file starts with a header row.")
            self.layout = Layout.build([h.strip() for h in header], self.mapping, self.defaults)
            while True:
                start = self._line + 1
                row = next(rows, None)
                if row is None:
                    return
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                yield self.record(start, row)
        except csv.Error as exc:
            raise ImportFileError(f"Line {self._line}: not valid CSV ({exc}).") from exc

    def record(self, number: int, row: list[str]) -> SourceRecord:
        layout = self.layout
        values = layout.values(row)
        errors = RowErrors()
        data, paths = self._build(values, errors)
        labels = {path: layout.labels.get(name, name) for path, name in paths.items()}
        if errors:
            return SourceRecord(number, errors=dict(errors), raw=row, labels=labels)
        return SourceRecord(number, data=data, raw=row, labels=labels)

    # -- turning one row's values into PatientData -------------------------------------

    def _build(self, v: dict[str, str], errors: RowErrors) -> tuple[PatientData | None, dict[str, str]]:
        paths: dict[str, str] = {}  # data path -> field

        names = ()
        if any(v.get(f) for f in NAME_FIELDS if f != "name_use"):
            names = (
                NameData(
                    family=v.get("family", ""),
                    given=tuple(v.get("given", "").split()),
                    prefix=tuple(v.get("prefix", "").split()),
                    suffix=tuple(v.get("suffix", "").split()),
                    text=v.get("name_text", ""),
                    use=v.get("name_use", ""),
                ),
            )
        paths.update({"names": "family", "names[0]": "family", "names[0].family": "family"})
        paths.update({"names[0].use": "name_use", "names[0].period": "family"})

        identifiers = []
        for group in IDENTIFIER_GROUPS:
            parts = {p: v.get(f"{group}_{p}", "") for p in IDENTIFIER_PARTS}
            # A constant system alone (--default identifier_system=...) is not an identifier.
            given_here = parts["value"] or any(
                parts[p] and f"{group}_{p}" not in self.defaults for p in IDENTIFIER_PARTS
            )
            if not given_here:
                continue
            i = len(identifiers)
            identifiers.append(IdentifierData(**parts))
            paths[f"identifiers[{i}]"] = f"{group}_value"
            for p in ("system", "value", "type", "use"):
                paths[f"identifiers[{i}].{p}"] = f"{group}_{p}"
        paths["identifiers"] = "identifier_value"

        addresses = ()
        if any(v.get(f) for f in ADDRESS_FIELDS if f not in ("address_use", "address_type")):
            lines = tuple(x for x in (v.get("address_line", ""), v.get("address_line_2", "")) if x)
            addresses = (
                AddressData(
                    line=lines,
                    city=v.get("city", ""),
                    district=v.get("district", ""),
                    state=v.get("state", ""),
                    postal_code=v.get("postal_code", ""),
                    country=v.get("country", ""),
                    use=v.get("address_use", ""),
                    type=v.get("address_type", ""),
                ),
            )
        paths.update({"addresses[0]": "address_line", "addresses[0].use": "address_use"})
        paths["addresses[0].type"] = "address_type"

        contacts = []
        for name, (system, use) in CONTACT_FIELDS.items():
            if v.get(name):
                paths[f"contacts[{len(contacts)}]"] = name
                contacts.append(ContactData(system=system, value=v[name], use=use))

        for name in SCALAR_FIELDS:
            paths[name] = name
        paths["deceased_at"] = "deceased_date"
        paths["multiple_birth_order"] = "multiple_birth"
        gender = v.get("gender", "").lower()
        deceased_at = self._datetime(v.get("deceased_date"), errors)
        multiple_birth, order = self._multiple_birth(v.get("multiple_birth"), errors)
        data = PatientData(
            names=names,
            identifiers=tuple(identifiers),
            addresses=addresses,
            contacts=tuple(contacts),
            gender=GENDERS.get(gender, gender),
            birth_date=self._date(v.get("birth_date"), "birth_date", errors),
            marital_status=v.get("marital_status", "").upper(),
            deceased=self._bool(v.get("deceased"), "deceased", errors, default=False),
            deceased_at=deceased_at,
            multiple_birth=multiple_birth,
            multiple_birth_order=order,
            active=self._bool(v.get("active"), "active", errors, default=True),
            managing_organization=self._uuid(v.get("managing_organization"), errors),
        )
        return data, paths

    def _label(self, name: str) -> str:
        return self.layout.labels.get(name, name)

    def _date(self, text: str | None, name: str, errors: RowErrors) -> date | None:
        if not text:
            return None
        try:
            if self.date_format:
                return datetime.strptime(text, self.date_format).date()
            return date.fromisoformat(text)
        except ValueError:
            expected = self.date_format or "YYYY-MM-DD"
            errors.add(self._label(name), f"{text!r} is not a date in the format {expected} (--date-format).")
            return None

    def _datetime(self, text: str | None, errors: RowErrors) -> datetime | None:
        """An ISO date-time, or a date (midnight, local time)."""
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text) if "T" in text or ":" in text else None
        except ValueError:
            value = None
        if value is None:
            day = self._date(text, "deceased_date", errors)
            if day is None:
                return None
            value = datetime.combine(day, time())
        return timezone.make_aware(value) if timezone.is_naive(value) else value

    def _bool(self, text: str | None, name: str, errors: RowErrors, *, default: bool) -> bool:
        if not text:
            return default
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        errors.add(self._label(name), f"{text!r} is not true or false.")
        return default

    def _multiple_birth(self, text: str | None, errors: RowErrors) -> tuple[bool | None, int | None]:
        """true/false, or the birth order (1, 2, ...) which implies a multiple birth."""
        if not text:
            return None, None
        if (order := whole_number(text)) is not None and order > 1:
            return True, order
        if text.lower() in TRUE:
            return True, None
        if text.lower() in FALSE:
            return False, None
        errors.add(self._label("multiple_birth"), f"{text!r} is not true, false or a birth order.")
        return None, None

    def _uuid(self, text: str | None, errors: RowErrors) -> UUID | None:
        if not text:
            return None
        try:
            return UUID(text)
        except ValueError:
            errors.add(self._label("managing_organization"), f"{text!r} is not an organization UUID.")
            return None
