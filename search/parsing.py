"""Understanding a clerk's free text: "smith, john 04/03/1980", "MRN 123456", "+1 555 0100".

Pure code. The text becomes name words (matched fuzzily and ranked) and criteria:
each criterion is a set of alternatives of which a patient must match at least one
("123456" may be an identifier, a postcode or a phone ending), and a patient must
meet every criterion. Structured fields become single-alternative criteria.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from django.core.exceptions import ValidationError

from patients.codes import Gender
from patients.data import normalize_phone
from search.normalize import fold, name_words, phone_digits, phone_suffix, postcode_key

# Kinds of alternative, each answered by one indexed column (see search/queries.py).
UUID_KIND, IDENTIFIER_KEY, IDENTIFIER_VALUE = "uuid", "identifier_key", "identifier_value"
PHONE, PHONE_SUFFIX, EMAIL, POSTCODE = "phone", "phone_suffix", "email", "postcode"
BIRTH_DATE, BIRTH_YEAR = "birth_date", "birth_year"

# Words that label a value rather than being part of a name: "MRN 123456", "dob 1980".
LABELS = frozenset(
    {
        "mrn", "ssn", "nhs", "nino", "id", "identifier", "dob", "birth", "date", "birthdate",
        "phone", "tel", "telephone", "mobile", "cell", "email", "mail", "zip", "postcode", "postal",
        "code", "no", "nr", "num", "number", "pid",
    }
)  # fmt: skip
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}

_UUID = re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.I)
_EMAIL = re.compile(r"[^\s,;<>()]+@[^\s,;<>()]+\.[^\s,;<>()]+")
_ISO_DATE = re.compile(r"(?<![\d/.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d/.-])")
_NUMERIC_DATE = re.compile(r"(?<![\d/.-])(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})(?![\d/.-])")
_TEXT_DATE = re.compile(
    r"\b(?:(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]{3,9})\.?,?\s+(\d{4})"
    r"|([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4}))\b",
    re.I,
)
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{5,}\d(?![\w])")
_UK_POSTCODE = re.compile(r"\b([a-z]{1,2}\d[a-z\d]?)\s+(\d[a-z]{2})\b", re.I)


@dataclass(frozen=True)
class Alternative:
    kind: str
    value: str | date | int


@dataclass(frozen=True)
class Criterion:
    text: str  # what the clerk typed, for "what matched"
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True)
class SearchQuery:
    name_words: tuple[str, ...] = ()
    family_words: tuple[str, ...] = ()  # known only from "family, given" or structured input
    criteria: tuple[Criterion, ...] = ()
    gender: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.name_words or self.criteria)


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _full_year(year: str, today: date) -> int:
    if len(year) == 4:
        return int(year)
    value = int(year)
    return 2000 + value if 2000 + value <= today.year else 1900 + value


def parse_date(text: str, *, today: date | None = None) -> tuple[date, ...]:
    """Every reading of a written date: "04/03/1980" is 4 March or April 3 (both kept)."""
    today = today or date.today()
    text = text.strip()
    if m := _ISO_DATE.fullmatch(text):
        found = [_valid_date(int(m[1]), int(m[2]), int(m[3]))]
    elif m := _NUMERIC_DATE.fullmatch(text):
        year = _full_year(m[3], today)
        found = [_valid_date(year, int(m[2]), int(m[1])), _valid_date(year, int(m[1]), int(m[2]))]
    elif m := _TEXT_DATE.fullmatch(text):
        day, month, year = (m[1], m[2], m[3]) if m[1] else (m[5], m[4], m[6])
        month_no = _MONTHS.get(month[:3].lower())
        found = [_valid_date(int(year), month_no, int(day))] if month_no else []
    else:
        found = []
    return tuple(dict.fromkeys(d for d in found if d and d <= today))


def phone_alternatives(text: str) -> tuple[Alternative, ...]:
    alternatives: list[Alternative] = []
    if len(phone_digits(text)) < 7:  # too short to mean anything, even as a suffix
        return ()
    try:
        e164 = normalize_phone(text)
    except Exception:  # phonenumbers rejects some inputs outright; the suffix still works
        e164 = ""
    if e164.startswith("+"):
        alternatives.append(Alternative(PHONE, e164))
    if suffix := phone_suffix(text):
        alternatives.append(Alternative(PHONE_SUFFIX, suffix))
    return tuple(alternatives)


def identifier_alternatives(text: str) -> tuple[Alternative, ...]:
    """A structured identifier: "system|value" exactly, or a value in any system."""
    system, sep, value = text.strip().rpartition("|")
    if sep and system.strip() and value.strip():
        return (Alternative(IDENTIFIER_KEY, f"{system.strip()}|{value.strip()}"),)
    return (Alternative(IDENTIFIER_VALUE, fold(text.strip())),) if text.strip() else ()


def _looks_like_phone(match: str) -> bool:
    """Spaces split identifiers from years ("123456 1980") but also phone groups
    ("555 0100"): only the latter have short groups or a leading + or (."""
    if len(phone_digits(match)) < 7:
        return False
    groups = re.findall(r"\d+", match)
    return match.startswith(("+", "(")) or len(groups) == 1 or all(len(g) <= 4 for g in groups)


def _token_criterion(token: str, today: date) -> Criterion:
    alternatives = [Alternative(IDENTIFIER_VALUE, fold(token)), Alternative(POSTCODE, postcode_key(token))]
    # isdecimal, not isdigit: "²²²²" is digits to str.isdigit() but not to int().
    if token.isdecimal() and len(token) == 4 and 1850 <= int(token) <= today.year:
        alternatives.insert(0, Alternative(BIRTH_YEAR, int(token)))
    return Criterion(token, tuple(alternatives))


def parse_free_text(text: str, *, today: date | None = None) -> SearchQuery:
    today = today or date.today()
    criteria: list[Criterion] = []
    rest = text or ""

    def take(pattern: re.Pattern, handle) -> None:
        nonlocal rest
        rest = pattern.sub(lambda m: " " if handle(m) is not False else m[0], rest)

    def on_uuid(m):
        criteria.append(Criterion(m[0], (Alternative(UUID_KIND, str(UUID(m[0]))),)))

    def on_email(m):
        criteria.append(Criterion(m[0], (Alternative(EMAIL, m[0].lower()),)))

    def on_date(m):
        dates = parse_date(m[0], today=today)
        if not dates:
            return False
        criteria.append(Criterion(m[0], tuple(Alternative(BIRTH_DATE, d) for d in dates)))

    def on_phone(m):
        if not _looks_like_phone(m[0].strip()):
            return False
        raw = m[0].strip()
        alternatives = phone_alternatives(raw)
        # "078-05-1120" or "12345678" may as well be an SSN or an MRN.
        alternatives += (Alternative(IDENTIFIER_VALUE, fold(raw)),)
        criteria.append(Criterion(raw, alternatives))

    def on_postcode(m):
        criteria.append(Criterion(m[0], (Alternative(POSTCODE, postcode_key(m[0])),)))

    take(_UUID, on_uuid)
    take(_EMAIL, on_email)
    for pattern in (_ISO_DATE, _TEXT_DATE, _NUMERIC_DATE):
        take(pattern, on_date)
    take(_PHONE, on_phone)
    take(_UK_POSTCODE, on_postcode)

    words: list[str] = []
    family: list[str] = []
    before_comma = "," in rest
    for chunk in re.split(r"(,)|[\s;:#]+", rest):
        if chunk == ",":
            before_comma = False
            continue
        token = (chunk or "").strip(".()[]\"'")
        if not token or fold(token) in LABELS:
            continue
        if any(ch.isdigit() for ch in token):
            criteria.append(_token_criterion(token, today))
            continue
        found = name_words(token)
        words.extend(found)
        if before_comma:
            family.extend(found)
    return SearchQuery(name_words=tuple(words), family_words=tuple(family), criteria=tuple(criteria))


def build_query(
    *,
    text: str = "",
    name: str = "",
    birth_date: date | str | None = None,
    gender: str = "",
    identifier: str = "",
    phone: str = "",
    email: str = "",
    postcode: str = "",
    today: date | None = None,
) -> SearchQuery:
    """Free text plus structured fields as one query. Raises ValidationError keyed by
    field name for a structured value that cannot be read."""
    query = parse_free_text(text, today=today)
    criteria = list(query.criteria)
    words, family = list(query.name_words), list(query.family_words)
    if name.strip():
        family_part, comma, _ = name.partition(",")
        words.extend(name_words(name))
        if comma:
            family.extend(name_words(family_part))
    if isinstance(birth_date, str) and birth_date.strip():
        dates = parse_date(birth_date, today=today)
        if not dates:
            raise ValidationError(
                {"birth_date": f"{birth_date!r} is not a date (try 1980-03-04 or 04/03/1980)."}
            )
        criteria.append(Criterion(birth_date, tuple(Alternative(BIRTH_DATE, d) for d in dates)))
    elif isinstance(birth_date, date):
        criteria.append(Criterion(birth_date.isoformat(), (Alternative(BIRTH_DATE, birth_date),)))
    if identifier.strip():
        criteria.append(Criterion(identifier, identifier_alternatives(identifier)))
    if phone.strip():
        alternatives = phone_alternatives(phone)
        if not alternatives:
            raise ValidationError({"phone": f"{phone!r} is not a phone number (it needs at least 7 digits)."})
        criteria.append(Criterion(phone, alternatives))
    if email.strip():
        criteria.append(Criterion(email, (Alternative(EMAIL, email.strip().lower()),)))
    gender = gender.strip().lower()
    if gender and gender not in Gender.values:
        raise ValidationError(
            {"gender": f"Unknown gender {gender!r}; expected one of: {', '.join(Gender.values)}."}
        )
    if postcode.strip():
        criteria.append(Criterion(postcode, (Alternative(POSTCODE, postcode_key(postcode)),)))
    return SearchQuery(
        name_words=tuple(words),
        family_words=tuple(family),
        criteria=tuple(criteria),
        gender=gender,
    )
