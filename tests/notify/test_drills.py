"""Notifications of a drill's alarms (issue 18): only the drill's contacts are told, no duty rotation or
escalation, and each message says DRILL first; `notify: normal` notifies as usual; after the drill the
same alarm reaches the duty officer again."""

from __future__ import annotations

from datetime import timedelta

from pumpwatch.core import drills
from tests.notify.conftest import World


def start_drill(world: World, notify: str = "drill_contacts", contacts: tuple[str, ...] = ("chief",)) -> int:
    now = world.clock.now()
    return drills.start(
        world.engine,
        tenant_id="kita",
        name="t",
        title="Test drill",
        scenario="(test)",
        notify=notify,
        contacts=list(contacts),
        at=now,
        ends_at=now + timedelta(hours=1),
        actor="trainer",
    )


async def test_a_drill_alarm_reaches_its_contacts_only_marked_drill(world: World) -> None:
    did = start_drill(world)
    aid = world.raise_("KITA-MP-01")
    await world.run(120)
    msgs = world.smtp.messages
    assert [m["To"] for m in msgs] == ["chief@kita.example.jp"], [m["To"] for m in msgs]
    assert msgs[0]["Subject"].startswith("[DRILL]")
    assert "DRILL: an exercise, not a real event." in msgs[0].get_content()
    await world.run(20 * 60, step=30)  # no escalation step ever fires for it
    assert [m["To"] for m in world.smtp.messages] == ["chief@kita.example.jp"]
    r = await world.client.get(f"/api/v1/alarms/{aid}")
    assert r.json()["drill_id"] == did
    # the drill ends: the next alarm is real and goes to the duty officer, unmarked
    drills.stop(world.engine, did, at=world.clock.now(), actor="trainer", outcome="stopped")
    world.raise_("KITA-MP-02")
    await world.run(120)
    real = world.smtp.to("duty1@kita.example.jp")
    assert real and not real[0]["Subject"].startswith("[DRILL]")


async def test_a_drill_that_says_notify_normal_uses_the_usual_route(world: World) -> None:
    start_drill(world, notify="normal", contacts=())
    world.raise_("KITA-MP-01")
    await world.run(120)
    [msg] = world.smtp.to("duty1@kita.example.jp")
    assert msg["Subject"].startswith("[DRILL]")  # still said: it is an exercise


async def test_another_tenants_alarm_is_not_part_of_the_drill(world: World) -> None:
    start_drill(world)
    world.raise_("MINAMI-MP-01")
    await world.run(120)
    [msg] = world.smtp.to("m1@minami.example.jp")
    assert not msg["Subject"].startswith("[DRILL]")
