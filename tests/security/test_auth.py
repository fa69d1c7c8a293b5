"""Accounts and sessions: login, lockout and throttling, expiry (idle, absolute, operator grace), revocation,
roles, the cookie, and the command line."""

from __future__ import annotations

from sqlalchemy import select

from pumpwatch.api.auth import sessions, users
from pumpwatch.api.auth.demo import seed_demo_users
from pumpwatch.core.db.schema_security import app_user, user_session
from tests.auth import PASSWORD, bearer
from tests.security.conftest import Api


async def test_login_me_logout(api: Api) -> None:
    r = await api.login("centre")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == {
        "username": "centre",
        "display_name": None,
        "locale": "ja",
        "grants": [{"tenant": "kita", "role": "operator"}, {"tenant": "minami", "role": "operator"}],
    }
    assert body["expires_at"].startswith("2026-09-01T01:00:00")  # idle timeout one hour ahead
    cookie = r.headers["set-cookie"].lower()
    assert "pumpwatch_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/" in cookie
    # the cookie alone authenticates
    me = await api.client.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "centre"
    # the table holds no usable token
    with api.engine.connect() as conn:
        stored = conn.execute(select(user_session.c.token_hash)).scalars().all()
    assert body["token"] not in stored and len(stored) == 1
    r = await api.client.post("/api/v1/auth/logout")
    assert r.status_code == 200
    api.client.cookies.clear()
    assert (await api.client.get("/api/v1/auth/me", headers=bearer(body["token"]))).status_code == 401


async def test_no_token_bad_token_and_wrong_password(api: Api) -> None:
    r = await api.client.get("/api/v1/stations")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (await api.client.get("/api/v1/stations", headers=bearer("forged"))).status_code == 401
    assert (await api.login("centre", "wrong-password")).status_code == 401
    r = await api.login("nobody", "wrong-password")
    assert r.status_code == 401 and r.json() == {"detail": "wrong username or password"}
    assert (await api.client.get("/healthz")).status_code == 200  # public


async def test_backoff_after_five_failures_doubles_up_to_its_cap_and_time_lifts_it(api: Api) -> None:
    for _ in range(5):
        assert (await api.login("kita-op", "guess-guess")).status_code == 401
    r = await api.login("kita-op")  # the right password, but backing off
    assert r.status_code == 423 and int(r.headers["retry-after"]) == 30
    api.clock.advance(20)
    assert (await api.login("kita-op")).status_code == 423  # refusals while waiting do not count
    api.clock.advance(11)
    assert (await api.login("kita-op")).status_code == 200  # and a success clears the count
    # an attacker elsewhere (no trusted-device cookie): each further failure doubles the wait, at most 15 min
    api.client.cookies.clear()
    for _ in range(5):
        assert (await api.login("kita-op", "guess-guess")).status_code == 401
    waits = []
    for _ in range(7):
        r = await api.login("kita-op", "guess-guess")  # at once: refused, not counted
        assert r.status_code == 423
        waits.append(int(r.headers["retry-after"]))
        api.clock.advance(waits[-1])
        assert (await api.login("kita-op", "guess-guess")).status_code == 401  # counted
    assert waits == [30, 60, 120, 240, 480, 900, 900]
    # unknown names back off the same way: no enumeration by behaviour
    for _ in range(5):
        await api.login("ghost", "guess-guess")
    assert (await api.login("ghost", "guess-guess")).status_code == 423


async def test_failures_from_one_address_are_throttled(api: Api) -> None:
    for i in range(20):
        await api.login(f"name{i}", "guess-guess")
        api.clock.advance(1)
    r = await api.login("centre")
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 600
    api.clock.advance(600)
    assert (await api.login("centre")).status_code == 200


