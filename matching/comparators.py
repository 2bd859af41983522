"""Field-by-field comparison of two patient records into comparison levels.

``compare_records(a, b)`` (or ``compare_prepared(prepare(a), prepare(b))`` when one
probe meets many candidates) returns one ``FieldComparison`` per field of
``matching.levels.FIELDS``, in that order. A record may hold several names, addresses,
phones, ...: each field keeps the pair of values with the strongest agreement and says
which two values it compared. Accents, case, punctuation and spacing never decide a
level (see ``matching.normalize``); placeholder values get the neutral ``placeholder``
level (see ``matching.placeholders``). Pure code: no database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from jellyfish import damerau_levenshtein_distance as _dl
from jellyfish import jaro_winkler_similarity as _jw

from matching import levels as L
from matching.prepare import (
    PreparedAddress,
    PreparedFamily,
    PreparedGiven,
    PreparedIdentifier,
    PreparedName,
    PreparedRecord,
    prepare,
)
from patients.data import PatientData

# Jaro-Winkler bands. Names: 0.92 catches one typo in a 6+ letter name (Jonson/Johnson)
# and 0.80 the looser ones; Splink's name comparisons use the same region (0.92/0.88/0.7).
NAME_JW_HIGH = 0.92
NAME_JW_MID = 0.80
ADDRESS_JW_HIGH = 0.94
ADDRESS_JW_MID = 0.85
CITY_JW_HIGH = 0.90
EMAIL_JW_CLOSE = 0.92

# Identifier systems that allow one value per person (a national id): two different
# values are evidence of two people. Types are used only when both values share a system.
DEFAULT_UNIQUE_IDENTIFIER_SYSTEMS = frozenset(
    {
        "http://hl7.org/fhir/sid/us-ssn",
        "urn:oid:2.16.840.1.113883.4.1",
        "https://fhir.nhs.uk/Id/nhs-number",
    }
)
DEFAULT_UNIQUE_IDENTIFIER_TYPES = frozenset({"SS", "NI"})


class FieldComparison(NamedTuple):
    """The level one field reached, and the two values that reached it.

    ``tf_key`` is the agreed value (folded, as ``matching.prepare.family_tf_key`` and
    ``given_tf_key`` make it) when the level may get a term-frequency adjustment. (A NamedTuple: millions are
    made in batch detection, and a tuple is the cheapest immutable record.)
    """

    field: str
    level: str
    value_a: str = ""
    value_b: str = ""
    tf_key: str | None = None


@dataclass(frozen=True, slots=True)
class CompareOptions:
    unique_identifier_systems: frozenset[str] = DEFAULT_UNIQUE_IDENTIFIER_SYSTEMS
    unique_identifier_types: frozenset[str] = DEFAULT_UNIQUE_IDENTIFIER_TYPES


DEFAULT_OPTIONS = CompareOptions()
_RANK = {f: {lvl: i for i, lvl in enumerate(L.SCORED_LEVELS[f])} for f in L.FIELDS}


def _best(
    field: str, values_a: Sequence, values_b: Sequence, compare: Callable
) -> tuple[str, object, object]:
    """The strongest level over every pair of values, with the pair that reached it."""
    if len(values_a) == 1 and len(values_b) == 1:  # the usual case, kept cheap
        return compare(values_a[0], values_b[0]), values_a[0], values_b[0]
    rank = _RANK[field]
    best: tuple[str, object, object] | None = None
    best_rank = len(rank)
    for va in values_a:
        for vb in values_b:
            level = compare(va, vb)
            r = rank[level]
            if r < best_rank:
                best, best_rank = (level, va, vb), r
                if r == 0:
                    return best
    assert best is not None
    return best


def compare_family(a: PreparedFamily, b: PreparedFamily) -> str:
    if not a.keys.isdisjoint(b.keys):
        return L.EXACT
    jw = _jw(a.key, b.key)
    if jw >= NAME_JW_HIGH:
        return L.JW_HIGH
    if a.metaphone == b.metaphone or a.nysiis == b.nysiis:
        return L.PHONETIC
    if not a.parts.isdisjoint(b.parts):  # Garcia-Lopez / Garcia, de la Cruz / Cruz
        return L.PARTIAL
    if jw >= NAME_JW_MID:
        return L.JW_MID
    return L.DISAGREE


def compare_given(a: PreparedGiven, b: PreparedGiven) -> str:
    if len(a.first) == 1 or len(b.first) == 1:
        # An initial agrees with a name or an initial, but is never an exact agreement.
        return L.INITIAL if a.first[0] == b.first[0] else L.DISAGREE
    if not a.keys.isdisjoint(b.keys):
        return L.EXACT
    if b.first in a.related or a.first in b.related or not a.canon.isdisjoint(b.canon):
        return L.NICKNAME
    jw = _jw(a.first, b.first)
    if jw >= NAME_JW_HIGH:
        return L.JW_HIGH
    if a.first in b.rest or b.first in a.rest:
        return L.MIDDLE
    if jw >= NAME_JW_MID:
        return L.JW_MID
    return L.DISAGREE


def _names_agree(family: PreparedFamily, given: PreparedGiven) -> bool:
    """Does a family name agree (exactly or by one typo) with a first given name?"""
    return given.first in family.keys or _jw(family.key, given.first) >= NAME_JW_HIGH


_WEAK = (L.JW_MID, L.DISAGREE)


def _best_names(pa: PreparedRecord, pb: PreparedRecord) -> tuple:
    """(family level, fa, fb, given level, ga, gb): each with the two values that reached
    it, or None twice when a side has no (non-placeholder) value."""
    fam_a, fam_b, giv_a, giv_b = pa.families, pb.families, pa.givens, pb.givens
    if len(fam_a) == 1 and len(fam_b) == 1:  # the usual case, kept cheap
        fa, fb = fam_a[0], fam_b[0]
        family = compare_family(fa, fb)
    elif fam_a and fam_b:
        family, fa, fb = _best(L.FAMILY, fam_a, fam_b, compare_family)
    else:
        family, fa, fb = _absent_level(pa.any_family, pb.any_family), None, None
    if len(giv_a) == 1 and len(giv_b) == 1:
        ga, gb = giv_a[0], giv_b[0]
        given = compare_given(ga, gb)
    elif giv_a and giv_b:
        given, ga, gb = _best(L.GIVEN, giv_a, giv_b, compare_given)
    else:
        given, ga, gb = _absent_level(pa.any_given, pb.any_given), None, None
    return family, fa, fb, given, ga, gb


def _swapped_names(pa: PreparedRecord, pb: PreparedRecord) -> tuple[PreparedName, PreparedName] | None:
    """Two names with family and given swapped between the records (a classic
    data-entry slip): one agreement scored on the family field, not two disagreements."""
    for na in pa.names:
        for nb in pb.names:
            if not (na.family and na.given and nb.family and nb.given):
                continue
            if _names_agree(na.family, nb.given) and _names_agree(nb.family, na.given):
                return na, nb
    return None


def name_levels(pa: PreparedRecord, pb: PreparedRecord) -> tuple[str, str | None, str, str | None]:
    """``compare_names``' levels and term-frequency keys, without the values shown."""
    family, fa, _, given, ga, _ = _best_names(pa, pb)
    if family in _WEAK and given in _WEAK and _swapped_names(pa, pb):
        return L.SWAPPED, None, L.SWAPPED, None
    return family, fa.key if family == L.EXACT else None, given, ga.first if given == L.EXACT else None


