"""The compared fields and their comparison levels.

Each field has *scored* levels, ordered from the strongest agreement to outright
disagreement (each gets an m and a u probability in the model), and *neutral* levels
that say why the field says nothing about the pair (a value is missing, a value is a
placeholder, ...). Neutral levels weigh 0 unless the parameter set gives them a fixed
weight, and EM never learns them.

The scored levels' m (and u) probabilities are conditional on the comparison being
scored at all, so for every field they sum to 1 over the scored levels.
"""

from __future__ import annotations

FAMILY = "family"
GIVEN = "given"
BIRTH_DATE = "birth_date"
GENDER = "gender"
POSTCODE = "postcode"
ADDRESS = "address"
CITY = "city"
PHONE = "phone"
EMAIL = "email"
IDENTIFIER = "identifier"
MULTIPLE_BIRTH = "multiple_birth"
GENERATION = "generation"

# Level names shared by several fields.
EXACT = "exact"
JW_HIGH = "jw_high"
JW_MID = "jw_mid"
PHONETIC = "phonetic"
PARTIAL = "partial"
SWAPPED = "swapped"
NICKNAME = "nickname"
MIDDLE = "middle"
INITIAL = "initial"
TRANSPOSED = "transposed"
YEAR_OFF_BY_ONE = "year_off_by_one"
ONE_OFF = "one_off"
TYPO = "typo"
LAST7 = "last7"
LOCAL_CLOSE = "local_close"
CLOSE = "close"
CONFLICT = "conflict"
SAME = "same"
DIFFERS = "differs"
DISAGREE = "disagree"

MISSING = "missing"
PLACEHOLDER = "placeholder"
IMPLIED = "implied"
UNRELATED = "unrelated"

# Scored levels, strongest agreement first. When a record has several values (names,
# addresses, phones), the comparator keeps the pair with the earliest level here.
SCORED_LEVELS: dict[str, tuple[str, ...]] = {
    # "swapped": family and given names swapped between the records; the whole swap is
    # scored here once, and the given-name field then reports the neutral "swapped".
    FAMILY: (EXACT, JW_HIGH, PHONETIC, PARTIAL, SWAPPED, JW_MID, DISAGREE),
    # "middle": one record's first given name is the other's middle name.
    GIVEN: (EXACT, NICKNAME, JW_HIGH, MIDDLE, INITIAL, JW_MID, DISAGREE),
    # "one_off": two of year, month and day agree (a typo in the third).
    BIRTH_DATE: (EXACT, TRANSPOSED, YEAR_OFF_BY_ONE, ONE_OFF, DISAGREE),
    GENDER: (EXACT, DISAGREE),
    # "typo": one edit or transposition; "partial": same first three characters (the
    # US sectional centre, most of a UK outward code).
    POSTCODE: (EXACT, TYPO, PARTIAL, DISAGREE),
    # "partial": every word of the shorter address line is in the longer one.
    ADDRESS: (EXACT, JW_HIGH, PARTIAL, JW_MID, DISAGREE),
    CITY: (EXACT, JW_HIGH, DISAGREE),
    PHONE: (EXACT, LAST7, DISAGREE),
    EMAIL: (EXACT, LOCAL_CLOSE, DISAGREE),
    # "close" and "conflict" only for systems that allow one value per person
    # (national ids): a different MRN from the same hospital is the very duplicate we
    # are looking for, so it is neutral ("unrelated").
    IDENTIFIER: (EXACT, CLOSE, CONFLICT),
    # Both records give a multiple-birth order: the same one, or a different one.
    MULTIPLE_BIRTH: (SAME, DIFFERS),
    # Generational name suffixes (Jr, Sr, III) given on both records.
    GENERATION: (SAME, DIFFERS),
}

NEUTRAL_LEVELS: dict[str, tuple[str, ...]] = {
    FAMILY: (MISSING, PLACEHOLDER),
    GIVEN: (SWAPPED, MISSING, PLACEHOLDER),
    BIRTH_DATE: (MISSING, PLACEHOLDER),
    GENDER: (MISSING,),
    POSTCODE: (MISSING, PLACEHOLDER),
    ADDRESS: (MISSING, PLACEHOLDER),
    # The postcode already agrees exactly: the city adds nothing (it would be counted
    # twice, as the two are not independent).
    CITY: (IMPLIED, MISSING),
    PHONE: (MISSING, PLACEHOLDER),
    EMAIL: (MISSING, PLACEHOLDER),
    IDENTIFIER: (UNRELATED, MISSING, PLACEHOLDER),
    MULTIPLE_BIRTH: (MISSING,),
    GENERATION: (MISSING,),
}

FIELDS: tuple[str, ...] = tuple(SCORED_LEVELS)


def is_scored(field: str, level: str) -> bool:
    return level in SCORED_LEVELS[field]


def all_levels(field: str) -> tuple[str, ...]:
    return SCORED_LEVELS[field] + NEUTRAL_LEVELS[field]
