"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile) and the password
policy: at least 10 characters and hard to guess by zxcvbn's estimate (dictionaries of common passwords,
names and words, keyboard patterns, repeats, sequences, dates, l33t), with the user's own name and the
product's words counted as known to an attacker. `aaaaaaaaaa` and `pumpwatch-demo` are refused."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

_hasher = PasswordHasher()
MIN_LENGTH = 10
MAX_LENGTH = 200  # Argon2 takes any length; a bound keeps a hostile body from costing anything
MIN_SCORE = 3  # zxcvbn 0–4; 3: "safely unguessable: moderate protection from offline slow-hash scenario"
# An attacker knows what the product and the site are called.
CONTEXT_WORDS = ("pumpwatch", "pump", "sewer", "scada", "manhole", "demo", "admin", "operator")
# Verified against when the username does not exist, so a login takes as long either way.
_DUMMY = _hasher.hash("pumpwatch-no-such-user")


class WeakPassword(ValueError):
    pass


def check_policy(password: str, user_inputs: Iterable[str] = ()) -> None:
    """Raise WeakPassword saying why `password` is refused (never echoing it)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    words = [w for w in (*user_inputs, *CONTEXT_WORDS) if w]
    r = zxcvbn(password, user_inputs=words)
    if r["score"] < MIN_SCORE:
        why = r["feedback"].get("warning") or "it is too easy to guess"
        hint = " ".join(r["feedback"].get("suggestions") or [])
        raise WeakPassword(f"this password is too easy to guess: {why.rstrip('.')}. {hint}".strip())


def hash_password(password: str, user_inputs: Iterable[str] = (), *, policy: bool = True) -> str:
    """The Argon2id hash; `policy=False` only for the demo users' public password."""
    if policy:
        check_policy(password, user_inputs)
    return _hasher.hash(password)


def verify(encoded: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]  # cannot match a policy password; keeps the cost bounded
    try:
        return _hasher.verify(encoded or _DUMMY, password) and encoded is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str) -> bool:
    return _hasher.check_needs_rehash(encoded)


def configure(**params: Any) -> None:  # argon2's PasswordHasher keywords (time_cost, memory_cost…)
    """Change the hashing cost (tests use a cheaper one; existing hashes verify with their own)."""
    global _hasher, _DUMMY
    _hasher = PasswordHasher(**params)
    _DUMMY = _hasher.hash("pumpwatch-no-such-user")
