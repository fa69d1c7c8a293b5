"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
MIN_LENGTH = 10
# Verified against when the username does not exist, so a login takes as long either way.
_DUMMY = _hasher.hash("pumpwatch-no-such-user")


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify(encoded: str | None, password: str) -> bool:
    try:
        return _hasher.verify(encoded or _DUMMY, password) and encoded is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str) -> bool:
    return _hasher.check_needs_rehash(encoded)


def configure(**params: int) -> None:
    """Change the hashing cost (tests use a cheaper one; existing hashes verify with their own)."""
    global _hasher, _DUMMY
    _hasher = PasswordHasher(**params)
    _DUMMY = _hasher.hash("pumpwatch-no-such-user")
