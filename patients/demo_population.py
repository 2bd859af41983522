"""The synthetic population behind the demo data: one clean record per person.

Pure and database-free; ``patients.demo`` plants duplicates and twins on top of it.
Name frequencies are Faker's en_US tables (US census weights); only the tables are used,
the draws come from the caller's ``random.Random``, so a seed gives the same people on
every machine. Faker is pinned because a release that edits its tables would change them.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from random import Random

from faker.providers.person.en_US import Provider as UsNames

from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from patients.nicknames import nicknamer

# The demo world's "today": ages and dates of death are relative to it, never to the clock.
REFERENCE_DATE = date(2025, 1, 1)
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
SSN_RATE = 0.3  # records that carry the person's SSN


@dataclass(frozen=True)
class Facility:
    name: str
    identifier_system: str
    mrn_format: str
    mrn_low: int
    mrn_high: int
    weight: float


# Example OIDs under HL7's documentation arc 2.16.840.1.113883.19: no real facility's.
_OID = "urn:oid:2.16.840.1.113883.19.1000"
FACILITIES = (
    Facility("Riverside General Hospital", f"{_OID}.1", "{:07d}", 1_000_000, 9_999_999, 0.5),
    Facility("Harbor Community Health Center", f"{_OID}.2", "H{:06d}", 100_000, 999_999, 0.3),
    Facility("St. Brigid Medical Center", f"{_OID}.3", "{:08d}", 1, 49_999_999, 0.2),
)

# A regional MPI: New England towns with real ZIP codes and area codes, weighted roughly by size.
_CITIES = (
    ("Boston", "MA", ("02108", "02115", "02118", "02127", "02130", "02134", "02135"), ("617", "857"), 10),
    ("Cambridge", "MA", ("02138", "02139", "02140", "02141"), ("617", "857"), 4),
    ("Somerville", "MA", ("02143", "02144", "02145"), ("617",), 3),
    ("Quincy", "MA", ("02169", "02170", "02171"), ("617",), 3),
    ("Newton", "MA", ("02458", "02459", "02460", "02465"), ("617",), 3),
    ("Brookline", "MA", ("02445", "02446"), ("617",), 2),
    ("Worcester", "MA", ("01602", "01603", "01604", "01605", "01610"), ("508", "774"), 6),
    ("Springfield", "MA", ("01103", "01104", "01107", "01108", "01109"), ("413",), 5),
    ("Lowell", "MA", ("01850", "01851", "01852", "01854"), ("978", "351"), 4),
    ("Lynn", "MA", ("01901", "01902", "01904", "01905"), ("781", "339"), 3),
    ("Brockton", "MA", ("02301", "02302"), ("508", "774"), 3),
    ("Framingham", "MA", ("01701", "01702"), ("508",), 2),
    ("Waltham", "MA", ("02451", "02452", "02453"), ("781",), 2),
    ("Salem", "MA", ("01970",), ("978",), 1),
    ("Plymouth", "MA", ("02360",), ("508",), 2),
    ("Providence", "RI", ("02903", "02906", "02908", "02909"), ("401",), 5),
    ("Nashua", "NH", ("03060", "03062", "03064"), ("603",), 2),
    ("Manchester", "NH", ("03101", "03102", "03103", "03104"), ("603",), 3),
    ("Hartford", "CT", ("06103", "06105", "06106", "06112"), ("860", "959"), 3),
    ("Portland", "ME", ("04101", "04102", "04103"), ("207",), 2),
)
_AREA_CODES = {city: codes for city, _, _, codes, _ in _CITIES}
_STREETS = (
    "Main", "Washington", "Maple", "Oak", "Elm", "Pine", "Cedar", "Park", "Lake", "Hill", "Highland",
    "Pleasant", "Summer", "Spring", "Center", "Church", "School", "Prospect", "Chestnut", "Walnut",
    "Union", "Franklin", "Adams", "Lincoln", "Warren", "Beacon", "Harvard", "River", "Forest", "Grove",
    "Willow", "Sunset", "Bridge", "Mill", "Water", "High", "Central", "Broadway", "Cherry", "Linden",
)  # fmt: skip
_STREET_TYPES = {
    "St": 45,
    "Ave": 20,
    "Rd": 15,
    "Dr": 6,
    "Ln": 4,
    "Ct": 3,
    "Way": 2,
    "Pl": 2,
    "Ter": 2,
    "Blvd": 1,
}
# Clerks type numbers every which way; normalisation makes them one E.164 value.
_PHONE_FORMATS = ("+1 {a} {e} {l}", "({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "1{a}{e}{l}")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")  # reserved: never a real mailbox
# About 10% of persons get one of these, so accent and punctuation handling is exercised.
_INTL_FAMILY = (
    "Müller", "Schröder", "Böhm", "Núñez", "Peña", "Gómez", "Hernández", "Jiménez", "Fernández",
    "Sánchez", "García-López", "Martínez-Ruiz", "O'Brien", "O'Connor", "D'Angelo", "Nguyễn", "Çelik",
    "Łukasiewicz", "Søndergaard", "Åberg", "Dubois-Lefèvre", "Lefèvre", "Brontë", "Thérien",
)  # fmt: skip
_INTL_GIVEN = {
    "female": ("Zoë", "Chloé", "Renée", "Inés", "Mónica", "Noémie", "Siobhán", "Anaïs", "Agnès", "Léa"),
    "male": ("José", "François", "Jürgen", "Björn", "Søren", "André", "Łukasz", "Iñaki", "Seán", "Raúl"),
}
# Letters that NFKD does not decompose into a base letter and a mark.
_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE"})


class _Weighted:
    """Draws from a {value: weight} table with one bisect per draw."""

    def __init__(self, table) -> None:
        self.values = list(table)
        self.cum = list(itertools.accumulate(table.values()))

    def draw(self, rng: Random):
        return rng.choices(self.values, cum_weights=self.cum)[0]


@cache
def _tables() -> dict:
    return {
        "female": _Weighted(UsNames.first_names_female),
        "male": _Weighted(UsNames.first_names_male),
        "family": _Weighted(UsNames.last_names),
        "city": _Weighted({c: c[4] for c in _CITIES}),
        "street_type": _Weighted(_STREET_TYPES),
        "facility": _Weighted({f: f.weight for f in FACILITIES}),
    }


def nicknames_of(given: str) -> list[str]:
    """Usual nicknames of a given name, title-cased, in a fixed order."""
    found = nicknamer().nicknames_of(given)
    return sorted(n.title() for n in found if n.isalpha() and len(n) > 1 and n != given.lower())


def fold_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def age_of(data: PatientData) -> int:
    return (REFERENCE_DATE - data.birth_date).days // 365 if data.birth_date else 0


def _digits(value: str) -> int:
    return int("".join(ch for ch in value if ch.isdigit()))


class Population:
    """Draws people. Remembers the identifiers and emails it handed out, so no two
    records share a live identifier and no two persons an email."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.t = _tables()
        # Membership tests only: sets are never iterated (their order varies per run).
        self.used_ids: set[tuple[str, str]] = set()
        self.used_emails: set[str] = set()
        self.ssn: dict[int, str] = {}  # person id -> the person's SSN
        self.ssn_recorded: set[int] = set()  # persons with a record that carries it

    def given_name(self, gender: str) -> str:
        pool = gender if gender in ("female", "male") else self.rng.choice(("female", "male"))
        return self.t[pool].draw(self.rng)

    def family_name(self) -> str:
        if self.rng.random() < 0.015:  # double-barrelled
            return f"{self.t['family'].draw(self.rng)}-{self.t['family'].draw(self.rng)}"
        return self.t["family"].draw(self.rng)

    def mrn(self, facility: Facility, after: int | None = None) -> IdentifierData:
        """A fresh MRN at ``facility``: random, or the next free one after ``after``."""
        rng, system = self.rng, facility.identifier_system
        number = after + 1 if after is not None else rng.randint(facility.mrn_low, facility.mrn_high)
        while (system, facility.mrn_format.format(number)) in self.used_ids:
            number = number + 1 if after is not None else rng.randint(facility.mrn_low, facility.mrn_high)
        value = facility.mrn_format.format(number)
        self.used_ids.add((system, value))
        return IdentifierData(system=system, value=value, type="MR", use="usual", assigner=facility.name)

    def ssn_identifier(self, person_id: int) -> tuple[IdentifierData, ...]:
        """The person's SSN, on at most one of their records (a live identifier is unique)."""
        if person_id in self.ssn_recorded or self.rng.random() >= SSN_RATE:
            return ()
        while person_id not in self.ssn:
            area = self.rng.randint(1, 899)
            value = f"{area:03d}{self.rng.randint(1, 99):02d}{self.rng.randint(1, 9999):04d}"
            if area != 666 and (SSN_SYSTEM, value) not in self.used_ids:
                self.used_ids.add((SSN_SYSTEM, value))
                self.ssn[person_id] = value
        self.ssn_recorded.add(person_id)
        return (IdentifierData(system=SSN_SYSTEM, value=self.ssn[person_id], type="SS", use="official"),)

    def address(self, avoid: AddressData | None = None) -> AddressData:
        rng = self.rng
        while True:
            city, state, zips, _, _ = self.t["city"].draw(rng)
            number = rng.randint(1, 250) if rng.random() < 0.8 else rng.randint(251, 2400)
            lines = [f"{number} {rng.choice(_STREETS)} {self.t['street_type'].draw(rng)}"]
            if rng.random() < 0.2:
                lines.append(rng.choice(("Apt {}", "Unit {}", "#{}")).format(rng.randint(1, 40)))
            address = AddressData(
                line=tuple(lines),
                city=city,
                state=state,
                postal_code=rng.choice(zips),
                country="US",
                use="home",
            )
            if avoid is None or (address.line, address.city) != (avoid.line, avoid.city):
                return address

    def phone(self, city: str, use: str) -> ContactData:
        rng = self.rng
        exchange = rng.randint(201, 998)
        while exchange % 100 == 11 or exchange == 555:  # N11 codes and 555 are no subscriber exchanges
            exchange = rng.randint(201, 998)
        area = rng.choice(_AREA_CODES.get(city, ("617", "508", "781", "978")))
        value = rng.choice(_PHONE_FORMATS).format(
            a=area, e=f"{exchange:03d}", l=f"{rng.randint(1, 9999):04d}"
        )
        return ContactData(system="phone", value=value, use=use)

    def email(self, given: str, family: str, birth: date) -> ContactData:
        g, f = (fold_accents(x).lower().replace("'", "").replace(" ", "") for x in (given, family))
        local = self.rng.choice((f"{g}.{f}", f"{g[0]}{f}", f"{g}{f}{birth.year % 100:02d}", f"{g}_{f}"))
        domain = self.rng.choice(_EMAIL_DOMAINS)
        email, n = f"{local}@{domain}", 1
        while email in self.used_emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.used_emails.add(email)
        return ContactData(system="email", value=email, use="home")

    def person(self, person_id: int) -> PatientData:
        rng = self.rng
        gender = rng.choices(("female", "male", "other", "unknown"), cum_weights=(49, 98, 99, 100))[0]
        given, family = self.given_name(gender), self.family_name()
        if rng.random() < 0.10:  # non-ASCII or punctuated names
            which = rng.choice(("family", "given", "both"))
            if which != "given":
                family = rng.choice(_INTL_FAMILY)
            if which != "family":
                given = rng.choice(_INTL_GIVEN.get(gender, _INTL_GIVEN["female"] + _INTL_GIVEN["male"]))
        givens = (given,)
        if rng.random() < 0.35:
            middle = self.given_name(gender)
            givens = (given, middle) if middle != given else givens
        suffix = ()
        if gender == "male" and rng.random() < 0.03:
            suffix = (rng.choice(("Jr.", "Sr.", "II", "III")),)
        age = rng.choices((0, 18, 35, 55, 75), cum_weights=(22, 44, 70, 92, 100))[0]
        age += rng.randint(0, {0: 17, 18: 16, 35: 19, 55: 19, 75: 24}[age])
        birth = REFERENCE_DATE - timedelta(days=365 * age + rng.randint(1, 364))
        facility = self.t["facility"].draw(rng)
        identifiers = (self.mrn(facility),)
        if rng.random() < 0.25:  # also seen at a second facility
            identifiers += (self.mrn(rng.choice([f for f in FACILITIES if f != facility])),)
        address = self.address() if rng.random() < 0.95 else None
        city = address.city if address else ""
        contacts = ()
        if rng.random() < 0.9:
            contacts += (self.phone(city, rng.choice(("mobile", "home"))),)
            if rng.random() < 0.15:
                contacts += (self.phone(city, "work"),)
        if age >= 16 and rng.random() < 0.55:
            contacts += (self.email(given, family, birth),)
        deceased_at = None
        if age >= 75 and rng.random() < 0.05:
            deceased_at = datetime.combine(
                REFERENCE_DATE - timedelta(days=rng.randint(1, 1500)), time(12), UTC
            )
        marital = ""
        if age >= 18:
            marital = rng.choices(("M", "S", "D", "W", ""), cum_weights=(45, 75, 85, 90, 100))[0]
        return PatientData(
            names=(NameData(family=family, given=givens, suffix=suffix, use="official"),),
            identifiers=identifiers + self.ssn_identifier(person_id),
            addresses=(address,) if address else (),
            contacts=contacts,
            gender=gender,
            birth_date=birth,
            deceased=deceased_at is not None,
            deceased_at=deceased_at,
            marital_status=marital,
        )

    def twin(self, first: PatientData, person_id: int) -> PatientData:
        """A sibling born the same day: same family, birth date, address and phone.

        The first twin must have ``multiple_birth_order=1``; this one gets 2.
        """
        rng, first_name = self.rng, first.names[0]
        gender = first.gender if rng.random() < 0.6 else rng.choice(("female", "male"))
        taken = {g.lower() for g in first_name.given} | {n.lower() for n in nicknames_of(first_name.given[0])}
        given = self.given_name(gender)
        # Not a nickname of the other twin's name either way round: that would be a duplicate.
        while given.lower() in taken or first_name.given[0] in nicknames_of(given):
            given = self.given_name(gender)
        mrn = first.identifiers[0]
        facility = next(f for f in FACILITIES if f.identifier_system == mrn.system)
        # Born in the same hospital the same day: the next free MRN there.
        identifiers = (self.mrn(facility, after=_digits(mrn.value)), *self.ssn_identifier(person_id))
        contacts = tuple(c for c in first.contacts if c.system == "phone")[:1]
        if age_of(first) >= 16 and rng.random() < 0.55:
            contacts += (self.email(given, first_name.family, first.birth_date),)
        return replace(
            first,
            names=(NameData(family=first_name.family, given=(given,), use="official"),),
            identifiers=identifiers,
            contacts=contacts,
            gender=gender,
            marital_status="" if age_of(first) < 18 else rng.choice(("M", "S", "")),
            deceased=False,
            deceased_at=None,
            multiple_birth=True,
            multiple_birth_order=2,
        )
