"""The one input shape for patient writes, and its normalisation and validation.

The admin forms, the REST serializers, the FHIR mapper and the bulk importer all
produce a ``PatientData``; ``clean_patient_data`` turns it into a normalised copy or
raises a ``ValidationError`` whose keys are field paths such as ``names[0].family``.
Pure code: no database access.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import MISSING, dataclass, fields, replace
from datetime import date, datetime
from functools import cache
from uuid import UUID

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from patients.codes import (
    MERGE_LINK_TYPES,
    PHONE_SYSTEMS,
    AddressType,
    AddressUse,
    ContactSystem,
    ContactUse,
    Gender,
    IdentifierType,
    IdentifierUse,
    LinkType,
    MaritalStatus,
    NameUse,
)


@dataclass(frozen=True)
class NameData:
    family: str = ""
    given: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()
    text: str = ""
    use: str = ""
    period_start: date | None = None
    period_end: date | None = None
    primary: bool = False


@dataclass(frozen=True)
class IdentifierData:
    system: str
    value: str
    use: str = ""
    type: str = ""
    assigner: str = ""
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True)
class AddressData:
    line: tuple[str, ...] = ()
    city: str = ""
    district: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    text: str = ""
    use: str = ""
    type: str = ""
    period_start: date | None = None
    period_end: date | None = None
    primary: bool = False


@dataclass(frozen=True)
class ContactData:
    system: str
    value: str
    use: str = ""
    rank: int | None = None
    period_start: date | None = None
    period_end: date | None = None
    # Filled in by normalisation: E.164 for phones, lower case for emails.
    normalized_value: str = ""


@dataclass(frozen=True)
class LinkData:
    other: UUID
    type: str = LinkType.SEEALSO
    reason: str = ""


@dataclass(frozen=True)
class PatientData:
    names: tuple[NameData, ...] = ()
    identifiers: tuple[IdentifierData, ...] = ()
    addresses: tuple[AddressData, ...] = ()
    contacts: tuple[ContactData, ...] = ()
    links: tuple[LinkData, ...] = ()
    active: bool = True
    gender: str = ""
    birth_date: date | None = None
    deceased: bool = False
    deceased_at: datetime | None = None
    marital_status: str = ""
    multiple_birth: bool | None = None
    multiple_birth_order: int | None = None
    managing_organization: UUID | None = None

    # Patient columns written verbatim from this shape (children are handled apart).
    SCALAR_FIELDS = (
        "active",
        "gender",
        "birth_date",
        "deceased",
        "deceased_at",
        "marital_status",
        "multiple_birth",
        "multiple_birth_order",
    )


_WHITESPACE = re.compile(r"\s+")
_URI = re.compile(r"^(urn:(oid|uuid|[a-z0-9][a-z0-9-]*):|[a-z][a-z0-9+.-]*://)\S+$", re.IGNORECASE)


# The column's limit (PostgreSQL smallint).
MAX_BIRTH_ORDER = 32767


def whole_number(text: str | None, *, max_digits: int = 18) -> int | None:
    """``text`` as an int when it is 1 to ``max_digits`` ASCII digits, else None.

    For numbers in URLs, headers and files: ``str.isdigit()`` also accepts "²" and other
    Unicode digits that ``int()`` refuses, and ``int()`` refuses more than 4,300 digits;
    both were 500s. 18 digits always fit a bigint.
    """
    if text and len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def clean_text(value: str | None) -> str:
    """Trim and collapse whitespace; NFC so that one letter is one code point."""
    if not value:
        return ""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", str(value))).strip()


def _clean_parts(values) -> tuple[str, ...]:
    return tuple(v for v in (clean_text(v) for v in values or ()) if v)


def normalize_phone(value: str, region: str | None = None) -> str:
    """E.164 when the number parses, else its bare digits (kept, never rejected)."""
    region = region or settings.MPI_DEFAULT_PHONE_REGION
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", value)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    return clean_text(value).lower()


def normalize_postcode(value: str) -> str:
    # UK, Canadian and Dutch postcodes are written in capitals; digits are unaffected.
    return clean_text(value).upper()


@cache
def _codes(choices: type) -> frozenset[str]:
    # TextChoices.values builds a new list on every access; the importer checks
    # about ten codes per record.
    return frozenset(choices.values)


class _Errors:
    """Collects field-addressed messages, then raises them as one ValidationError."""

    def __init__(self) -> None:
        self.messages: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.messages.setdefault(path, []).append(message)

    def code(self, path: str, value: str, choices: type, required: bool = False) -> None:
        if not value:
            if required:
                self.add(path, "This field is required.")
            return
        if value not in _codes(choices):
            allowed = ", ".join(choices.values)
            self.add(path, f"Unknown code {value!r}; expected one of: {allowed}.")

    def period(self, path: str, start: date | None, end: date | None) -> None:
        if start and end and start > end:
            self.add(f"{path}.period", "The period ends before it starts.")

    def raise_if_any(self) -> None:
        if self.messages:
            raise ValidationError(self.messages)


def _one_primary(items: tuple, primary_attr: str = "primary") -> tuple:
    """Exactly one primary row when there are any: the first marked, else the first."""
    if not items:
        return items
    first = next((i for i, item in enumerate(items) if getattr(item, primary_attr)), 0)
    return tuple(replace(item, primary=(i == first)) for i, item in enumerate(items))


def clean_patient_data(data: PatientData, *, today: date | None = None) -> PatientData:
    """Return a normalised copy of ``data`` or raise ValidationError keyed by field path."""
    today = today or timezone.localdate()
    errors = _Errors()

    errors.code("gender", data.gender, Gender)
    errors.code("marital_status", data.marital_status, MaritalStatus)
    if data.birth_date and data.birth_date > today:
        errors.add("birth_date", "The birth date is in the future.")
    if data.birth_date and data.birth_date.year < 1850:
        errors.add("birth_date", "The birth date is before 1850.")
    deceased = data.deceased or data.deceased_at is not None
    if data.deceased_at:
        if data.deceased_at > timezone.now():
            errors.add("deceased_at", "The date of death is in the future.")
        if data.birth_date and data.deceased_at.date() < data.birth_date:
            errors.add("deceased_at", "The date of death is before the birth date.")
    multiple_birth = data.multiple_birth
    if data.multiple_birth_order is not None:
        if data.multiple_birth_order < 1:
            errors.add("multiple_birth_order", "The birth order starts at 1.")
        elif data.multiple_birth_order > MAX_BIRTH_ORDER:
            errors.add("multiple_birth_order", f"The birth order is at most {MAX_BIRTH_ORDER}.")
        elif data.multiple_birth is False and data.multiple_birth_order > 1:
            errors.add("multiple_birth_order", "A birth order above 1 needs a multiple birth.")
        elif data.multiple_birth_order > 1:
            multiple_birth = True

    names = []
    for i, n in enumerate(data.names):
        path = f"names[{i}]"
        name = replace(
            n,
            family=clean_text(n.family),
            given=_clean_parts(n.given),
            prefix=_clean_parts(n.prefix),
            suffix=_clean_parts(n.suffix),
            text=clean_text(n.text),
        )
        errors.code(f"{path}.use", name.use, NameUse)
        errors.period(path, name.period_start, name.period_end)
        if not (name.family or name.given or name.text):
            errors.add(f"{path}.family", "A name needs a family name, a given name or a text.")
        names.append(name)
    if not names:
        errors.add("names", "At least one name is required.")

    identifiers = []
    seen_identifiers: dict[tuple[str, str], int] = {}
    for i, ident in enumerate(data.identifiers):
        path = f"identifiers[{i}]"
        ident = replace(
            ident,
            system=clean_text(ident.system),
            value=clean_text(ident.value),
            assigner=clean_text(ident.assigner),
        )
        errors.code(f"{path}.use", ident.use, IdentifierUse)
        errors.code(f"{path}.type", ident.type, IdentifierType)
        errors.period(path, ident.period_start, ident.period_end)
        if not ident.system:
            errors.add(f"{path}.system", "An identifier needs a system (a URI).")
        elif not _URI.match(ident.system):
            errors.add(f"{path}.system", f"{ident.system!r} is not a URI (urn:oid:..., https://...).")
        if not ident.value:
            errors.add(f"{path}.value", "An identifier needs a value.")
        key = (ident.system, ident.value)
        if ident.system and ident.value:
            if key in seen_identifiers:
                errors.add(path, f"Same identifier as identifiers[{seen_identifiers[key]}].")
            seen_identifiers.setdefault(key, i)
        identifiers.append(ident)

    addresses = []
    for i, a in enumerate(data.addresses):
        path = f"addresses[{i}]"
        address = replace(
            a,
            line=_clean_parts(a.line),
            city=clean_text(a.city),
            district=clean_text(a.district),
            state=clean_text(a.state),
            postal_code=normalize_postcode(a.postal_code),
            country=clean_text(a.country),
            text=clean_text(a.text),
        )
        errors.code(f"{path}.use", address.use, AddressUse)
        errors.code(f"{path}.type", address.type, AddressType)
        errors.period(path, address.period_start, address.period_end)
        if not any(
            (address.line, address.city, address.state, address.postal_code, address.country, address.text)
        ):
            errors.add(path, "The address is empty.")
        addresses.append(address)

    contacts = []
    for i, c in enumerate(data.contacts):
        path = f"contacts[{i}]"
        value = clean_text(c.value)
        errors.code(f"{path}.system", c.system, ContactSystem, required=True)
        errors.code(f"{path}.use", c.use, ContactUse)
        errors.period(path, c.period_start, c.period_end)
        if c.rank is not None and c.rank < 1:
            errors.add(f"{path}.rank", "The rank starts at 1.")
        normalized = value
        if not value:
            errors.add(f"{path}.value", "A contact needs a value.")
        elif c.system in PHONE_SYSTEMS:
            normalized = normalize_phone(value)
            if len(re.sub(r"\D", "", normalized)) < 3:
                errors.add(f"{path}.value", f"{value!r} is not a phone number.")
        elif c.system == ContactSystem.EMAIL:
            normalized = normalize_email(value)
            try:
                validate_email(normalized)
            except ValidationError:
                errors.add(f"{path}.value", f"{value!r} is not an email address.")
        contacts.append(replace(c, value=value, normalized_value=normalized))

    links = []
    for i, link in enumerate(data.links):
        path = f"links[{i}]"
        errors.code(f"{path}.type", link.type, LinkType, required=True)
        if link.type in MERGE_LINK_TYPES:
            errors.add(f"{path}.type", f"{link.type!r} links are written by merges only.")
        links.append(replace(link, reason=clean_text(link.reason)))

    errors.raise_if_any()
    return replace(
        data,
        names=_one_primary(tuple(names)),
        identifiers=tuple(identifiers),
        addresses=_one_primary(tuple(addresses)),
        contacts=tuple(contacts),
        links=tuple(links),
        deceased=deceased,
        multiple_birth=multiple_birth,
    )


# --- A compact JSON form (the search index keeps one per patient for the matcher) ------

_CHILD_SHAPES = {
    "names": NameData,
    "identifiers": IdentifierData,
    "addresses": AddressData,
    "contacts": ContactData,
}
_DEFAULTS = {shape: {f.name: f for f in fields(shape)} for shape in (*_CHILD_SHAPES.values(), PatientData)}


def _json_value(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, date):  # a datetime is a date too
        return value.isoformat()
    return value


def _compact(obj) -> dict:
    """The fields of a data object that differ from their defaults, as JSON values."""
    return {
        name: _json_value(getattr(obj, name))
        for name, f in _DEFAULTS[type(obj)].items()
        if f.default is MISSING or getattr(obj, name) != f.default
    }


def in_stored_order(data: PatientData) -> PatientData:
    """``data`` with its children in the order the patient tables give them back
    (``patients.queries``): primary name and address first, then by id, which for rows
    just inserted is the data's own order. A patient registered from ``data`` reads
    back as ``in_stored_order(data)`` (its links and managing organization aside)."""
    return replace(
        data,
        names=tuple(sorted(data.names, key=lambda n: not n.primary)),
        addresses=tuple(sorted(data.addresses, key=lambda a: not a.primary)),
    )


def data_to_json(data: PatientData) -> dict:
    """``data`` without its links and managing organization, as plain JSON values
    (``data_from_json`` reads it back). Defaults are left out: the form is stored once
    per patient."""
    found = _compact(replace(data, links=(), managing_organization=None))
    for name in _CHILD_SHAPES:
        if name in found:
            found[name] = [_compact(child) for child in getattr(data, name)]
    return found


_PARSERS = {"period_start": date.fromisoformat, "period_end": date.fromisoformat}
_PARSERS |= {"birth_date": date.fromisoformat, "deceased_at": datetime.fromisoformat}


class _Reader:
    """Builds one shape from its compact JSON without the dataclass ``__init__``.

    The matcher reads ~50 candidates a probe this way; a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__`` and a generic loop
    tested every value's type, which together were most of the read. The shapes have
    plain defaults and no ``__post_init__``, so the instance is its defaults overlaid
    with the stored values, lists made tuples and dates parsed.
    """

    def __init__(self, shape: type) -> None:
        self.shape = shape
        self.defaults = {n: f.default for n, f in _DEFAULTS[shape].items() if f.default is not MISSING}
        self.tuples = frozenset(n for n, default in self.defaults.items() if default == ())
        self.parsed = {n: parse for n, parse in _PARSERS.items() if n in _DEFAULTS[shape]}

    def __call__(self, values: dict):
        found = {**self.defaults, **values}
        for name in self.tuples.intersection(values):
            found[name] = tuple(values[name])
        for name, parse in self.parsed.items():
            if found[name] is not None:
                found[name] = parse(found[name])
        made = object.__new__(self.shape)
        object.__setattr__(made, "__dict__", found)
        return made


_READERS = {name: _Reader(shape) for name, shape in _CHILD_SHAPES.items()}
_READ_PATIENT = _Reader(PatientData)


def data_from_json(values: dict) -> PatientData:
    """The ``PatientData`` that ``data_to_json`` wrote (with no links and no managing organization)."""
    found = dict(values)
    for name, read in _READERS.items():
        if name in found:
            found[name] = tuple(read(child) for child in found[name])
    return _READ_PATIENT(found)
