"""Ack links as an attacker tries them (issue 15 part 4): before, a token forged with the public default
secret was accepted, and one link acknowledged again and again, for any notification id and person name,
including a person of another tenant. Now a link is signed with a secret that is never the default outside
the demo, acknowledges once, only its own message's alarms, as the person and tenant it was sent to, and
is refused once everything in it is acknowledged; out-of-range fields are a 4xx, never a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

from pumpwatch.alarms import store
from pumpwatch.alarms.notify import tokens
from pumpwatch.core.settings import DEFAULT_SECRET
from tests.notify.conftest import SECRET_KEY, World
from tests.notify.test_escalation import ack_path


def _raw(secret: str, payload: dict) -> str:
    """A token with any payload, signed with `secret` (what an attacker holding the key could make)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(secret.encode(), b"pumpwatch-ack:" + body, hashlib.sha256).digest()
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(body)}.{enc(sig)}"


async def _first_link(world: World, station: str = "KITA-MP-01") -> tuple[int, str]:
    aid = world.raise_(station)
    await world.run(31)
    return aid, ack_path(world.smtp.messages[-1])


async def test_a_link_acknowledges_once(world: World) -> None:
    aid, path = await _first_link(world)
    assert (await world.client.post(path)).status_code == 200
    assert store.get_alarm(world.engine, aid)["acked_by"] == "Duty One"
    world.clear()
    again = world.raise_()  # the station fails again: the old link must acknowledge nothing
    r = await world.client.post(path)
    assert r.status_code == 410 and "already used" in r.text
    assert store.get_alarm(world.engine, again)["state"] == "unacked_active"


async def test_a_link_is_refused_once_the_alarm_was_acknowledged_in_the_console(world: World) -> None:
    aid, path = await _first_link(world)
    r = await world.client.post(f"/api/v1/alarms/{aid}/ack", json={"comment": "on it"})
    assert r.status_code == 200
    for method in ("GET", "POST"):
        r = await world.client.request(method, path)
        assert r.status_code == 410 and "already acknowledged" in r.text, (method, r.text)


async def test_a_token_forged_with_the_default_secret_is_refused(world: World) -> None:
    aid, path = await _first_link(world)
    nid = tokens.verify(SECRET_KEY, path.rsplit("/", 1)[1], world.clock.now()).notification_id
    exp = int((world.clock.now() + timedelta(hours=1)).timestamp())
    forged = tokens.sign(DEFAULT_SECRET, nid, "duty1", world.clock.now() + timedelta(hours=1), "kita")
    for method in ("GET", "POST"):
        r = await world.client.request(method, f"/api/v1/notify/ack/{forged}")
        assert r.status_code == 403, r.text
    forged = _raw(DEFAULT_SECRET, {"n": nid, "p": "duty1", "e": exp})
    assert (await world.client.post(f"/api/v1/notify/ack/{forged}")).status_code == 403
    assert store.get_alarm(world.engine, aid)["state"] == "unacked_active"


async def test_a_token_naming_another_message_person_or_tenant_is_refused(world: World) -> None:
    """Even signed with the real key (a leaked one, or a bug elsewhere): what it names must go together."""
    kita_aid, kita_path = await _first_link(world, "KITA-MP-01")
    minami_aid, _ = await _first_link(world, "MINAMI-MP-01")
    kita_nid = tokens.verify(SECRET_KEY, kita_path.rsplit("/", 1)[1], world.clock.now()).notification_id
    (minami_msg,) = [m for m in world.smtp.messages if m["To"] == "m1@minami.example.jp"]
    minami_nid = tokens.verify(
        SECRET_KEY, ack_path(minami_msg).rsplit("/", 1)[1], world.clock.now()
    ).notification_id
    exp = world.clock.now() + timedelta(hours=1)
    bad = [
        tokens.sign(SECRET_KEY, kita_nid, "m1", exp, "minami"),  # minami's person on kita's message
        tokens.sign(SECRET_KEY, kita_nid, "duty2", exp, "kita"),  # another kita person
        tokens.sign(SECRET_KEY, kita_nid, "duty1", exp, "minami"),  # the right person, another tenant
        tokens.sign(SECRET_KEY, minami_nid, "duty1", exp, "kita"),  # kita's person on minami's message
        tokens.sign(SECRET_KEY, minami_nid, "nobody", exp, "minami"),  # a name nobody has
        tokens.sign(SECRET_KEY, 999_999, "duty1", exp, "kita"),  # a message nobody sent
    ]
    for t in bad:
        r = await world.client.post(f"/api/v1/notify/ack/{t}")
        assert r.status_code == 403, r.text
    assert store.get_alarm(world.engine, kita_aid)["state"] == "unacked_active"
    assert store.get_alarm(world.engine, minami_aid)["state"] == "unacked_active"


async def test_out_of_range_fields_and_expiry_are_4xx_not_5xx(world: World) -> None:
    _, path = await _first_link(world)
    nid = tokens.verify(SECRET_KEY, path.rsplit("/", 1)[1], world.clock.now()).notification_id
    exp = int((world.clock.now() + timedelta(hours=1)).timestamp())
    for payload in (
        {"n": nid, "p": "duty1", "e": 10**20},
        {"n": 2**70, "p": "duty1", "e": exp},
        {"n": nid, "p": "duty1", "e": -(10**20)},
        {"n": True, "p": "duty1", "e": exp},
        {"n": nid, "p": ["duty1"], "e": exp},
        {"n": nid, "p": "duty1", "e": float("1e300")},
    ):
        for method in ("GET", "POST"):
            r = await world.client.request(method, f"/api/v1/notify/ack/{_raw(SECRET_KEY, payload)}")
            assert 400 <= r.status_code < 500, (payload, r.status_code)
    world.clock.advance(25 * 3600)  # link_ttl_h is 24
    r = await world.client.post(path)
    assert r.status_code == 403 and "expired" in r.text
    r = await world.client.get("/api/v1/notify/ack/" + "A" * 5000)
    assert r.status_code == 403


async def test_a_link_ack_is_the_incidents_first_response(world: World) -> None:
    """The incident's first response is the first acknowledgement, from the console or from the phone."""
    from sqlalchemy import insert, select, update

    from pumpwatch.core.db.schema import alarm, incident

    aid, path = await _first_link(world)
    with world.engine.begin() as conn:
        iid = conn.execute(
            insert(incident)
            .values(tenant_id="kita", kind="area_power_outage", power_area="kita-feeder-1",
                    title="3 stations", phase="report", opened_at=world.clock.now())
            .returning(incident.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(update(alarm).where(alarm.c.id == aid).values(incident_id=iid))
    assert (await world.client.post(path)).status_code == 200
    with world.engine.connect() as conn:
        row = conn.execute(select(incident).where(incident.c.id == iid)).one()
    assert row.phase == "first_response" and row.first_response_at == world.clock.now()