def compare_names(pa: PreparedRecord, pb: PreparedRecord) -> tuple[FieldComparison, FieldComparison]:
    family, fa, fb, given, ga, gb = _best_names(pa, pb)
    if family in _WEAK and given in _WEAK and (swapped := _swapped_names(pa, pb)):
        na, nb = swapped
        shown_a = f"{na.given.display} {na.family.display}"
        shown_b = f"{nb.given.display} {nb.family.display}"
        return (
            FieldComparison(L.FAMILY, L.SWAPPED, shown_a, shown_b),
            FieldComparison(L.GIVEN, L.SWAPPED, shown_a, shown_b),
        )
    if fa is None:
        family_comparison = FieldComparison(L.FAMILY, family)
    else:
        tf_key = fa.key if family == L.EXACT else None
        family_comparison = FieldComparison(L.FAMILY, family, fa.display, fb.display, tf_key)
    if ga is None:
        given_comparison = FieldComparison(L.GIVEN, given)
    else:
        tf_key = ga.first if given == L.EXACT else None
        given_comparison = FieldComparison(L.GIVEN, given, ga.display, gb.display, tf_key)
    return family_comparison, given_comparison


def _absent_level(has_a: bool, has_b: bool) -> str:
    """Missing, unless both sides have a value and one side's are all placeholders."""
    return L.PLACEHOLDER if has_a and has_b else L.MISSING


def _absent(field: str, has_a: bool, has_b: bool) -> FieldComparison:
    return FieldComparison(field, _absent_level(has_a, has_b))


