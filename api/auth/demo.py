"""Demo users for `pumpwatch demo` (data in demo_users.yaml): created once, marked `demo`."""

from __future__ import annotations

from importlib import resources

import yaml
from sqlalchemy import Engine

from pumpwatch.api.auth import users


def seed_demo_users(engine: Engine, tenants: list[str]) -> list[str]:
    """Create the demo users that do not exist yet; returns the names created."""
    spec = yaml.safe_load(
        resources.files("pumpwatch.api.auth").joinpath("demo_users.yaml").read_text(encoding="utf-8")
    )
    existing = {u["username"] for u in users.list_users(engine)}
    made = []
    for u in spec["users"]:
        if u["username"] in existing:
            continue
        grants = []
        for tenant, role in u["grants"].items():
            if tenant == "*":
                grants += [(t, role) for t in tenants]
            elif tenant in tenants:
                grants.append((tenant, role))
        users.create_user(
            engine, u["username"], spec["password"], grants, display_name=u.get("display_name"), demo=True
        )
        made.append(u["username"])
    return made
