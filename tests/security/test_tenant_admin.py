"""Tenant rules for admins (issue 15 part 6), as a hostile tenant admin tries them: a kita admin changes only
kita's grants and nothing of the shared operator's minami session; reads no other tenant's grants in the
audit log; cannot tell a minami user from a name nobody has; cannot adopt users without grants (the centre
admin's); on-call contact details only for operators of their tenant; test messages rate-limited."""

from __future__ import annotations

from tests.auth import bearer
from tests.security.conftest import Api


async def test_revoking_a_kita_grant_leaves_the_shared_operators_minami_session_alone(api: Api) -> None:
    """Before: deleting the centre operator's kita grant ended their minami sessions too."""
    centre = await api.token("centre")
    kita_admin = await api.token("kita-admin")
    r = await api.client.delete("/api/v1/users/centre/grants/kita", headers=bearer(kita_admin))
    assert r.status_code == 200
    me = await api.client.get("/api/v1/auth/me", headers=bearer(centre))
    assert me.status_code == 200 and me.json()["grants"] == [{"tenant": "minami", "role": "operator"}]
    assert (await api.client.get("/api/v1/stations/MINAMI-MP-01", headers=bearer(centre))).status_code == 200
    assert (await api.client.get("/api/v1/stations/KITA-MP-01", headers=bearer(centre))).status_code == 404
    # and a kita admin cannot touch minami's grant of the same user
    r = await api.client.delete("/api/v1/users/centre/grants/minami", headers=bearer(kita_admin))
    assert r.status_code == 404


async def test_audit_of_a_shared_user_shows_only_the_readers_tenants(api: Api) -> None:
    """Before: a kita admin read `kita:operator,minami:operator` in the record of a user the centre made."""
    boss = await api.token("boss")
    new = {
        "username": "sato",
        "password": "Sato-has-a-long-one-7",
        "grants": [{"tenant": "kita", "role": "operator"}, {"tenant": "minami", "role": "operator"}],
    }
    assert (await api.client.post("/api/v1/users", json=new, headers=bearer(boss))).status_code == 201
    api.clock.advance(1)
    kita_admin = await api.token("kita-admin")
    rows = (await api.client.get("/api/v1/audit", headers=bearer(kita_admin))).json()["data"]
    text = str(rows)
    assert "minami" not in text, [r for r in rows if "minami" in str(r)]
    assert any(r["action"] == "user.create" and r["new_value"] == "kita:operator" for r in rows)


async def test_no_existence_oracle_for_other_tenants_users(api: Api) -> None:
    """Before: a name of another tenant answered differently from a name nobody has."""
    kita_admin = await api.token("kita-admin")
    h = bearer(kita_admin)
    for name in ("minami-op", "nobody-at-all"):  # a minami user, and no user
        answers = [
            await api.client.put(f"/api/v1/users/{name}/grants/kita", json={"role": "viewer"}, headers=h),
            await api.client.delete(f"/api/v1/users/{name}/grants/kita", headers=h),
            await api.client.post(f"/api/v1/users/{name}/disable", headers=h),
            await api.client.post(f"/api/v1/users/{name}/revoke-sessions", headers=h),
            await api.client.post(f"/api/v1/users/{name}/unlock", headers=h),
        ]
        assert [(r.status_code, r.json()) for r in answers] == [(404, {"detail": "not found"})] * 5, name
    # Creating a taken name must fail (names are unique), but trying names backs off per admin
    statuses = []
    for i in range(8):
        new = {"username": f"minami-op{'' if i == 0 else i}", "password": "Another-password-987",
               "grants": [{"tenant": "kita", "role": "viewer"}]}  # fmt: skip
        if i:
            new["username"] = "MINAMI-OP"
        statuses.append((await api.client.post("/api/v1/users", json=new, headers=h)).status_code)
    assert statuses[:5] == [409] * 5 and set(statuses[5:]) == {423}, statuses


async def test_users_without_a_grant_belong_to_the_centre_admin(api: Api) -> None:
    """Before: any tenant admin could adopt a user holding no grant."""
    from tests.auth import add_user

    add_user(api.engine, "orphan", [])
    kita_admin, boss = await api.token("kita-admin"), await api.token("boss")
    r = await api.client.put(
        "/api/v1/users/orphan/grants/kita", json={"role": "admin"}, headers=bearer(kita_admin)
    )
    assert r.status_code == 404
    listed = (await api.client.get("/api/v1/users", headers=bearer(kita_admin))).json()["data"]
    assert "orphan" not in {u["username"] for u in listed}
    assert "orphan" in {
        u["username"] for u in (await api.client.get("/api/v1/users", headers=bearer(boss))).json()["data"]
    }
    r = await api.client.put(
        "/api/v1/users/orphan/grants/kita", json={"role": "viewer"}, headers=bearer(boss)
    )
    assert r.status_code == 200
