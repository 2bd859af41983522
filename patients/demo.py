"""Demo data: synthetic patients with planted duplicates and twins, and the ground truth.

Pure and database-free. ``generate_demo(n, seed)`` gives the same records for the same
arguments on every machine: one ``random.Random(seed)``, a fixed "today"
(``REFERENCE_DATE``), no clock and no iteration over sets.

A *person* is a real human; a *record* is one registration of them. The clean first
record of each person comes from ``patients.demo_population``. A *duplicate* is one
more record of a person as another facility would have registered it (an MRN of a
facility none of the person's records has, or none at all: a live identifier is unique)
with one or two of the ``CORRUPTIONS``. *Twins* are two persons sharing family name,
birth date, address and phone with different given names: never duplicates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from random import Random

from patients.data import IdentifierData, NameData, PatientData
from patients.demo_population import (
    FACILITIES,
    REFERENCE_DATE,
    SSN_SYSTEM,
    Facility,
    Population,
    age_of,
    fold_accents,
    nicknames_of,
)

__all__ = [
    "CORRUPTIONS",
    "FACILITIES",
    "REFERENCE_DATE",
    "SSN_SYSTEM",
    "TRUTH_COLUMNS",
    "DemoRecord",
    "DemoSet",
    "Facility",
    "generate_demo",
]

DUPLICATE_RATE = 0.17  # share of records that are duplicates of another record
SECONDARY_RATE = 0.35  # share of duplicates with a second corruption
MAX_DUPLICATES_PER_PERSON = 2

ORIGINAL, DUPLICATE, TWIN = "original", "duplicate", "twin"
# The planted corruptions, in the order they are applied to one duplicate: name changes
# first, so that accents are dropped from and capitals applied to the final name.
CORRUPTIONS = (
    "married-name", "nickname", "typo-family", "typo-given", "swapped-names", "transposed-date",
    "moved-address", "missing-phone", "missing-email", "missing-address", "missing-birth-date",
    "accents-dropped", "upper-case",
)  # fmt: skip
# Pairs that would undo or hide each other on one record.
_CONFLICTS = {
    frozenset(pair)
    for pair in (
        ("nickname", "typo-given"),
        ("married-name", "swapped-names"),
        ("moved-address", "missing-address"),
        ("transposed-date", "missing-birth-date"),
    )
}
TRUTH_COLUMNS = ("patient_uuid", "person_id", "record_kind", "corruption", "twin_person_id")


@dataclass(frozen=True)
class DemoRecord:
    data: PatientData
    person_id: int  # records sharing it are the same person
    kind: str  # "original", "duplicate" or "twin"
    corruptions: tuple[str, ...] = ()  # a duplicate's planted kinds, in CORRUPTIONS order
    twin_person_id: int | None = None

    def truth_row(self, patient_uuid) -> dict[str, str]:
        """This record's line of the ground-truth file (columns TRUTH_COLUMNS)."""
        twin = "" if self.twin_person_id is None else str(self.twin_person_id)
        values = (str(patient_uuid), str(self.person_id), self.kind, ";".join(self.corruptions), twin)
        return dict(zip(TRUTH_COLUMNS, values, strict=True))


@dataclass(frozen=True)
class DemoSet:
    seed: int
    records: tuple[DemoRecord, ...]

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def twin_pairs(self) -> tuple[tuple[int, int], ...]:
        """(person_id, person_id) of each pair of twins, lower id first."""
        pairs = {(r.person_id, r.twin_person_id) for r in self.records if r.kind == TWIN}
        return tuple(sorted(p for p in pairs if p[0] < p[1]))

    def corruption_counts(self) -> Counter:
        return Counter(c for r in self.records for c in r.corruptions)


def _name(data: PatientData) -> NameData:
    return data.names[0]


def _with_name(data: PatientData, **changes) -> PatientData:
    return replace(data, names=(replace(_name(data), **changes), *data.names[1:]))


