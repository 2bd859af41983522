"""Pure normalisation shared by the index, the clerk search and candidate retrieval.

Both sides of every comparison go through these functions (the index row at write time,
the query or probe at read time), so they are normalised identically and no index
expression needs ``unaccent()``. No database access.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from functools import lru_cache

import jellyfish

# Letters NFKD does not decompose into a base letter plus accents.
_SPECIAL_LETTERS = str.maketrans(
    {
        "ß": "ss", "ẞ": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o",
        "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th",
        "\u0131": "i",  # dotless i
    }
)  # fmt: skip
_APOSTROPHES = re.compile("['`\u2019\u02bc]")  # straight, grave, curly, modifier
_LETTER_RUNS = re.compile(r"[^\W\d_]+")
_ASCII_WORD = re.compile(r"^[a-z]+$")
# Family-name particles: kept in the name text, but not used as a key of their own
# when the name has other parts ("de la Cruz" must not block with every "de").
PARTICLES = frozenset(
    {
        "al", "bin", "da", "das", "de", "del", "della", "der", "di", "do", "dos", "du", "el",
        "ibn", "la", "le", "st", "van", "von", "y",
    }
)  # fmt: skip
# The phone "suffix form": the last digits, which survive a missing or different
# country/area code ("555 0100" vs "+1 617 555 0100").
PHONE_SUFFIX_DIGITS = 7


def fold(text: str | None) -> str:
    """Lower-case and strip accents: "Müller" -> "muller", "Straße" -> "strasse"."""
    if not text:
        return ""
    if text.isascii():  # the common case, and 10x faster
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", str(text).translate(_SPECIAL_LETTERS))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.translate(_SPECIAL_LETTERS).lower()


def name_words(text: str | None) -> list[str]:
    """The folded words of a name: "O'Brien-Núñez" -> ["obrien", "nunez"].

    Apostrophes join (O'Brien is one word); hyphens and spaces separate.
    """
    return _LETTER_RUNS.findall(_APOSTROPHES.sub("", fold(text)))


def family_tokens(family: str | None) -> list[str]:
    """Keyable parts of a family name: each part (minus particles) and, for a
    double-barrelled name, the parts written together ("smith-jones" -> smith,
    jones, smithjones), since clerks drop or keep the hyphen at random."""
    words = name_words(family)
    parts = [w for w in words if w not in PARTICLES] or words
    if len(words) > 1:
        parts.append("".join(words))
    return list(dict.fromkeys(parts))


@lru_cache(maxsize=65536)  # names repeat: "smith" is encoded once, not per patient
def phonetic_codes(word: str) -> dict[str, str]:
    """Metaphone, NYSIIS and Soundex of one folded word, keyed "m", "n", "s".

    jellyfish is only meaningful for Latin letters; other scripts key on the word
    itself so they still block exactly.
    """
    if not _ASCII_WORD.match(word):
        return {"w": word} if word else {}
    return {"m": jellyfish.metaphone(word).upper(), "n": jellyfish.nysiis(word), "s": jellyfish.soundex(word)}


def phone_digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def phone_suffix(value: str | None) -> str:
    """The short suffix form of a phone number, or "" when it is too short to mean much."""
    digits = phone_digits(value)
    return digits[-PHONE_SUFFIX_DIGITS:] if len(digits) >= PHONE_SUFFIX_DIGITS else ""


def postcode_key(value: str | None) -> str:
    """Upper case without spaces or dashes: "sw1a 1aa" -> "SW1A1AA"."""
    return re.sub(r"[\s-]+", "", fold(value)).upper()


def _valid(year: int, month: int, day: int, today: date) -> date | None:
    try:
        candidate = date(year, month, day)
    except ValueError:
        return None
    return candidate if date(1850, 1, 1) <= candidate <= today else None


def _swap_digits(number: int, width: int) -> int:
    text = f"{number:0{width}d}"
    return int(text[::-1]) if width == 2 else int(text[:-2] + text[-1] + text[-2])


def birth_date_variants(birth_date: date, *, today: date | None = None) -> list[date]:
    """The date and the dates a data-entry slip most often turns it into.

    Day and month swapped (04/03 vs 03/04), transposed digits in the day, month or
    year (1980 -> 1908), off by one day, one year or ten years. Candidate retrieval
    looks these up exactly instead of scanning a whole year.
    """
    today = today or date.today()
    y, m, d = birth_date.year, birth_date.month, birth_date.day
    candidates = [
        birth_date,
        _valid(y, d, m, today),
        _valid(y, m, _swap_digits(d, 2), today),
        _valid(y, _swap_digits(m, 2), d, today),
        _valid(_swap_digits(y, 4), m, d, today),
        _valid(y - 1, m, d, today),
        _valid(y + 1, m, d, today),
        _valid(y - 10, m, d, today),
        _valid(y + 10, m, d, today),
        birth_date - timedelta(days=1),
        birth_date + timedelta(days=1),
    ]
    return list(dict.fromkeys(c for c in candidates if c is not None))
