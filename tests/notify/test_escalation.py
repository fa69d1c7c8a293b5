"""Escalation under a FakeClock against a real SMTP server: the on-call person first (after group_wait),
the next step only after its wait, never before; an ack by link (POST, not GET) or by the API stops it and
tells the others who took it; the return to normal is sent too."""

from __future__ import annotations

import re

from pumpwatch.alarms import store
from tests.auth import add_user, bearer, token
from tests.notify.conftest import BOTH_DATABASES, World

LINK = re.compile(r"http://127\.0\.0\.1:8000(/api/v1/notify/ack/\S+)")


def ack_path(msg) -> str:  # type: ignore[no-untyped-def]
    m = LINK.search(msg.get_content())
    assert m, msg.get_content()
    return m.group(1)


async def test_step_two_fires_after_the_wait_not_before(world: World) -> None:
    aid = world.raise_()
    await world.run(29)
    assert world.smtp.messages == []  # group_wait: 30 s
    await world.run(2)
    [first] = world.smtp.messages
    assert first["To"] == "duty1@kita.example.jp"  # on call this week (rotation starts 2026-06-29)
    assert "power failure" in first["Subject"] and "KITA-MP-01" in first["Subject"]
    await world.run(260, step=5)  # 4 min 51 s after the raise: step 2 must not have fired
    assert world.smtp.to("chief@kita.example.jp") == []
    r = await world.client.get(f"/api/v1/notify/alarms/{aid}")
    esc = r.json()["escalation"]
    assert esc["state"] == "active" and esc["step"] == 1
    await world.run(45, step=5)  # past 5 min + group wait
    [second] = world.smtp.to("chief@kita.example.jp")
    assert "KITA-MP-01" in second["Subject"]
    # nobody acknowledges: after step 2's wait the final fallback (the chief) hears it is unacknowledged
    await world.run(330, step=5)
    chief = world.smtp.to("chief@kita.example.jp")
    assert len(chief) == 2 and chief[1]["Subject"].startswith("UNACKNOWLEDGED")
    r = await world.client.get(f"/api/v1/notify/alarms/{aid}")
    assert r.json()["escalation"]["state"] == "exhausted"
    assert [d["person"] for d in r.json()["deliveries"]] == ["duty1", "chief", "chief"]
    assert all(d["state"] == "sent" for d in r.json()["deliveries"])


@BOTH_DATABASES
async def test_ack_by_link_stops_the_next_step(world: World) -> None:
    aid = world.raise_()
    await world.run(31)
    [msg] = world.smtp.messages
    path = ack_path(msg)
    # GET (what a mail scanner does) changes nothing
    r = await world.client.get(path)
    assert r.status_code == 200 and "Acknowledge" in r.text and "Duty One" in r.text
    assert store.get_alarm(world.engine, aid)["state"] == "unacked_active"
    await world.run(60, step=5)
    r = await world.client.post(path)
    assert r.status_code == 200 and "Acknowledged by Duty One" in r.text
    a = store.get_alarm(world.engine, aid)
    assert a["state"] == "acked_active" and a["acked_by"] == "Duty One"
    journal = store.alarm_journal(world.engine, aid, kinds=["ack"])
    assert journal[0]["actor"] == "Duty One" and journal[0]["detail"] == "by notification link"
    await world.run(900, step=10)  # well past every step: nothing more is sent
    assert world.smtp.to("chief@kita.example.jp") == []
    esc = (await world.client.get(f"/api/v1/notify/alarms/{aid}")).json()["escalation"]
    assert esc["state"] == "acked" and esc["acked_by"] == "Duty One"
    # the link is spent: a second POST is refused and says so
    r = await world.client.post(path)
    assert r.status_code == 410 and "already used" in r.text


@BOTH_DATABASES
async def test_ack_by_api_tells_the_others_who_took_it_and_return_to_normal_is_sent(world: World) -> None:
    aid = world.raise_()
    await world.run(31)
    await world.run(300, step=5)  # step 2: the chief is told too
    assert len(world.smtp.to("chief@kita.example.jp")) == 1
    # the chief acknowledges in the console: the username is the roster's person id
    add_user(world.engine, "chief", [("kita", "operator")])
    r = await world.client.post(
        f"/api/v1/alarms/{aid}/ack",
        json={"comment": "on my way"},
        headers=bearer(await token(world.client, "chief")),
    )
    assert r.status_code == 200
    await world.run(310, step=5)
    [note] = [m for m in world.smtp.to("duty1@kita.example.jp") if "Acknowledged" in m["Subject"]]
    assert "by Kita Chief" in note.get_content()
    assert all("Acknowledged" not in m["Subject"] for m in world.smtp.to("chief@kita.example.jp"))
    world.clear()
    await world.run(310, step=5)
    for who in ("duty1", "chief"):
        assert any("Returned to normal" in m["Subject"] for m in world.smtp.to(f"{who}@kita.example.jp")), who
    # the journal names who was notified, by which channel
    notified = store.alarm_journal(world.engine, aid, kinds=["notified"])
    assert any("Duty One by mail" in e["detail"] for e in notified)


async def test_a_shelved_or_suppressed_alarm_notifies_nobody_until_it_is_back(world: World) -> None:
    from datetime import timedelta

    aid = world.raise_()
    store.shelve(
        world.engine, aid, actor="op", at=world.clock.now(), kind="timed",
        until=world.clock.now() + timedelta(minutes=20), reason="known: feeder works",
    )  # fmt: skip
    await world.run(600, step=10)
    assert world.smtp.messages == []
    store.unshelve(world.engine, aid, actor="op", at=world.clock.now())
    await world.run(40, step=5)
    assert [m["To"] for m in world.smtp.messages] == ["duty1@kita.example.jp"]


async def test_bad_links_are_refused(world: World) -> None:
    world.raise_()
    await world.run(31)
    path = ack_path(world.smtp.messages[0])
    head, sig = path.rsplit(".", 1)
    r = await world.client.post(head + "." + ("A" if sig[0] != "A" else "B") + sig[1:])
    assert r.status_code == 403 and "not valid" in r.text
    world.clock.advance(25 * 3600)  # link_ttl_h: 24
    r = await world.client.post(path)
    assert r.status_code == 403 and "expired" in r.text


async def test_the_steps_repeat_then_the_final_fallback_hears_it(world: World) -> None:
    aid = world.raise_("MINAMI-MP-01")
    await world.run(600, step=5)
    subjects = [m["Subject"] for m in world.smtp.to("m1@minami.example.jp")]
    assert len(subjects) == 2 and not subjects[1].startswith("UNACKNOWLEDGED")  # step 1, then its repeat
    await world.run(60, step=5)
    subjects = [m["Subject"] for m in world.smtp.to("m1@minami.example.jp")]
    assert len(subjects) == 3 and subjects[2].startswith("UNACKNOWLEDGED")
    esc = (await world.client.get(f"/api/v1/notify/alarms/{aid}")).json()["escalation"]
    assert esc["state"] == "exhausted" and esc["loop"] == 1
    assert world.smtp.to("duty1@kita.example.jp") == []  # another tenant's people hear nothing
