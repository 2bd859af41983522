"""Per-record precomputation for the comparators.

``prepare(record)`` folds, tokenises and encodes (metaphone, NYSIIS, nickname groups)
every value of a ``PatientData`` once, so that scoring a probe against 200 candidates,
or millions of pairs in batch detection, does not redo that work for every pair.
Pure code: no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import jellyfish
from nicknames import NickNamer

from matching import placeholders
from matching.normalize import address_tokens, digits, email_key, fold, fold_keys, postcode_key, tokens
from patients.codes import PHONE_SYSTEMS, ContactSystem, Gender
from patients.data import NameData, PatientData

# Surname particles: sharing only "de" or "van" is not a partly agreeing double surname.
SURNAME_PARTICLES = frozenset(
    {"de", "del", "della", "der", "den", "di", "da", "das", "do", "dos", "du", "la", "le", "lo"}
    | {"van", "von", "ter", "ten", "bin", "ibn", "al", "el", "y", "e", "mac", "mc", "st", "saint"}
)
GENERATION_SUFFIXES = frozenset({"jr", "junior", "sr", "senior", "ii", "iii", "iv", "v", "2nd", "3rd", "4th"})
_GENERATION_ALIASES = {"junior": "jr", "senior": "sr", "2nd": "ii", "3rd": "iii", "4th": "iv"}
# "Smith Jr." typed into the family (or given) field instead of the suffix field.
_TRAILING_GENERATION = re.compile(
    r"^(.*\S)[\s,]+(jr|junior|sr|senior|ii|iii|iv|2nd|3rd|4th)\.?$", re.IGNORECASE
)


def _split_generation(text: str) -> tuple[str, str | None]:
    match = _TRAILING_GENERATION.match(text)
    if not match:
        return text, None
    generation = match.group(2).lower()
    return match.group(1), _GENERATION_ALIASES.get(generation, generation)


@lru_cache(maxsize=1)
def _nicknamer() -> NickNamer:
    return NickNamer()


@lru_cache(maxsize=20000)
def nickname_groups(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names directly related to ``name``, the canonical forms of ``name``).

    From the maintained ``nicknames`` list (carltonnorthern/nicknames): Bill is a
    nickname of William, Peggy of Margaret. Two names are nickname-equivalent when one
    is related to the other or they share a canonical form (Bill and Billy: William).
    """
    nn = _nicknamer()
    canon = frozenset(nn.canonicals_of(name)) | {name}
    return frozenset(nn.nicknames_of(name)) | canon, canon


def family_tf_key(family: str) -> str:
    """The key under which the index must count a family name for term frequencies.

    It is the ``FieldComparison.tf_key`` of an exact family-name agreement.
    """
    return fold(_split_generation(family)[0])


def given_tf_key(given: tuple[str, ...] | list[str]) -> str:
    """The same for given names: the folded first given word ("Mary Ann" -> "mary")."""
    if given:
        given = (*given[:-1], _split_generation(given[-1])[0])
    words = [t for g in given for t in tokens(g)]
    return words[0] if words else ""


@dataclass(frozen=True, slots=True)
class PreparedFamily:
    display: str
    key: str
    keys: frozenset[str]
    parts: frozenset[str]  # its words (of a double/hyphenated surname), particles left out
    metaphone: str
    nysiis: str
    placeholder: bool


@dataclass(frozen=True, slots=True)
class PreparedGiven:
    display: str
    first: str  # folded first given name
    keys: frozenset[str]  # spellings of the first given name (umlauts) and of all joined
    rest: tuple[str, ...]  # folded middle names
    related: frozenset[str]
    canon: frozenset[str]
    placeholder: bool


@dataclass(frozen=True, slots=True)
class PreparedName:
    family: PreparedFamily | None
    given: PreparedGiven | None


@dataclass(frozen=True, slots=True)
class PreparedAddress:
    display: str
    key: str  # folded words, abbreviations applied, joined
    sorted_key: str  # the same words in alphabetical order: line order does not matter
    # Folded words as typed (no abbreviations): a mistyped "Stret" or "Plcae" escapes
    # the abbreviation table, and then only the written-out forms stay one typo apart.
    raw_key: str
    words: frozenset[str]
    numbers: frozenset[str]


@dataclass(frozen=True, slots=True)
class PreparedPhone:
    display: str
    digits: str


@dataclass(frozen=True, slots=True)
class PreparedEmail:
    display: str
    local: str
    domain: str


@dataclass(frozen=True, slots=True)
class PreparedIdentifier:
    system: str
    type: str
    display: str
    key: str
    old: bool
    placeholder: bool


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    names: tuple[PreparedName, ...]
    # The names' non-placeholder family and given parts; any_*: a value, placeholder or not.
    families: tuple[PreparedFamily, ...]
    givens: tuple[PreparedGiven, ...]
    any_family: bool
    any_given: bool
    birth_date: date | None
    birth_date_text: str
    birth_date_placeholder: bool
    gender: str
    # Placeholder values are left out of these; any_*: a value, placeholder or not.
    postcodes: tuple[tuple[str, str], ...]  # (display, key)
    any_postcode: bool
    addresses: tuple[PreparedAddress, ...]
    any_address: bool
    cities: tuple[tuple[str, str], ...]  # (display, key); "Unknown" is left out
    phones: tuple[PreparedPhone, ...]
    any_phone: bool
    emails: tuple[PreparedEmail, ...]
    any_email: bool
    identifiers: tuple[PreparedIdentifier, ...]
    multiple_birth_order: int | None
    generations: frozenset[str]


