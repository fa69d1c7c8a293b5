"""Roles, lowest to highest: each role may do everything the ones below it may. A trainer is an operator
who may also start and stop drills (issue 18); engineers and admins may too."""

from __future__ import annotations

ROLES = ("viewer", "operator", "trainer", "engineer", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}


def rank(role: str) -> int:
    try:
        return RANK[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}") from None


def parse_grant(text: str) -> tuple[str, str]:
    """`kita:operator` → ("kita", "operator"), as the command line writes grants."""
    tenant, sep, role = text.partition(":")
    if not sep or not tenant or not role:
        raise ValueError(f"grant {text!r}: write TENANT:ROLE, e.g. kita:operator")
    rank(role)
    return tenant, role
