"""Synthetic patients with planted duplicates, for the search benchmark only.

Census-like name frequencies ("Smith" about 0.8%, then a long tail of rarer names),
households that share a family name, address and phone (look-alikes that are not
duplicates), and duplicates registered "at another facility" with the slips clerks
make. Seeded and pure: the same seed gives the same people. The data is already in
normalised form (E.164 phones, lower-case emails), as ``clean_patient_data`` leaves it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta

from nicknames import NickNamer

from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.7001"  # the first facility
OTHER_MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.7002"  # where duplicates get registered
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


def _words(text: str) -> list[str]:
    return text.split()


SURNAMES = _words("""smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez
gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez
clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green
adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz
parker cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan
cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood
james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster
jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher
vasquez simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno
west cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall
owens harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb
tucker guzman burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason""")
# Names with accents, apostrophes and two parts, to exercise normalisation.
SPECIAL_SURNAMES = [
    "Müller", "García Márquez", "Núñez", "O'Brien", "Schröder", "Smith-Jones", "Østergaard",
    "Dvořák", "Łukasik", "van der Berg", "D'Angelo", "Pérez-Reverte", "Nowak", "Ní Bhriain",
]  # fmt: skip
MALE = _words("""james john robert michael william david richard joseph thomas charles christopher daniel
matthew anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward
jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel
gregory alexander frank patrick raymond jack dennis jerry tyler aaron jose adam nathan henry douglas
zachary peter kyle ethan walter noah jeremy christian keith roger terry gerald harold sean austin carl
arthur lawrence dylan jesse jordan bryan billy joe bruce gabriel logan albert willie alan juan wayne
elijah randy roy vincent ralph eugene russell bobby mason philip louis""")
FEMALE = _words("""mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty
margaret sandra ashley kimberly emily donna michelle carol amanda dorothy melissa deborah stephanie
rebecca sharon laura cynthia kathleen amy angela shirley anna brenda pamela emma nicole helen samantha
katherine christine debra rachel carolyn janet catherine maria heather diane ruth julie olivia joyce
virginia victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah jacqueline
martha gloria teresa ann sara madison frances kathryn janice jean abigail alice judy sophia grace denise
amber doris marilyn danielle beverly isabella theresa diana natalie brittany charlotte marie kayla
alexis lori""")
_ONSETS = _words("b br c ch d dr f g gr h j k kr l m n p pr r s sh st t tr v w y z")
_VOWELS = _words("a e i o u ai ea ou ie")
_CODAS = _words("n r l s t nd rk ll ss tt m ck rn")
_ENDINGS = _words("ton son ley man berg wood field er ford ski ez ini ov sen well by ham rick stein land")
CITIES = [
    ("Boston", "MA", "021"), ("Springfield", "IL", "627"), ("Portland", "OR", "972"), ("Austin", "TX", "787"),
    ("Denver", "CO", "802"), ("Columbus", "OH", "432"), ("Madison", "WI", "537"), ("Raleigh", "NC", "276"),
    ("Phoenix", "AZ", "850"), ("Albany", "NY", "122"), ("Richmond", "VA", "232"), ("Salem", "OR", "973"),
    ("Trenton", "NJ", "086"), ("Dover", "DE", "199"), ("Helena", "MT", "596"), ("Lincoln", "NE", "685"),
]  # fmt: skip
STREETS = _words("Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Church Mill River Spring")


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1 / (rank**exponent) for rank in range(1, count + 1)))


def _made_up_names(rng: random.Random, count: int) -> list[str]:
    """Pronounceable names in random order (the order sets their frequency rank)."""
    names: set[str] = set()
    while len(names) < count:
        stem = rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
        if rng.random() < 0.5:
            stem += rng.choice(_VOWELS) + rng.choice(_CODAS)
        names.add(stem + (rng.choice(_ENDINGS) if rng.random() < 0.6 else ""))
    ordered = sorted(names)
    rng.shuffle(ordered)
    return ordered


@dataclass(frozen=True)
class Generated:
    data: PatientData
    # For a planted duplicate: the position of its original, and what was changed.
    duplicate_of: int | None = None
    corruptions: tuple[str, ...] = ()


class PeopleGenerator:
    """``people(n)`` yields ``n`` records; about ``duplicate_rate`` of them are
    planted duplicates of a record yielded just before."""

    def __init__(self, seed: int, *, duplicate_rate: float = 0.05, household_rate: float = 0.1):
        self.seed = seed
        self.rng = random.Random(seed)
        self.duplicate_rate = duplicate_rate
        self.household_rate = household_rate
        self.nicknames = NickNamer()
        self.tail_surnames = _made_up_names(random.Random(seed + 1), 40_000)
        self.tail_given = _made_up_names(random.Random(seed + 2), 4_000)
        self._surname_cum = _zipf_cumulative(len(SURNAMES), 0.5)
        self._tail_cum = _zipf_cumulative(len(self.tail_surnames), 0.5)
        self._male_cum = _zipf_cumulative(len(MALE), 0.6)
        self._female_cum = _zipf_cumulative(len(FEMALE), 0.6)
        self._tail_given_cum = _zipf_cumulative(len(self.tail_given), 0.7)
        self.days = (date(2023, 12, 31) - date(1930, 1, 1)).days

    # -- attributes ---------------------------------------------------------------
    def surname(self) -> str:
        r = self.rng.random()
        if r < 0.01:
            return self.rng.choice(SPECIAL_SURNAMES)
        if r < 0.25:  # the common names: Smith ~0.8% of everyone
            return self.rng.choices(SURNAMES, cum_weights=self._surname_cum)[0].title()
        return self.rng.choices(self.tail_surnames, cum_weights=self._tail_cum)[0].title()

    def given(self, gender: str) -> str:
        if self.rng.random() < 0.15:
            return self.rng.choices(self.tail_given, cum_weights=self._tail_given_cum)[0].title()
        names, cum = (MALE, self._male_cum) if gender == "male" else (FEMALE, self._female_cum)
        return self.rng.choices(names, cum_weights=cum)[0].title()

    def phone(self) -> str:
        rng = self.rng
        return f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"

    def address(self) -> AddressData:
        city, state, zip3 = self.rng.choice(CITIES)
        return AddressData(
            line=(f"{self.rng.randint(1, 999)} {self.rng.choice(STREETS)} St",),
            city=city,
            state=state,
            postal_code=f"{zip3}{self.rng.randint(0, 99):02d}",
            country="US",
            use="home",
            primary=True,
        )

    def person(self, position: int, household: PatientData | None = None) -> PatientData:
        rng = self.rng
        gender = rng.choice(("male", "female"))
        given = [self.given(gender)] + ([self.given(gender)] if rng.random() < 0.3 else [])
        family = household.names[0].family if household else self.surname()
        contacts = []
        if household and household.contacts and household.contacts[0].system == "phone":
            contacts.append(household.contacts[0])
        elif rng.random() < 0.85:
            phone = self.phone()
            contacts.append(ContactData(system="phone", value=phone, normalized_value=phone, use="home"))
        if rng.random() < 0.4:
            email = f"{given[0]}.{family}{rng.randint(1, 999)}@example.org".lower().replace(" ", "")
            contacts.append(ContactData(system="email", value=email, normalized_value=email))
        identifiers = [IdentifierData(system=MRN_SYSTEM, value=f"A{position:08d}", type="MR")]
        if rng.random() < 0.3:
            ssn = 100_000_000 + position
            identifiers.append(
                IdentifierData(
                    system=SSN_SYSTEM,
                    value=f"{ssn // 1000000:03d}-{ssn // 10000 % 100:02d}-{ssn % 10000:04d}",
                    type="SS",
                )
            )
        return PatientData(
            names=(NameData(family=family, given=tuple(given), use="official", primary=True),),
            identifiers=tuple(identifiers),
            addresses=(household.addresses if household else (self.address(),)),
            contacts=tuple(contacts),
            gender=gender,
            birth_date=date(1930, 1, 1) + timedelta(days=rng.randint(0, self.days)),
        )

    def chunk(self, index: int, size: int, count: int) -> Iterator[Generated]:
        """Records ``index * size`` up to ``(index + 1) * size`` (at most ``count``).

        Each chunk has its own random stream, so chunks can be generated in parallel
        and in any order with the same result; duplicates stay within their chunk.
        """
        from search.bench.corrupt import Corruptor

        self.rng.seed(f"{self.seed}:{index}")
        corruptor = Corruptor(self)
        previous: PatientData | None = None
        for position in range(index * size, min(count, (index + 1) * size)):
            if previous is not None and self.rng.random() < self.duplicate_rate:
                data, kinds = corruptor.duplicate(previous, position)
                yield Generated(data, duplicate_of=position - 1, corruptions=kinds)
                previous = None  # no duplicate of a duplicate
                continue
            household = previous if previous is not None and self.rng.random() < self.household_rate else None
            previous = self.person(position, household)
            yield Generated(previous)

    def people(self, count: int, size: int = 5000) -> Iterator[Generated]:
        for index in range(-(-count // size)):
            yield from self.chunk(index, size, count)


def with_names(data: PatientData, family: str, given: tuple[str, ...]) -> PatientData:
    return replace(data, names=(replace(data.names[0], family=family, given=given),))
