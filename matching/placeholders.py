"""Values that registration desks type when they do not know the real one.

"Unknown", "Baby Boy", "John Doe", "000000000", "123456789", "555-0000" agree between
unrelated people all the time, so a comparison involving one of them carries no weight
(the comparators give it the ``placeholder`` level). Everything here works on values
already folded by ``matching.normalize``. Pure code.
"""

from __future__ import annotations

from datetime import date
from itertools import pairwise

# Whole given names (or every word of one) that stand for "not known yet".
PLACEHOLDER_GIVEN_WORDS = frozenset(
    {
        "unknown",
        "unk",
        "unkn",
        "baby",
        "babyboy",
        "babygirl",
        "boy",
        "girl",
        "infant",
        "newborn",
        "nb",
        "twin",
        "male",
        "female",
        "test",
        "patient",
        "anonymous",
        "anon",
        "none",
        "null",
        "nil",
        "na",
        "nn",
        "notknown",
        "noname",
        "x",
        "xx",
        "xxx",
        "zz",
        "zzz",
        "tbd",
        "trauma",
    }
)
# Labels that only ever follow one of the words above ("Baby A", "Twin 2").
_ORDER_LABELS = frozenset({"a", "b", "c", "d", "1", "2", "3", "4", "i", "ii", "iii", "one", "two", "three"})

PLACEHOLDER_FAMILY = frozenset(
    {
        "unknown",
        "unk",
        "unkn",
        "test",
        "testpatient",
        "patient",
        "anonymous",
        "anon",
        "none",
        "null",
        "nil",
        "na",
        "nn",
        "notknown",
        "noname",
        "x",
        "xx",
        "xxx",
        "zz",
        "zzz",
        "tbd",
        "trauma",
        "baby",
        "newborn",
        "infant",
    }
)
# Full names that are placeholders although each part alone is a real name.
PLACEHOLDER_FULL_NAMES = frozenset(
    {
        ("doe", "john"),
        ("doe", "jane"),
        ("doe", "baby"),
        ("doe", "janie"),
        ("doe", "johnny"),
        ("roe", "richard"),
        ("roe", "jane"),
        ("patient", "test"),
    }
)

# Identifier and phone values known to be shared by unrelated people.
# 078-05-1120 is the SSN printed on a wallet insert in 1938 and used by thousands since.
KNOWN_PLACEHOLDER_NUMBERS = frozenset({"078051120", "219099999", "5551212", "5551234", "1234567890"})
PLACEHOLDER_WORDS = frozenset(
    {"unknown", "unk", "none", "null", "na", "nil", "test", "tbd", "pending", "temp", "notknown"}
)


# Address lines, e-mail local parts and domains typed when there is none to give.
PLACEHOLDER_ADDRESSES = frozenset(
    {
        "unknown",
        "unk",
        "homeless",
        "nfa",
        "nofixedabode",
        "nofixedaddress",
        "noaddress",
        "noaddressgiven",
        "notgiven",
        "notknown",
        "none",
        "na",
        "declined",
        "refused",
        "tbd",
        "xxx",
    }
)
PLACEHOLDER_EMAIL_LOCALS = frozenset(
    {"none", "noemail", "nomail", "no", "na", "declined", "refused", "unknown", "test", "noreply"}
    | {"donotreply", "nobody", "notgiven", "x", "xx", "xxx"}
)
PLACEHOLDER_EMAIL_DOMAINS = frozenset(
    {"none.com", "noemail.com", "nomail.com", "unknown.com", "none.none", "na.com", "test.com"}
)


def is_placeholder_given(given_tokens: tuple[str, ...]) -> bool:
    """True when every word is a placeholder word or an order label after one."""
    if not given_tokens:
        return False
    if given_tokens[0] not in PLACEHOLDER_GIVEN_WORDS:
        return False
    return all(t in PLACEHOLDER_GIVEN_WORDS or t in _ORDER_LABELS for t in given_tokens[1:])


def is_placeholder_family(family_key: str) -> bool:
    return family_key in PLACEHOLDER_FAMILY


def is_placeholder_full_name(family_key: str, given_key: str) -> bool:
    return (family_key, given_key) in PLACEHOLDER_FULL_NAMES


# Every run of consecutive digits (wrapping 9 -> 0) up to 91 long is a stretch of these.
_ASCENDING = "0123456789" * 10
_DESCENDING = _ASCENDING[::-1]


def _is_run(value: str) -> bool:
    """Three or more of one character, or a run of 5+ consecutive digits (12345, 98765)."""
    if len(value) >= 3 and len(set(value)) == 1:
        return True
    if len(value) < 5 or not value.isdecimal():  # what int() reads ("²" is a digit, not a decimal)
        return False
    if value.isascii() and len(value) <= 91:  # the usual case, without a step per digit
        return value in _ASCENDING or value in _DESCENDING
    steps = {(int(b) - int(a)) % 10 for a, b in pairwise(value)}
    return steps in ({1}, {9})


def is_placeholder_number(folded: str) -> bool:
    """For identifier values: 000000000, 123456789, 0123456789, 'unknown', ..."""
    if not folded:
        return False
    if folded in PLACEHOLDER_WORDS or folded in KNOWN_PLACEHOLDER_NUMBERS:
        return True
    return _is_run(folded)


def is_placeholder_phone(phone_digits: str) -> bool:
    """For phone numbers (digits only, country code included or not).

    Looks at the whole number and at the subscriber part (the last 7 digits), where
    desks type 000-0000, 555-0000, 555-5555, 123-4567.
    """
    if not phone_digits:
        return False
    national = phone_digits[-10:]
    last7 = phone_digits[-7:]
    if _is_run(national) or _is_run(last7) or len(set(national)) <= 2:
        return True
    if last7 in KNOWN_PLACEHOLDER_NUMBERS or national in KNOWN_PLACEHOLDER_NUMBERS:
        return True
    # 555-0000, 555-1111: the fictional exchange followed by one repeated digit.
    return last7.startswith("555") and len(set(last7[3:])) == 1


def is_placeholder_postcode(folded: str) -> bool:
    """00000, 99999, 12345, 'unknown'."""
    return folded in PLACEHOLDER_WORDS or _is_run(folded)


def is_placeholder_address(folded: str) -> bool:
    """'Unknown', 'Homeless', 'No fixed abode' (folded, abbreviations applied)."""
    return folded in PLACEHOLDER_ADDRESSES


def is_placeholder_email(local: str, domain: str) -> bool:
    """noemail@..., none@none.com, declined@... (local part and domain as email_key gives)."""
    return "".join(c for c in local if c.isalnum()) in PLACEHOLDER_EMAIL_LOCALS or (
        domain in PLACEHOLDER_EMAIL_DOMAINS
    )


def is_placeholder_birth_date(value: date) -> bool:
    """1 January of 1900 or 1901 (and earlier): the "date not known" of many systems."""
    return value.year <= 1901 and value.month == 1 and value.day == 1