def _full_name(data: PatientData) -> str:
    return " ".join([*_name(data).given, _name(data).family])


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _has(data: PatientData, system: str) -> bool:
    return any(c.system == system for c in data.contacts)


def _transposable(born) -> bool:
    return born is not None and born.day <= 12 and born.day != born.month


# Whether a corruption can be planted on a record as it is at that point.
_APPLIES = {
    "married-name": lambda d: d.gender == "female" and age_of(d) >= 20 and bool(_name(d).family),
    "nickname": lambda d: bool(_name(d).given) and bool(nicknames_of(_name(d).given[0])),
    "typo-family": lambda d: _letters(_name(d).family) >= 3,
    "typo-given": lambda d: bool(_name(d).given) and _letters(_name(d).given[0]) >= 3,
    "swapped-names": lambda d: bool(_name(d).given) and _name(d).given[0] != _name(d).family,
    "transposed-date": lambda d: _transposable(d.birth_date),
    "moved-address": lambda d: bool(d.addresses),
    "missing-phone": lambda d: _has(d, "phone"),
    "missing-email": lambda d: _has(d, "email"),
    "missing-address": lambda d: bool(d.addresses),
    "missing-birth-date": lambda d: d.birth_date is not None,
    "accents-dropped": lambda d: fold_accents(_full_name(d)) != _full_name(d),
    "upper-case": lambda d: _full_name(d).upper() != _full_name(d),
}


def _typo(rng: Random, text: str) -> str:
    """One keying error: a letter inserted, deleted, substituted, or two transposed.

    The first letter is kept: initial errors are rarer, and blocking on a phonetic key
    of the family name would miss them all.
    """
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    while True:
        letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
        letter = letter.upper() if text.isupper() else letter
        op, i = rng.choice(("insert", "delete", "substitute", "transpose")), rng.choice(letters[1:])
        if op == "insert":
            out = text[:i] + letter + text[i:]
        elif op == "delete":
            out = text[:i] + text[i + 1 :]
        elif op == "substitute":
            out = text[:i] + letter + text[i + 1 :]
        else:  # with the letter before it, when that is right before it
            out = text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :] if i - 1 in letters else text
        if out.lower() != text.lower():
            return out


def _corrupt(pop: Population, data: PatientData, kind: str) -> PatientData:
    name, rng = _name(data), pop.rng
    if kind == "married-name":
        family = pop.family_name()
        while family == name.family:
            family = pop.family_name()
        if rng.random() < 0.15:
            family = f"{name.family}-{family}"
        # Some keep the maiden name as a middle name.
        given = (*name.given[:1], name.family) if rng.random() < 0.3 else name.given
        return replace(_with_name(data, family=family, given=given), marital_status="M")
    if kind == "nickname":
        return _with_name(data, given=(rng.choice(nicknames_of(name.given[0])), *name.given[1:]))
    if kind == "typo-family":
        return _with_name(data, family=_typo(rng, name.family))
    if kind == "typo-given":
        return _with_name(data, given=(_typo(rng, name.given[0]), *name.given[1:]))
    if kind == "swapped-names":
        return _with_name(data, family=name.given[0], given=(name.family, *name.given[1:]))
    if kind == "transposed-date":
        born = data.birth_date
        return replace(data, birth_date=born.replace(month=born.day, day=born.month))
    if kind == "moved-address":
        return replace(data, addresses=(pop.address(avoid=data.addresses[0]),))
    if kind in ("missing-phone", "missing-email"):
        system = kind.removeprefix("missing-")
        return replace(data, contacts=tuple(c for c in data.contacts if c.system != system))
    if kind == "missing-address":
        return replace(data, addresses=())
    if kind == "missing-birth-date":
        return replace(data, birth_date=None)
    change = fold_accents if kind == "accents-dropped" else str.upper
    return _with_name(data, family=change(name.family), given=tuple(change(g) for g in name.given))