# -- one field's level. The ``level_*`` functions (and ``name_levels``) give the level
# compare_prepared's comparison of the field has, without the values shown; the batch's
# staged reject (matching.prefilter) reads them. They share compare_prepared's per-value
# functions, and tests/matching/test_batch_prefilter.py checks that the two agree.


def level_birth_date(pa: PreparedRecord, pb: PreparedRecord) -> str:
    a, b = pa.birth_date, pb.birth_date
    if a is None or b is None:
        return L.MISSING
    if pa.birth_date_placeholder or pb.birth_date_placeholder:
        return L.PLACEHOLDER
    if a == b:
        return L.EXACT
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return L.TRANSPOSED
    if a.month == b.month and a.day == b.day and abs(a.year - b.year) == 1:
        return L.YEAR_OFF_BY_ONE
    if (a.year == b.year) + (a.month == b.month) + (a.day == b.day) == 2:
        return L.ONE_OFF
    return L.DISAGREE


def compare_birth_date(pa: PreparedRecord, pb: PreparedRecord) -> FieldComparison:
    level = level_birth_date(pa, pb)
    if level == L.MISSING:
        return FieldComparison(L.BIRTH_DATE, L.MISSING)
    return FieldComparison(L.BIRTH_DATE, level, pa.birth_date_text, pb.birth_date_text)


def level_gender(pa: PreparedRecord, pb: PreparedRecord) -> str:
    if not pa.gender or not pb.gender:
        return L.MISSING
    return L.EXACT if pa.gender == pb.gender else L.DISAGREE


def compare_gender(pa: PreparedRecord, pb: PreparedRecord) -> FieldComparison:
    level = level_gender(pa, pb)
    if level == L.MISSING:
        return FieldComparison(L.GENDER, L.MISSING)
    return FieldComparison(L.GENDER, level, pa.gender, pb.gender)


def _postcode_level(a: tuple[str, str], b: tuple[str, str]) -> str:
    ka, kb = a[1], b[1]
    if ka == kb:
        return L.EXACT
    short, long_ = (ka, kb) if len(ka) <= len(kb) else (kb, ka)
    # ZIP+4 against ZIP: the shorter one is the start of the longer one.
    if len(short) >= 5 and long_.startswith(short):
        return L.EXACT
    if len(short) >= 4 and _dl(ka, kb) <= 1:
        return L.TYPO
    if len(short) >= 3 and ka[:3] == kb[:3]:
        return L.PARTIAL
    return L.DISAGREE


def _address_numbers_conflict(a: PreparedAddress, b: PreparedAddress) -> bool:
    # Neighbours: "12 Main St" and "14 Main St" are a near-perfect Jaro-Winkler match.
    return bool(a.numbers and b.numbers and a.numbers.isdisjoint(b.numbers))


def _address_level(a: PreparedAddress, b: PreparedAddress) -> str:
    if a.key == b.key or a.words == b.words:
        return L.EXACT
    number_conflict = _address_numbers_conflict(a, b)
    # The written-out form too: "18 Aspinall Rtreet" is one typo from "18 Aspinall
    # Street" but far from the abbreviated "18 Aspinall St".
    jw = max(_jw(a.key, b.key), _jw(a.sorted_key, b.sorted_key), _jw(a.raw_key, b.raw_key))
    if jw >= ADDRESS_JW_HIGH and not number_conflict:
        return L.JW_HIGH
    small, big = sorted((a.words, b.words), key=len)
    if not number_conflict and len(small) >= 2 and small <= big:
        return L.PARTIAL
    if jw >= ADDRESS_JW_MID:
        return L.JW_MID
    return L.DISAGREE


# The levels _address_level can reach without its Jaro-Winkler scores: the staged
# reject bounds the address by these before paying for the three comparisons.
ADDRESS_LEVELS_IF_NUMBERS_CONFLICT = (L.JW_MID, L.DISAGREE)
ADDRESS_LEVELS_OTHERWISE = (L.JW_HIGH, L.PARTIAL, L.JW_MID, L.DISAGREE)


def address_levels_possible(pa: PreparedRecord, pb: PreparedRecord) -> tuple[str, ...]:
    """Every level ``level_address`` may give the pair, found without Jaro-Winkler."""
    if not pa.addresses or not pb.addresses:
        return (_absent_level(pa.any_address, pb.any_address),)
    possible: tuple[str, ...] = ()
    for a in pa.addresses:
        for b in pb.addresses:
            if a.key == b.key or a.words == b.words:
                return (L.EXACT,)
            if not _address_numbers_conflict(a, b):
                possible = ADDRESS_LEVELS_OTHERWISE
            elif not possible:
                possible = ADDRESS_LEVELS_IF_NUMBERS_CONFLICT
    return possible