async def test_sliding_idle_timeout_and_absolute_limit(api: Api) -> None:
    t = await api.token("kita-view")
    for _ in range(10):  # a request every 50 minutes keeps it alive…
        api.clock.advance(50 * 60)
        assert (await api.client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 200
    api.clock.advance(61 * 60)  # …an hour and a minute of silence ends it
    assert (await api.client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 401
    t = await api.token("kita-view")
    for _ in range(16 * 2):
        api.clock.advance(30 * 60)
        r = await api.client.get("/api/v1/auth/me", headers=bearer(t))
    assert r.status_code == 401  # 16 h after login, however active


async def test_operator_session_does_not_end_while_handling_an_alarm(api: Api) -> None:
    t = await api.token("kita-op")  # at 00:00
    for _ in range(19):  # the console keeps it alive
        api.clock.advance(50 * 60)
        assert (await api.client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 200
    # 15 h 50 min after login: an action (any mutating request; here a refused ack counts as well)
    await api.client.post("/api/v1/alarms/999999/ack", json={}, headers=bearer(t))
    me = (await api.client.get("/api/v1/auth/me", headers=bearer(t))).json()
    assert me["expires_at"].startswith("2026-09-01T16:20")  # pushed 30 min past the action, past 16 h
    api.clock.advance(25 * 60)  # 16 h 15 min: alive because of the action
    assert (await api.client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 200
    api.clock.advance(10 * 60)
    assert (await api.client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 401


async def test_password_change_and_admin_revoke_end_every_session(api: Api) -> None:
    t1, t2 = await api.token("kita-op"), await api.token("kita-op")
    r = await api.client.post(
        "/api/v1/auth/password",
        json={"current_password": "nope-nope-nope", "new_password": "a-new-password-1"},
        headers=bearer(t1),
    )
    assert r.status_code == 401
    r = await api.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a-new-password-1"},
        headers=bearer(t1),
    )
    assert r.status_code == 200
    for t in (t1, t2):
        assert (await api.client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 401
    assert (await api.login("kita-op", "a-new-password-1")).status_code == 200
    t3 = await api.token("minami-op")
    admin = await api.token("boss")
    kita_admin = await api.token("kita-admin")
    # an admin of kita cannot see minami's user at all
    r = await api.client.post("/api/v1/users/minami-op/revoke-sessions", headers=bearer(kita_admin))
    assert r.status_code == 404
    r = await api.client.post("/api/v1/users/minami-op/revoke-sessions", headers=bearer(admin))
    assert r.status_code == 200
    assert (await api.client.get("/api/v1/auth/me", headers=bearer(t3))).status_code == 401
    r = await api.client.post("/api/v1/users/minami-op/disable", headers=bearer(admin))
    assert r.status_code == 200 and (await api.login("minami-op")).status_code == 401


async def test_roles(api: Api) -> None:
    viewer, op, eng = [await api.token(n) for n in ("kita-view", "kita-op", "kita-eng")]
    body = {"reason": "pump replacement"}
    url = "/api/v1/stations/KITA-MP-01/out-of-service"
    assert (await api.client.post(url, json=body, headers=bearer(viewer))).status_code == 403
    assert (await api.client.post(url, json=body, headers=bearer(op))).status_code == 403
    r = await api.client.post(url, json=body, headers=bearer(eng))
    assert r.status_code == 200 and r.json()["out_of_service"]
    assert (await api.client.get("/api/v1/stations/KITA-MP-01", headers=bearer(viewer))).status_code == 200
    assert (await api.client.get("/api/v1/users", headers=bearer(eng))).status_code == 403
    # viewer may log out
    assert (await api.client.post("/api/v1/auth/logout", headers=bearer(viewer))).status_code == 200


async def test_admin_creates_and_grants_within_own_tenants(api: Api) -> None:
    kita_admin = await api.token("kita-admin")
    new = {
        "username": "suzuki",
        "password": "suzuki-password",
        "grants": [{"tenant": "minami", "role": "viewer"}],
    }
    r = await api.client.post("/api/v1/users", json=new, headers=bearer(kita_admin))
    assert r.status_code == 404  # minami does not exist for a kita admin
    new["grants"] = [{"tenant": "kita", "role": "viewer"}]
    r = await api.client.post("/api/v1/users", json=new, headers=bearer(kita_admin))
    assert r.status_code == 201 and r.json()["grants"] == [{"tenant": "kita", "role": "viewer"}]
    r = await api.client.put(
        "/api/v1/users/suzuki/grants/kita", json={"role": "operator"}, headers=bearer(kita_admin)
    )
    assert r.status_code == 200
    listed = (await api.client.get("/api/v1/users", headers=bearer(kita_admin))).json()["data"]
    assert {u["username"] for u in listed} == {
        "boss",
        "kita-admin",
        "kita-op",
        "kita-eng",
        "kita-view",
        "centre",
        "suzuki",
    }
    assert all(g["tenant"] == "kita" for u in listed for g in u["grants"])  # minami grants not shown
    # the shared-centre user holds minami too: a kita admin may not disable them
    r = await api.client.post("/api/v1/users/centre/disable", headers=bearer(kita_admin))
    assert r.status_code == 403


def test_demo_users_seeded_once(sqlite_url: str) -> None:
    from pumpwatch.core.db.engine import make_engine
    from pumpwatch.core.db.migrate import upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    assert seed_demo_users(engine, ["kita", "minami"]) == [
        "admin",
        "operator",
        "kita",
        "minami",
        "viewer",
        "trainer",
    ]
    assert seed_demo_users(engine, ["kita", "minami"]) == []
    by_name = {u["username"]: u for u in users.list_users(engine)}
    assert by_name["operator"]["grants"] == [
        {"tenant": "kita", "role": "operator"},
        {"tenant": "minami", "role": "operator"},
    ]
    assert by_name["viewer"]["grants"] == [{"tenant": "kita", "role": "viewer"}]
    assert by_name["admin"]["demo"] and users.demo_users_present(engine)
    with engine.connect() as conn:
        hashed = conn.execute(select(app_user.c.password_hash).where(app_user.c.username == "kita")).scalar()
    assert hashed.startswith("$argon2id$")
    engine.dispose()


def test_cli_user_commands(sqlite_url: str) -> None:
    from click.testing import CliRunner

    from pumpwatch.app.cli import main

    def cli(*args: str, stdin: str = ""):
        return CliRunner().invoke(main, ["user", *args, "--db", sqlite_url], input=stdin)

    r = cli(
        "add", "tanaka", "--grant", "kita:operator", "--grant", "minami:viewer", stdin="tanaka-password\n"
    )
    assert r.exit_code == 0, r.output
    assert cli("add", "tanaka", stdin="tanaka-password\n").exit_code != 0  # exists
    r = cli("add", "weak", stdin="short\n")
    assert r.exit_code != 0 and "10 characters" in r.output
    assert cli("add", "x", "--grant", "kita:boss", stdin="long-enough-pw\n").exit_code != 0
    assert cli("grant", "tanaka", "kita:engineer").exit_code == 0
    assert cli("revoke", "tanaka", "minami").exit_code == 0
    assert cli("disable", "tanaka").exit_code == 0
    out = cli("list").output
    assert "tanaka\tkita:engineer (disabled)" in out
    from pumpwatch.core import audit
    from pumpwatch.core.db.engine import make_engine

    engine = make_engine(sqlite_url)
    actions = [(a["action"], a["tenant_id"], a["new_value"]) for a in audit.read(engine)]
    assert actions == [  # one record per tenant, naming that tenant's grant only
        ("user.create", "kita", "kita:operator"),
        ("user.create", "minami", "minami:viewer"),
        ("user.grant", "kita", "engineer"),
        ("user.revoke", "minami", None),
        ("user.disable", "kita", "disabled"),
    ]
    engine.dispose()


async def test_session_alive_for_streams(api: Api) -> None:
    r = await api.login("kita-view")
    t = r.json()["token"]
    user = sessions.authenticate(api.engine, api.cfg, t, now=api.clock.now())
    assert user is not None and sessions.session_alive(
        api.engine, api.cfg, user.session_id, now=api.clock.now()
    )
    await api.client.post("/api/v1/auth/logout", headers=bearer(t))
    assert not sessions.session_alive(api.engine, api.cfg, user.session_id, now=api.clock.now())


def test_production_hash_parameters() -> None:
    from argon2 import PasswordHasher, extract_parameters

    h = PasswordHasher().hash("any-password-at-all")
    p = extract_parameters(h)
    assert h.startswith("$argon2id$") and p.memory_cost >= 65536 and p.time_cost >= 3
    import pumpwatch.api.auth.passwords as pw

    assert pw.verify(h, "any-password-at-all") and not pw.verify(h, "another-password")
