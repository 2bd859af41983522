"""Composite blocking keys: one text per "these two records share X and Y".

A record stores its keys in ``PatientIndex.block_keys`` (one GIN index); a probe
computes the keys it wants to meet, with the tolerances on its side (neighbouring
years, swapped names), so every block is one exact, selective GIN lookup instead of
an intersection of two broad ones. Pure code, shared by the index writer and
candidate retrieval so both sides spell a key the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from search.normalize import name_words, phonetic_codes

# Phonetic algorithms used in keys: metaphone and soundex disagree on different
# typos (Smith/Smiht: soundex agrees, metaphone does not), so a family name keys
# under both. "w" is the raw word, for scripts jellyfish cannot encode.
FAMILY_KEY_ALGORITHMS = ("m", "s", "w")
PREFIX = 3  # letters of a name word in the prefix keys


def _codes(word: str, algorithms: Iterable[str]) -> list[tuple[str, str]]:
    codes = phonetic_codes(word)
    return [(alg, codes[alg]) for alg in algorithms if codes.get(alg)]


def _main_code(word: str) -> str:
    codes = phonetic_codes(word)
    return codes.get("m") or codes.get("w") or ""


def family_year(family_words: Iterable[str], years: Iterable[int]) -> set[str]:
    """Phonetic family name + birth year: "fy:m:SM0:1980"."""
    years = list(years)
    return {
        f"fy:{alg}:{code}:{year}"
        for word in family_words
        for alg, code in _codes(word, FAMILY_KEY_ALGORITHMS)
        for year in years
    }


def date_initial(initials: Iterable[str], birth_date: date) -> set[str]:
    """Exact birth date + the initial of any name word: survives a changed or badly
    mistyped family name, and does not care which name is the family one."""
    iso = birth_date.isoformat()
    return {f"di:{iso}:{initial}" for initial in initials if initial}


def name_pair(family_words: Iterable[str], given_words: Iterable[str]) -> set[str]:
    """Phonetic family + phonetic first given name, no date: survives any date error."""
    given_codes = {c for word in given_words if (c := _main_code(word))}
    return {f"nm:{fc}:{gc}" for word in family_words if (fc := _main_code(word)) for gc in given_codes}


def name_postcode(
    family_words: Iterable[str], given_words: Iterable[str], postcodes: Iterable[str]
) -> set[str]:
    """Phonetic family, or phonetic first given name, + postcode: survives a missing or
    mistyped birth date together with a changed family or given name, as long as the
    address stayed."""
    postcodes = [p for p in postcodes if p]
    names = [("fp", w) for w in family_words] + [("gp", w) for w in given_words]
    return {f"{kind}:{code}:{pc}" for kind, word in names if (code := _main_code(word)) for pc in postcodes}


# Words of an address line that say what kind of street or unit it is, or that there
# is no address: the street's own name is the first word of a line that is not one.
NOT_STREET_NAMES = frozenset(
    {"street", "st", "str", "road", "rd", "avenue", "ave", "av", "place", "pl", "close", "cl", "court", "ct"}
    | {"drive", "dr", "lane", "ln", "way", "crescent", "cres", "terrace", "ter", "tce", "parade", "pde"}
    | {"boulevard", "blvd", "circuit", "cct", "highway", "hwy", "square", "sq", "grove", "gr", "the"}
    | {"north", "south", "east", "west", "apartment", "apt", "flat", "unit", "suite", "ste", "floor"}
    | {"building", "bldg", "po", "box", "rr", "lot", "care", "attn"}
    | {"unknown", "unk", "homeless", "none", "nfa", "no", "fixed", "abode", "address", "declined", "refused"}
)


def street_names(lines: Iterable[str]) -> list[str]:
    """The name word of each address line: its first word of three or more letters
    that is not a street type, a unit or a no-address word ("12 Main St" -> "main")."""
    out = []
    for line in lines:
        word = next((w for w in name_words(line) if len(w) >= 3 and w not in NOT_STREET_NAMES), None)
        if word:
            out.append(word)
    return list(dict.fromkeys(out))


def street_postcode(addresses: Iterable[tuple[Iterable[str], str]]) -> set[str]:
    """Phonetic street name + postcode of the same address, from (lines, postcode key)
    pairs: "ap:MN:02134". Survives a mistyped or changed name together with a missing
    or mistyped birth date, for someone still living at the same address."""
    return {
        f"ap:{code}:{postcode}"
        for lines, postcode in addresses
        if postcode
        for word in street_names(lines)
        if (code := _main_code(word))
    }


def _prefix(word: str) -> str:
    return word[:PREFIX]


def prefix_year(words: Iterable[str], year: int) -> set[str]:
    """First letters of a name word + birth year: "smi jo 1980" typed by a clerk meets
    Smith, John 1980 in one GIN lookup, however common the words."""
    return {f"py:{_prefix(w)}:{year}" for w in words if len(w) > 1}


def prefix_pair(family_words: Iterable[str], given_words: Iterable[str]) -> set[str]:
    """First letters of the family name + of the first given name: partly typed names."""
    given = [g for g in given_words if len(g) > 1]
    return {f"pp:{_prefix(f)}:{_prefix(g)}" for f in family_words if len(f) > 1 for g in given}


def record_keys(
    names: Iterable[tuple[list[str], list[str]]],
    birth_date: date | None,
    postcodes: Iterable[str] = (),
    addresses: Iterable[tuple[Iterable[str], str]] = (),
) -> list[str]:
    """All block keys of one record. ``names`` holds (family tokens, given words) per name,
    ``addresses`` (lines, postcode key) per address."""
    keys: set[str] = street_postcode(addresses)
    postcodes = list(postcodes)
    for family, given in names:
        first_given = given[:1]
        keys |= name_pair(family, first_given)
        keys |= name_postcode(family, first_given, postcodes)
        keys |= prefix_pair(family, first_given)
        if birth_date:
            keys |= prefix_year([*family, *given], birth_date.year)
            keys |= family_year(family, [birth_date.year])
            keys |= date_initial({w[0] for w in [*family, *first_given]}, birth_date)
    return sorted(keys)
