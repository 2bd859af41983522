"""Per-record precomputation for the comparators.

``prepare(record)`` folds, tokenises and encodes (metaphone, NYSIIS, nickname groups)
every value of a ``PatientData`` once, so that scoring a probe against 200 candidates,
or millions of pairs in batch detection, does not redo that work for every pair.
Pure code: no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

import jellyfish

from matching import placeholders
from matching.normalize import address_tokens, digits, email_key, fold, fold_keys, postcode_key, tokens
from patients.codes import PHONE_SYSTEMS, ContactSystem, Gender
from patients.data import NameData, PatientData
from patients.nicknames import nicknamer

# Surname particles: sharing only "de" or "van" is not a partly agreeing double surname.
SURNAME_PARTICLES = frozenset(
    {"de", "del", "della", "der", "den", "di", "da", "das", "do", "dos", "du", "la", "le", "lo"}
    | {"van", "von", "ter", "ten", "bin", "ibn", "al", "el", "y", "e", "mac", "mc", "st", "saint"}
)
_fold_once = fold.__wrapped__  # fold without its cache, for values that never repeat
# One shared empty set: most records have no generation suffix, most addresses no number
# (each frozenset() is a new 216-byte object, and there are millions of records).
_EMPTY: frozenset[str] = frozenset()
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


@lru_cache(maxsize=20000)
def nickname_groups(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names directly related to ``name``, the canonical forms of ``name``).

    From the maintained ``nicknames`` list and our supplement (``patients.nicknames``):
    Bill and Liam are nicknames of William, Peggy of Margaret, Paco of Francisco. Two
    names are nickname-equivalent when one is related to the other or they share a
    canonical form (Bill and Billy: William).
    """
    nn = nicknamer()
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
    real_identifiers: tuple[PreparedIdentifier, ...]  # the identifiers less placeholders
    multiple_birth_order: int | None
    generations: frozenset[str]


def _family_of(family: str) -> PreparedFamily | None:
    key = fold(family)
    if not key:
        return None
    parts = frozenset(w for w in tokens(family) if len(w) >= 3 and w not in SURNAME_PARTICLES)
    return PreparedFamily(
        display=family,
        key=key,
        keys=fold_keys(family),
        parts=parts or _EMPTY,
        metaphone=jellyfish.metaphone(key),
        nysiis=jellyfish.nysiis(key),
        placeholder=placeholders.is_placeholder_family(key),
    )


def _given_of(given: tuple[str, ...]) -> PreparedGiven | None:
    words = tuple(t for g in given for t in tokens(g))
    if not words:
        return None
    first = words[0]
    related, canon = nickname_groups(first)
    # The umlauts-written-out spelling too, so that Jürgen agrees exactly with Juergen.
    words_de = tuple(t for g in given for t in tokens(g, umlauts=True))
    keys = {first, "".join(words), words_de[0], "".join(words_de)}
    return PreparedGiven(
        display=" ".join(given),
        first=first,
        keys=frozenset(keys),
        rest=words[1:],
        related=related,
        canon=canon,
        placeholder=placeholders.is_placeholder_given(words),
    )


def _prepare_name(name: NameData, generations: set[str], shared: dict | None) -> PreparedName | None:
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
    if shared is None:
        pf, pg = _recent_family(family), _recent_given(given)
    else:
        pf, pg = _shared(shared, family, _family_of), _shared(shared, given, _given_of)
    if pf is None and pg is None:
        return None
    # "John Doe": each part a real name, the whole a placeholder.
    family_key, given_first = (pf.key if pf else ""), (pg.first if pg else "")
    if (
        pf is not None
        and not pf.placeholder
        and placeholders.is_placeholder_full_name(family_key, given_first)
    ):
        pf = replace(pf, placeholder=True)
    if (
        pg is not None
        and not pg.placeholder
        and placeholders.is_placeholder_full_name(family_key, given_first)
    ):
        pg = replace(pg, placeholder=True)
    return PreparedName(family=pf, given=pg)


def _prepare_identifiers(record: PatientData) -> tuple[PreparedIdentifier, ...]:
    prepared = []
    for i in record.identifiers:
        # The uncached fold: identifier values are unique, caching them would only push
        # the names out of fold's cache.
        if key := _fold_once(i.value):
            prepared.append(
                PreparedIdentifier(
                    system=i.system,
                    type=i.type,
                    display=i.value,
                    key=key,
                    old=i.use == "old",
                    placeholder=placeholders.is_placeholder_number(key),
                )
            )
    return tuple(prepared)


# Without a ``shared`` dict (a web worker scoring ~50 candidates a match), the most
# recently prepared names are kept, a bounded number: names repeat across probes (the
# common ones in every block), and preparing one is most of ``prepare``'s time.
RECENT_NAMES = 8192
_recent_family = lru_cache(maxsize=RECENT_NAMES)(_family_of)
_recent_given = lru_cache(maxsize=RECENT_NAMES)(_given_of)


def _shared(shared: dict, value, make):
    # A family name is a str, a given name a tuple: the two never share a key.
    try:
        return shared[value]
    except KeyError:
        made = shared[value] = make(value)
        return made


def prepare(record: PatientData, *, shared: dict | None = None) -> PreparedRecord:
    """Precompute everything the comparators need from one record.

    ``shared``: a dict the caller keeps across many records (batch detection keeps one
    for a pass). Names repeat (a million patients carry a few hundred thousand distinct
    family and given names): with it, each distinct name is prepared once and its
    object shared by every record that carries it, which saves the work and the memory
    (frozen objects, so sharing is safe; the "John Doe" test, which needs both halves
    of the name, is applied per record on top). Without it the last ``RECENT_NAMES``
    family and given names prepared are kept (a web worker's memory does not grow
    with the names it has seen).
    """
    generations: set[str] = {
        _GENERATION_ALIASES.get(t, t)
        for n in record.names
        for s in n.suffix
        for t in tokens(s)
        if t in GENERATION_SUFFIXES
    }
    names = tuple(p for p in (_prepare_name(n, generations, shared) for n in record.names) if p is not None)
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
                        # Tokens are [a-z0-9]+: not all letters means a digit.
                        numbers=frozenset(w for w in words if not w.isalpha()) or _EMPTY,
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
    identifiers = _prepare_identifiers(record)
    real_identifiers = tuple(i for i in identifiers if not i.placeholder)
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
        # The same tuple when no value is a placeholder (memory: millions of records).
        real_identifiers=identifiers if len(real_identifiers) == len(identifiers) else real_identifiers,
        multiple_birth_order=record.multiple_birth_order,
        generations=frozenset(generations) if generations else _EMPTY,
    )