def _prepare_family(family: str, given_first: str) -> PreparedFamily | None:
    key = fold(family)
    if not key:
        return None
    words = tokens(family)
    parts = frozenset(w for w in words if len(w) >= 3 and w not in SURNAME_PARTICLES)
    placeholder = placeholders.is_placeholder_family(key) or placeholders.is_placeholder_full_name(
        key, given_first
    )
    return PreparedFamily(
        display=family,
        key=key,
        keys=fold_keys(family),
        parts=parts,
        metaphone=jellyfish.metaphone(key),
        nysiis=jellyfish.nysiis(key),
        placeholder=placeholder,
    )


def _prepare_given(given: tuple[str, ...], family_key: str) -> PreparedGiven | None:
    words = tuple(t for g in given for t in tokens(g))
    if not words:
        return None
    first = words[0]
    related, canon = nickname_groups(first)
    # The umlauts-written-out spelling too, so that Jürgen agrees exactly with Juergen.
    words_de = tuple(t for g in given for t in tokens(g, umlauts=True))
    keys = {first, "".join(words), words_de[0], "".join(words_de)}
    placeholder = placeholders.is_placeholder_given(words) or placeholders.is_placeholder_full_name(
        family_key, first
    )
    return PreparedGiven(
        display=" ".join(given),
        first=first,
        keys=frozenset(keys),
        rest=words[1:],
        related=related,
        canon=canon,
        placeholder=placeholder,
    )


def _prepare_name(name: NameData, generations: set[str]) -> PreparedName | None:
    family, given = name.family, tuple(name.given)
    if not family and not given and name.text:
        # Only a free-text name: the last word is taken as the family name.
        text, generation = _split_generation(name.text)
        *first, last = text.split() or [""]
        family, given = last, tuple(first)
        generations.add(generation or "")
    family, generation = _split_generation(family)
    generations.add(generation or "")
    if given:
        last_given, generation = _split_generation(given[-1])
        given = (*given[:-1], last_given)
        generations.add(generation or "")
    given_words = tuple(t for g in given for t in tokens(g))
    pf = _prepare_family(family, given_words[0] if given_words else "")
    pg = _prepare_given(given, pf.key if pf else "")
    if pf is None and pg is None:
        return None
    return PreparedName(family=pf, given=pg)


def _prepare_identifier(system: str, type_: str, value: str, use: str) -> PreparedIdentifier:
    key = fold(value)
    return PreparedIdentifier(
        system=system,
        type=type_,
        display=value,
        key=key,
        old=use == "old",
        placeholder=placeholders.is_placeholder_number(key),
    )


def prepare(record: PatientData) -> PreparedRecord:
    """Precompute everything the comparators need from one record."""
    generations: set[str] = {
        _GENERATION_ALIASES.get(t, t)
        for n in record.names
        for s in n.suffix
        for t in tokens(s)
        if t in GENERATION_SUFFIXES
    }
    names = tuple(p for p in (_prepare_name(n, generations) for n in record.names) if p is not None)
    generations.discard("")
    postcodes, addresses, cities = [], [], []
    any_postcode = any_address = False
    # Old addresses and names are kept: someone who moved agrees with their old record.
    for a in record.addresses:
        if pk := postcode_key(a.postal_code):
            any_postcode = True
            if not placeholders.is_placeholder_postcode(pk):
                postcodes.append((a.postal_code, pk))
        if words := address_tokens(a.line):
            any_address = True
            key = "".join(words)
            if not placeholders.is_placeholder_address(key):
                addresses.append(
                    PreparedAddress(
                        display=", ".join(a.line),
                        key=key,
                        sorted_key="".join(sorted(words)),
                        raw_key="".join(t for line in a.line for t in tokens(line)),
                        words=frozenset(words),
                        numbers=frozenset(w for w in words if any(c.isdigit() for c in w)),
                    )
                )
        if (ck := fold(a.city)) and ck not in placeholders.PLACEHOLDER_WORDS:
            cities.append((a.city, ck))
    phones, emails = [], []
    any_phone = any_email = False
    for c in record.contacts:
        if c.system in PHONE_SYSTEMS:
            if d := digits(c.normalized_value or c.value):
                any_phone = True
                if not placeholders.is_placeholder_phone(d):
                    phones.append(PreparedPhone(c.value, d))
        elif c.system == ContactSystem.EMAIL:
            local, domain = email_key(c.normalized_value or c.value)
            if local:
                any_email = True
                if not placeholders.is_placeholder_email(local, domain):
                    emails.append(PreparedEmail(c.value, local, domain))
    identifiers = tuple(
        _prepare_identifier(i.system, i.type, i.value, i.use) for i in record.identifiers if fold(i.value)
    )
    bd = record.birth_date
    gender = record.gender if record.gender in (Gender.MALE, Gender.FEMALE, Gender.OTHER) else ""
    return PreparedRecord(
        names=names,
        families=tuple(n.family for n in names if n.family and not n.family.placeholder),
        givens=tuple(n.given for n in names if n.given and not n.given.placeholder),
        any_family=any(n.family for n in names),
        any_given=any(n.given for n in names),
        birth_date=bd,
        birth_date_text=bd.isoformat() if bd else "",
        birth_date_placeholder=bool(bd and placeholders.is_placeholder_birth_date(bd)),
        gender=gender,
        postcodes=tuple(postcodes),
        any_postcode=any_postcode,
        addresses=tuple(addresses),
        any_address=any_address,
        cities=tuple(cities),
        phones=tuple(phones),
        any_phone=any_phone,
        emails=tuple(emails),
        any_email=any_email,
        identifiers=identifiers,
        multiple_birth_order=record.multiple_birth_order,
        generations=frozenset(generations),
    )
