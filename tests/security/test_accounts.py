"""Accounts like a bank's (issue 15 part 5), each finding tried as a hostile client would: lockout that an
attacker cannot turn against the operator, an admin's unlock, a lockout that is audited for the tenant's
admins, throttled password change, names unique whatever their case, a password policy that knows common
and low-entropy passwords, and TOTP second factor for engineers and admins (enrolment with a QR code,
the second step, replay, recovery codes, reset)."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import insert, select

from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.core import audit
from pumpwatch.core.db.schema_security import app_user
from tests.auth import PASSWORD, add_user, bearer, next_code, totp_secret
from tests.security.conftest import T0, Api, make_api


async def test_an_attacker_cannot_lock_the_admin_out_of_the_control_room(api: Api) -> None:
    """Before: 5 wrong passwords from anywhere locked `boss` (admin included) for 15 min."""
    control_room = api.client
    assert (await api.login("boss")).status_code == 200  # the console signed in yesterday: trusted device
    device = {"pumpwatch_device": control_room.cookies.get("pumpwatch_device")}
    assert device["pumpwatch_device"]
    control_room.cookies.clear()
    for _ in range(12):  # the attacker, elsewhere, without the console's device cookie
        r = await api.client.post("/api/v1/auth/login", json={"username": "boss", "password": "guess-guess"})
        assert r.status_code in (401, 423)
        api.client.cookies.clear()
    assert r.status_code == 423  # the attacker is held back …
    api.client.cookies.update(device)
    r = await api.login("boss")  # … the operator at the console is not
    assert r.status_code == 200 and r.json()["mfa"]["step"] == "verify"


async def test_backoff_is_an_audit_record_for_the_tenants_admins_and_an_admin_unlocks(api: Api) -> None:
    for _ in range(5):
        await api.login("kita-op", "guess-guess")
    assert (await api.login("kita-op")).status_code == 423
    api.clock.advance(1)
    adm = await api.token("kita-admin")
    rows = (
        await api.client.get("/api/v1/audit", params={"action": "login.backoff"}, headers=bearer(adm))
    ).json()
    assert [(r["username"], r["tenant"], r["result"]) for r in rows["data"]] == [
        ("kita-op", "kita", "locked")
    ]
    users = (await api.client.get("/api/v1/users", headers=bearer(adm))).json()["data"]
    (op,) = [u for u in users if u["username"] == "kita-op"]
    assert op["locked_until"] is not None  # shown where the admin looks
    add_user(api.engine, "minami-admin", [("minami", "admin")])
    other = await api.token("minami-admin")  # kita's user does not exist for minami's admin
    assert (await api.client.post("/api/v1/users/kita-op/unlock", headers=bearer(other))).status_code == 404
    r = await api.client.post("/api/v1/users/kita-op/unlock", headers=bearer(adm))
    assert r.status_code == 200, r.text
    assert (await api.login("kita-op")).status_code == 200


async def test_wrong_current_passwords_back_off(api: Api) -> None:
    """Before: 12 wrong current passwords on /auth/password were 12 plain 401s."""
    t = await api.token("kita-op")
    codes = []
    for _ in range(12):
        r = await api.client.post(
            "/api/v1/auth/password",
            json={"current_password": "guess-guess", "new_password": "Another-password-987"},
            headers=bearer(t),
        )
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {423}, codes
    assert int(r.headers["retry-after"]) >= 1
    failed = [
        r for r in audit.read(api.engine, action="user.password") if r["result"] in ("failed", "locked")
    ]
    assert len(failed) == 12
    # the backoff of password changes does not lock the sign-in
    assert (await api.login("kita-op")).status_code == 200


async def test_usernames_are_unique_whatever_their_case(api: Api) -> None:
    """Before: `ADMIN` could be created beside `admin`."""
    t = await api.token("boss")
    new = {
        "username": "KITA-OP",
        "password": "Another-password-987",
        "grants": [{"tenant": "kita", "role": "viewer"}],
    }
    r = await api.client.post("/api/v1/users", json=new, headers=bearer(t))
    assert r.status_code == 409 and "taken" in r.json()["detail"]
    r = await api.login("Kita-Op")  # and sign-in finds the name whatever its case
    assert r.status_code == 200 and r.json()["user"]["username"] == "kita-op"
    from sqlalchemy.exc import IntegrityError

    # the database refuses it too (a unique index on lower(username)), whoever writes
    with pytest.raises(IntegrityError), api.engine.begin() as conn:
        conn.execute(
            insert(app_user).values(
                username="Kita-OP", password_hash="x", created_at=T0, password_changed_at=T0
            )
        )


def test_the_migration_refuses_names_that_differ_only_in_case(sqlite_url: str) -> None:
    from pumpwatch.core.db.engine import make_engine
    from pumpwatch.core.db.migrate import upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine, "0006_latest_value_hot")
    with engine.begin() as conn:
        for name in ("admin", "ADMIN", "tanaka"):
            conn.execute(
                insert(app_user).values(
                    username=name, password_hash="x", created_at=T0, password_changed_at=T0
                )
            )
    with pytest.raises(Exception, match=r"'admin' \(id 1\), 'ADMIN' \(id 2\)\. Rename"):
        upgrade(engine)
    engine.dispose()


@pytest.mark.parametrize("weak", ["aaaaaaaaaa", "password123", "suzuki2026", "pumpwatch-demo", "qwertyuiop"])
async def test_common_and_low_entropy_passwords_are_refused(api: Api, weak: str) -> None:
    """Before: the policy was length only (`aaaaaaaaaa` was accepted)."""
    t = await api.token("boss")
    new = {"username": "suzuki", "password": weak, "grants": [{"tenant": "kita", "role": "viewer"}]}
    r = await api.client.post("/api/v1/users", json=new, headers=bearer(t))
    assert r.status_code == 422 and weak not in r.text, r.text
    op = await api.token("kita-op")
    r = await api.client.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": weak}, headers=bearer(op)
    )
    assert r.status_code == 422 and weak not in r.text


# --- the second factor ------------------------------------------------------------------------------------


async def test_an_admin_password_alone_reaches_nothing(api: Api) -> None:
    r = await api.login("kita-admin")
    assert r.status_code == 200
    body = r.json()
    assert body["mfa"]["step"] == "verify" and body["user"]["grants"] == []
    assert body["mfa"]["withheld"] == [{"tenant": "kita", "role": "admin"}]
    t = body["token"]
    for path in ("/api/v1/stations", "/api/v1/users", "/api/v1/audit", "/api/v1/alarms"):
        assert (await api.client.get(path, headers=bearer(t))).status_code == 401, path
    r = await api.client.post("/api/v1/auth/mfa/verify", json={"code": "000000"}, headers=bearer(t))
    assert r.status_code == 401
    r = await api.client.post(
        "/api/v1/auth/mfa/verify", json={"code": next_code(api.client, "kita-admin")}, headers=bearer(t)
    )
    assert r.status_code == 200 and r.json()["grants"] == [{"tenant": "kita", "role": "admin"}]
    assert (await api.client.get("/api/v1/users", headers=bearer(t))).status_code == 200


async def test_a_used_code_is_refused_and_wrong_codes_back_off(api: Api) -> None:
    code = pyotp.TOTP(totp_secret("kita-eng")).at(api.clock.now())
    r = await api.client.post(
        "/api/v1/auth/login", json={"username": "kita-eng", "password": PASSWORD, "otp": code}
    )
    assert r.status_code == 200 and r.json()["mfa"]["step"] is None  # one request, both factors
    r = await api.client.post(
        "/api/v1/auth/login", json={"username": "kita-eng", "password": PASSWORD, "otp": code}
    )
    assert r.status_code == 401 and "already used" in r.json()["detail"]  # replayed within its 30 s
    api.client.cookies.clear()
    t = (await api.login("kita-eng")).json()["token"]
    statuses = []
    for guess in range(8):
        r = await api.client.post("/api/v1/auth/mfa/verify", json={"code": f"{guess:06d}"}, headers=bearer(t))
        statuses.append(r.status_code)
    assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {423}  # the replay counted as the 1st


async def test_recovery_codes_work_once_each(api: Api) -> None:
    add_user(api.engine, "kita-boss", [("kita", "admin")], enrol=False)
    r = await api.login("kita-boss")
    assert r.json()["mfa"]["step"] == "enrol"
    t = r.json()["token"]
    r = await api.client.post("/api/v1/auth/mfa/enrol", headers=bearer(t))
    assert r.status_code == 200
    secret = r.json()["secret"]
    qr = await api.client.get(r.json()["qr_svg"], headers=bearer(t))
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in qr.content and secret.encode() not in qr.content  # an image, not the text
    r = await api.client.post("/api/v1/auth/mfa/enrol/confirm", json={"code": "123456"}, headers=bearer(t))
    assert r.status_code == 401
    code = pyotp.TOTP(secret).at(api.clock.now())
    r = await api.client.post("/api/v1/auth/mfa/enrol/confirm", json={"code": code}, headers=bearer(t))
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10 and r.json()["me"]["mfa"]["step"] is None
    assert (await api.client.get("/api/v1/users", headers=bearer(t))).status_code == 200
    with api.engine.connect() as conn:
        stored = conn.execute(
            select(app_user.c.recovery_codes).where(app_user.c.username == "kita-boss")
        ).scalar()
    assert all(c not in stored for c in codes)  # only hashes are kept
    for expected in (200, 401):  # the same recovery code twice
        t2 = (await api.login("kita-boss")).json()["token"]
        r = await api.client.post(
            "/api/v1/auth/mfa/verify", json={"code": codes[0].lower()}, headers=bearer(t2)
        )
        assert r.status_code == expected
    st = (await api.client.get("/api/v1/auth/mfa", headers=bearer(t))).json()
    assert st["enrolled"] and st["recovery_codes_left"] == 9


async def test_a_password_alone_cannot_replace_the_phone(api: Api) -> None:
    t = (await api.login("kita-admin")).json()["token"]  # the password, stolen
    assert (await api.client.post("/api/v1/auth/mfa/enrol", headers=bearer(t))).status_code == 403
    assert (await api.client.get("/api/v1/auth/mfa/enrol/qr.svg", headers=bearer(t))).status_code == 403


def test_the_centre_admin_resets_a_lost_phone(sqlite_url: str) -> None:
    from click.testing import CliRunner

    from pumpwatch.app.cli import main
    from pumpwatch.core.db.engine import make_engine
    from pumpwatch.core.db.migrate import upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    add_user(engine, "tanaka", [("kita", "admin")])
    r = CliRunner().invoke(main, ["user", "mfa-reset", "TANAKA", "--db", sqlite_url])
    assert r.exit_code == 0 and "second factor of TANAKA reset" in r.output, r.output
    with engine.connect() as conn:
        row = conn.execute(select(app_user).where(app_user.c.username == "tanaka")).one()
    assert row.totp_secret is None and row.recovery_codes is None
    (rec,) = audit.read(engine, action="user.mfa_reset")
    assert rec["tenant_id"] == "kita" and rec["old_value"] == "enrolled"
    engine.dispose()


async def test_a_tenant_may_ask_a_second_factor_of_every_role(sqlite_url: str) -> None:
    from pumpwatch.core.config import load_fleet
    from tests.conftest import DEMO_FLEET

    fleet = load_fleet(DEMO_FLEET)
    fleet.tenants["minami"] = fleet.tenants["minami"].model_copy(update={"require_mfa": True})
    a, _ = await make_api(sqlite_url, fleet=fleet)
    async with a.client:
        r = await a.login("centre")  # operator of kita and minami
        assert r.json()["mfa"]["step"] == "enrol"
        assert r.json()["user"]["grants"] == [{"tenant": "kita", "role": "operator"}]  # minami waits
        assert (await a.login("kita-op")).json()["mfa"]["step"] is None
    a.engine.dispose()


async def test_demo_users_need_no_second_factor_in_the_demo_only(sqlite_url: str) -> None:
    from pumpwatch.api.auth.demo import seed_demo_users

    for demo, step in ((True, None), (False, "enrol")):
        a, _ = await make_api(sqlite_url if demo else sqlite_url + "-2", cfg=AuthConfig(demo=demo))
        async with a.client:
            seed_demo_users(a.engine, ["kita", "minami"])
            r = await a.login("admin", "pumpwatch-demo")
            assert r.status_code == 200 and r.json()["mfa"]["step"] == step
            assert r.json()["mfa"]["exempt"] == ("demo" if demo else None)
        a.engine.dispose()
