"""API token strings: generation, parsing and hashing. Pure code, no database.

A token reads ``mpi_<prefix>_<secret>``. The prefix (8 hex characters) is stored in
clear to find the row; only the SHA-256 of the whole token is stored. A plain hash
(not a slow password hash) is enough because the secret is 256 random bits: there is
nothing to brute-force, and every API request can afford to check it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "mpi"
PREFIX_LENGTH = 8


def new_token() -> tuple[str, str, str]:
    """Return ``(plain token, prefix, hash)`` for a fresh token."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    plain = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return plain, prefix, hash_token(plain)


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def token_prefix(plain: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    scheme, _, rest = plain.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    if any(c not in "0123456789abcdef" for c in prefix):
        return None
    return prefix


def matches(plain: str, key_hash: str) -> bool:
    # Constant time, so response timing says nothing about how much of a hash matched.
    return hmac.compare_digest(hash_token(plain), key_hash)