def _city_level(a: tuple[str, str], b: tuple[str, str]) -> str:
    if a[1] == b[1]:
        return L.EXACT
    return L.JW_HIGH if _jw(a[1], b[1]) >= CITY_JW_HIGH else L.DISAGREE


def _phone_level(a, b) -> str:
    da, db = a.digits, b.digits
    # "+16175550100" and "6175550100": one written with its country code.
    if da == db or (len(da) >= 10 and len(db) >= 10 and da[-10:] == db[-10:]):
        return L.EXACT
    if len(da) >= 7 and len(db) >= 7 and da[-7:] == db[-7:]:
        return L.LAST7
    return L.DISAGREE


def _email_level(a, b) -> str:
    if a.local == b.local:
        return L.EXACT if a.domain == b.domain else L.LOCAL_CLOSE
    return L.LOCAL_CLOSE if _jw(a.local, b.local) >= EMAIL_JW_CLOSE else L.DISAGREE


def _multi_level(field: str, va: tuple, vb: tuple, has_a: bool, has_b: bool, level_of: Callable) -> str:
    """The level of a field with several values a side (``level_*`` take one-to-one themselves)."""
    if not va or not vb:
        return _absent_level(has_a, has_b)
    return _best(field, va, vb, level_of)[0]


def _multi(
    field: str, va: tuple, vb: tuple, has: tuple[bool, bool], level_of: Callable, show: Callable
) -> FieldComparison:
    if not va or not vb:
        return _absent(field, *has)
    level, a, b = _best(field, va, vb, level_of)
    return FieldComparison(field, level, show(a), show(b))


# One value a side is the usual case: each ``level_*`` takes it without another call.
def level_postcode(pa: PreparedRecord, pb: PreparedRecord) -> str:
    va, vb = pa.postcodes, pb.postcodes
    if len(va) == 1 and len(vb) == 1:
        return _postcode_level(va[0], vb[0])
    return _multi_level(L.POSTCODE, va, vb, pa.any_postcode, pb.any_postcode, _postcode_level)


def level_city(pa: PreparedRecord, pb: PreparedRecord, postcode_level: str) -> str:
    va, vb = pa.cities, pb.cities
    if not va or not vb:
        return L.MISSING
    # The postcode already agrees: the city adds nothing (not independent of it).
    if postcode_level == L.EXACT:
        return L.IMPLIED
    if len(va) == 1 and len(vb) == 1:
        return _city_level(va[0], vb[0])
    return _best(L.CITY, va, vb, _city_level)[0]


def level_address(pa: PreparedRecord, pb: PreparedRecord) -> str:
    va, vb = pa.addresses, pb.addresses
    if len(va) == 1 and len(vb) == 1:
        return _address_level(va[0], vb[0])
    return _multi_level(L.ADDRESS, va, vb, pa.any_address, pb.any_address, _address_level)


def level_phone(pa: PreparedRecord, pb: PreparedRecord) -> str:
    va, vb = pa.phones, pb.phones
    if len(va) == 1 and len(vb) == 1:
        return _phone_level(va[0], vb[0])
    return _multi_level(L.PHONE, va, vb, pa.any_phone, pb.any_phone, _phone_level)


def level_email(pa: PreparedRecord, pb: PreparedRecord) -> str:
    va, vb = pa.emails, pb.emails
    if len(va) == 1 and len(vb) == 1:
        return _email_level(va[0], vb[0])
    return _multi_level(L.EMAIL, va, vb, pa.any_email, pb.any_email, _email_level)


def _first(pair: tuple[str, str]) -> str:
    return pair[0]


def _display(value) -> str:
    return value.display


def _identifier_match(
    pa: PreparedRecord, pb: PreparedRecord, options: CompareOptions
) -> tuple[str, PreparedIdentifier | None, PreparedIdentifier | None]:
    """The identifier level, with the two identifiers that reached it (if any did)."""
    if not pa.identifiers or not pb.identifiers:
        return L.MISSING, None, None
    ids_a, ids_b = pa.real_identifiers, pb.real_identifiers
    if not ids_a or not ids_b:
        return L.PLACEHOLDER, None, None
    # One pass: an exact agreement anywhere wins at once; without one, the first close
    # pair, else the first conflicting one, in this order.
    close = conflict = None
    for a in ids_a:
        for b in ids_b:
            if a.system != b.system:
                continue
            if a.key == b.key:
                return L.EXACT, a, b
            if a.old or b.old or not _unique(a, b, options):
                continue
            if _dl(a.key, b.key) <= 1:
                close = close or (a, b)
            else:
                conflict = conflict or (a, b)
    if close:
        return L.CLOSE, *close
    if conflict:
        return L.CONFLICT, *conflict
    return L.UNRELATED, None, None