def _plant(pop: Population, data: PatientData, kinds: list[str]) -> PatientData | None:
    """``data`` with ``kinds`` planted in CORRUPTIONS order; None if one would not show."""
    for kind in sorted(kinds, key=CORRUPTIONS.index):
        if not _APPLIES[kind](data):
            return None
        changed = _corrupt(pop, data, kind)
        if changed == data:
            return None
        data = changed
    return data


def _source_identifiers(pop: Population, person_id: int, held: set[str]) -> tuple[IdentifierData, ...]:
    """A duplicate comes from a facility none of the person's records has an MRN at."""
    free = [f for f in FACILITIES if f.identifier_system not in held]
    mrn = (pop.mrn(pop.rng.choice(free)),) if free and pop.rng.random() < 0.85 else ()
    return mrn + pop.ssn_identifier(person_id)


def _counts(n: int) -> tuple[int, int, int]:
    """(persons without a twin, twin pairs, duplicates) adding up to ``n`` records."""
    pairs = max(1, n // 100) if n >= 20 else 0
    duplicates = min(round(n * DUPLICATE_RATE), max(0, n - 2 * pairs - 1))
    return n - duplicates - 2 * pairs, pairs, duplicates


def generate_demo(n: int, seed: int) -> DemoSet:
    """``n`` records (originals, twins, duplicates) for ``seed``, in registration order."""
    if n < 0:
        raise ValueError("The number of patients cannot be negative.")
    rng = Random(seed)
    pop = Population(rng)
    singles, pairs, n_duplicates = _counts(n)
    records = [DemoRecord(pop.person(pid), pid, ORIGINAL) for pid in range(1, singles + 1)]
    for pid in range(singles + 1, singles + 2 * pairs, 2):
        first = replace(pop.person(pid), multiple_birth=True, multiple_birth_order=1)
        records.append(DemoRecord(first, pid, TWIN, twin_person_id=pid + 1))
        records.append(DemoRecord(pop.twin(first, pid + 1), pid + 1, TWIN, twin_person_id=pid))
    persons = list(records)  # the clean first record of each person
    held = {r.person_id: {i.system for i in r.data.identifiers} for r in records}
    duplicates_of: Counter = Counter()
    round_of_kinds: list[str] = []
    for _ in range(n_duplicates):
        if not round_of_kinds:  # a shuffled round of every kind: even a small set has them all
            round_of_kinds = list(CORRUPTIONS)
            rng.shuffle(round_of_kinds)
        source = None
        for kind in (round_of_kinds.pop(), *rng.sample(CORRUPTIONS, len(CORRUPTIONS))):
            sample = rng.sample(persons, min(40, len(persons)))
            source = next(
                (
                    p
                    for p in sample
                    if duplicates_of[p.person_id] < MAX_DUPLICATES_PER_PERSON and _APPLIES[kind](p.data)
                ),
                None,
            )
            if source is not None:
                break
        if source is None:
            continue  # nothing fits (only in tiny sets): one duplicate fewer
        pid = source.person_id
        data = replace(source.data, identifiers=_source_identifiers(pop, pid, held[pid]))
        held[pid] |= {i.system for i in data.identifiers}
        planted = [kind]
        if rng.random() < SECONDARY_RATE:
            others = [k for k in CORRUPTIONS if k != kind and frozenset((k, kind)) not in _CONFLICTS]
            planted.append(rng.choice(others))
        corrupted = _plant(pop, data, planted)
        if corrupted is None:  # the second one did not fit: the first always does
            planted = [kind]
            corrupted = _plant(pop, data, planted)
        duplicates_of[pid] += 1
        records.append(DemoRecord(corrupted, pid, DUPLICATE, tuple(sorted(planted, key=CORRUPTIONS.index))))
    rng.shuffle(records)
    return DemoSet(seed=seed, records=tuple(records))
