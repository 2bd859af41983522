"""The slips that turn one person into two records, for planted duplicates.

A duplicate is the same person registered at another facility: its own MRN, no SSN
(the registry would refuse a second one), and one to three of the changes below.
Birth-date slips include some that candidate retrieval does not look up directly
(another day of the same month), so recall is not measured on our own assumptions only.
"""

from __future__ import annotations

import string
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from patients.data import ContactData, IdentifierData, PatientData
from search.bench.generator import OTHER_MRN_SYSTEM, with_names

if TYPE_CHECKING:
    from search.bench.generator import PeopleGenerator

# kind -> relative weight. Phones are often missing or different: otherwise the
# phone block alone would find most duplicates and the benchmark would prove little.
CORRUPTIONS = {
    "family_typo": 3,
    "given_typo": 3,
    "nickname": 2,
    "swapped_names": 1,
    "date_slip": 3,
    "missing_phone": 4,
    "new_phone": 2,
    "moved": 3,
    "married_name": 1,
    "middle_name": 1,
    "missing_birth_date": 0.3,
}


class Corruptor:
    def __init__(self, generator: PeopleGenerator) -> None:
        self.g = generator
        self.rng = generator.rng

    def typo(self, word: str) -> str:
        if len(word) < 3:
            return word + self.rng.choice(string.ascii_lowercase)
        i = self.rng.randrange(len(word))
        letter = self.rng.choice(string.ascii_lowercase)
        kind = self.rng.choice(("substitute", "delete", "insert", "transpose"))
        if kind == "substitute":
            out = word[:i] + letter + word[i + 1 :]
        elif kind == "delete":
            out = word[:i] + word[i + 1 :]
        elif kind == "insert":
            out = word[:i] + letter + word[i:]
        else:
            i = min(i, len(word) - 2)
            out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        out = out if out.lower() != word.lower() else word + letter
        return out[:1].upper() + out[1:]

    def date_slip(self, born: date) -> date:
        rng, y, m, d = self.rng, born.year, born.month, born.day
        options = [
            lambda: date(y, d, m),  # day and month swapped
            lambda: date(int(str(y)[:2] + str(y)[3] + str(y)[2]), m, d),  # 1980 -> 1908
            lambda: born + timedelta(days=rng.choice((-1, 1))),
            lambda: date(y + rng.choice((-1, 1)), m, d),
            lambda: date(y, m, int(f"{d:02d}"[::-1])),  # 12 -> 21
            lambda: date(y, m, rng.randint(1, 28)),  # another day: not a looked-up variant
        ]
        for _ in range(10):
            try:
                slipped = rng.choice(options)()
            except ValueError:
                continue
            if slipped != born and slipped <= date(2025, 1, 1):
                return slipped
        return born + timedelta(days=1)

    def apply(self, data: PatientData, kind: str) -> PatientData:
        name = data.names[0]
        given = name.given
        if kind == "family_typo":
            return with_names(data, self.typo(name.family), given)
        if kind == "given_typo":
            return with_names(data, name.family, (self.typo(given[0]), *given[1:]))
        if kind == "nickname":
            nicks = sorted(self.g.nicknames.nicknames_of(given[0].lower()))
            first = self.rng.choice(nicks).title() if nicks else self.typo(given[0])
            return with_names(data, name.family, (first, *given[1:]))
        if kind == "swapped_names":
            return with_names(data, given[0], (name.family,))
        if kind == "married_name":
            return with_names(data, self.g.surname(), given)
        if kind == "middle_name":
            return with_names(
                data, name.family, given[:1] if len(given) > 1 else (*given, self.g.given(data.gender))
            )
        if kind == "date_slip" and data.birth_date:
            return replace(data, birth_date=self.date_slip(data.birth_date))
        if kind == "missing_birth_date":
            return replace(data, birth_date=None)
        if kind in ("missing_phone", "new_phone"):
            contacts = tuple(c for c in data.contacts if c.system != "phone")
            if kind == "new_phone":
                phone = self.g.phone()
                contacts += (ContactData(system="phone", value=phone, normalized_value=phone),)
            return replace(data, contacts=contacts)
        if kind == "moved":
            return replace(data, addresses=(self.g.address(),))
        return data

    def duplicate(self, original: PatientData, position: int) -> tuple[PatientData, tuple[str, ...]]:
        kinds = list(CORRUPTIONS)
        count = self.rng.choices((1, 2, 3), weights=(4, 4, 2))[0]
        chosen: list[str] = []
        while len(chosen) < count:
            kind = self.rng.choices(kinds, weights=list(CORRUPTIONS.values()))[0]
            if kind not in chosen:
                chosen.append(kind)
        data = replace(
            original,
            identifiers=(IdentifierData(system=OTHER_MRN_SYSTEM, value=f"B{position:08d}", type="MR"),),
            # Email addresses are often left out at a second registration.
            contacts=tuple(c for c in original.contacts if c.system != "email" or self.rng.random() < 0.5),
        )
        for kind in chosen:
            data = self.apply(data, kind)
        return data, tuple(chosen)