def level_identifier(
    pa: PreparedRecord, pb: PreparedRecord, options: CompareOptions = DEFAULT_OPTIONS
) -> str:
    return _identifier_match(pa, pb, options)[0]


def compare_identifiers(
    pa: PreparedRecord, pb: PreparedRecord, options: CompareOptions = DEFAULT_OPTIONS
) -> FieldComparison:
    level, a, b = _identifier_match(pa, pb, options)
    if a is None or b is None:
        return FieldComparison(L.IDENTIFIER, level)
    return FieldComparison(L.IDENTIFIER, level, _ident(a), _ident(b))


def _unique(a: PreparedIdentifier, b: PreparedIdentifier, options: CompareOptions) -> bool:
    if a.system in options.unique_identifier_systems:
        return True
    return a.type == b.type and a.type in options.unique_identifier_types


def _ident(i: PreparedIdentifier) -> str:
    return f"{i.system}|{i.display}"


def level_multiple_birth(pa: PreparedRecord, pb: PreparedRecord) -> str:
    a, b = pa.multiple_birth_order, pb.multiple_birth_order
    if a is None or b is None:
        return L.MISSING
    return L.SAME if a == b else L.DIFFERS


def _compare_order(pa: PreparedRecord, pb: PreparedRecord) -> FieldComparison:
    level = level_multiple_birth(pa, pb)
    if level == L.MISSING:
        return FieldComparison(L.MULTIPLE_BIRTH, L.MISSING)
    return FieldComparison(
        L.MULTIPLE_BIRTH, level, str(pa.multiple_birth_order), str(pb.multiple_birth_order)
    )


def level_generation(pa: PreparedRecord, pb: PreparedRecord) -> str:
    a, b = pa.generations, pb.generations
    if not a or not b:
        return L.MISSING
    return L.DIFFERS if a.isdisjoint(b) else L.SAME


def _compare_generation(pa: PreparedRecord, pb: PreparedRecord) -> FieldComparison:
    level = level_generation(pa, pb)
    if level == L.MISSING:
        return FieldComparison(L.GENERATION, L.MISSING)
    return FieldComparison(
        L.GENERATION, level, " ".join(sorted(pa.generations)), " ".join(sorted(pb.generations))
    )


def compare_prepared(
    pa: PreparedRecord, pb: PreparedRecord, options: CompareOptions = DEFAULT_OPTIONS
) -> tuple[FieldComparison, ...]:
    """One FieldComparison per field of ``matching.levels.FIELDS``, in that order."""
    family, given = compare_names(pa, pb)
    postcode = _multi(
        L.POSTCODE, pa.postcodes, pb.postcodes, (pa.any_postcode, pb.any_postcode), _postcode_level, _first
    )
    city = _multi(L.CITY, pa.cities, pb.cities, (False, False), _city_level, _first)
    if postcode.level == L.EXACT and city.level != L.MISSING:
        city = FieldComparison(L.CITY, L.IMPLIED, city.value_a, city.value_b)
    phone = _multi(L.PHONE, pa.phones, pb.phones, (pa.any_phone, pb.any_phone), _phone_level, _display)
    return (
        family,
        given,
        compare_birth_date(pa, pb),
        compare_gender(pa, pb),
        postcode,
        _multi(
            L.ADDRESS, pa.addresses, pb.addresses, (pa.any_address, pb.any_address), _address_level, _display
        ),
        city,
        phone,
        _multi(L.EMAIL, pa.emails, pb.emails, (pa.any_email, pb.any_email), _email_level, _display),
        compare_identifiers(pa, pb, options),
        _compare_order(pa, pb),
        _compare_generation(pa, pb),
    )


def compare_records(
    a: PatientData, b: PatientData, options: CompareOptions = DEFAULT_OPTIONS
) -> tuple[FieldComparison, ...]:
    """Compare two records (prepare both, then ``compare_prepared``)."""
    return compare_prepared(prepare(a), prepare(b), options)
