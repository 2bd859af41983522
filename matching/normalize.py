"""Text folding for comparisons: accents, case, punctuation and spacing never decide.

``fold("O'Brien") == fold("OBrien") == fold("o brien") == "obrien"`` and
``fold("Müller") == "muller"``. German-style transliteration (``ü`` -> ``ue``) is a
second key (``fold_keys``) so that "Mueller" agrees exactly with "Müller" too.

The search index must build its term-frequency keys with
``matching.prepare.family_tf_key`` / ``given_tf_key`` so that the frequencies it hands
the model are counted on the same strings the comparators agree on.
Pure code: no database, no Django. The folds are cached: names repeat a lot.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters that NFKD does not decompose into a base letter plus a combining mark.
_TRANSLIT = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "œ": "oe",
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "\u0131": "i",  # dotless i
        "ħ": "h",
    }
)
# German umlauts written out, as registration desks without the key do.
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_DIGIT = re.compile(r"\D+")

# Address words in their USPS/Royal Mail short form, so "Street" agrees with "St".
# A standard table of postal abbreviations, not a guess at spellings.
ADDRESS_ABBREVIATIONS = {
    "street": "st",
    "str": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "boulevard": "blvd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "terrace": "ter",
    "highway": "hwy",
    "parkway": "pkwy",
    "circle": "cir",
    "crescent": "cres",
    "close": "cl",
    "gardens": "gdns",
    "apartment": "apt",
    "flat": "apt",
    "unit": "apt",
    "suite": "ste",
    "building": "bldg",
    "floor": "fl",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "mount": "mt",
    "saint": "st",
    "number": "no",
}


def _lower_ascii(text: str, *, umlauts: bool = False) -> str:
    if text.isascii():  # most values: skip the Unicode work
        return text.lower()
    text = text.lower()
    if umlauts:
        text = text.translate(_UMLAUTS)
    text = text.translate(_TRANSLIT)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def fold(text: str | None) -> str:
    """Lower-case ASCII letters and digits only: the key every comparison starts from."""
    if not text:
        return ""
    return _NOT_ALNUM.sub("", _lower_ascii(text))


@lru_cache(maxsize=65536)
def fold_keys(text: str | None) -> frozenset[str]:
    """Every folded spelling of ``text`` (plain, and with umlauts written out)."""
    if not text:
        return frozenset()
    keys = {fold(text), _NOT_ALNUM.sub("", _lower_ascii(text, umlauts=True))}
    keys.discard("")
    return frozenset(keys)


@lru_cache(maxsize=65536)
def tokens(text: str | None, *, umlauts: bool = False) -> tuple[str, ...]:
    """Folded words: split on anything that is not a letter or digit."""
    if not text:
        return ()
    return tuple(t for t in _NOT_ALNUM.split(_lower_ascii(text, umlauts=umlauts)) if t)


def digits(text: str | None) -> str:
    return _NOT_DIGIT.sub("", text or "")


def address_tokens(lines: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Folded words of address lines with postal abbreviations applied."""
    out: list[str] = []
    for line in lines:
        for t in tokens(line):
            out.append(ADDRESS_ABBREVIATIONS.get(t, t))
    return tuple(out)


def postcode_key(text: str | None) -> str:
    return fold(text)


def email_key(text: str | None) -> tuple[str, str]:
    """(local part, domain), lower case, sub-address ("+tag") removed.

    Gmail ignores dots in the local part, so they are dropped for its domains only.
    """
    value = (text or "").strip().lower()
    local, _, domain = value.rpartition("@")
    if not local:
        return value, ""
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
        domain = "gmail.com"
    return local, domain
