"""The notification API and CLI: who is on call now, a test message per person and channel (API and
`pumpwatch notify test`), delivery filters, and the watchdog heartbeat that goes quiet with the notifier."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.alarms.notify.service import NotifierService
from pumpwatch.app.cli import main
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import Fleet
from tests.notify.conftest import SECRET_KEY, START, World, write_oncall
from tests.notify.receivers import HttpReceiver, SmtpServer


async def test_on_call_now_per_tenant(world: World) -> None:
    r = await world.client.get("/api/v1/notify/oncall")
    assert r.status_code == 200
    assert r.json()["tenants"] == [
        {"tenant": "centre", "rotations": []},
        {
            "tenant": "kita",
            "rotations": [
                {
                    "rotation": "kita-duty",
                    "person": "duty1",
                    "name": "Duty One",
                    # and who next, from when: Monday 09:00 in Tokyo
                    "next_at": "2026-07-06T00:00:00+00:00",
                    "next_person": "duty2",
                    "next_name": "Duty Two",
                }
            ],
        },
        {"tenant": "minami", "rotations": []},
    ]
    world.clock.advance(6 * 86400)  # past Monday 09:00 in Tokyo: hand-over
    r = await world.client.get("/api/v1/notify/oncall", params={"tenant": "kita"})
    assert [t["rotations"][0]["person"] for t in r.json()["tenants"]] == ["duty2"]


async def test_a_test_message_per_person_and_channel(world: World) -> None:
    r = await world.client.post("/api/v1/notify/test", json={"person": "duty2"})
    assert r.status_code == 202 and len(r.json()["queued"]) == 2  # mail and webhook
    r = await world.client.post("/api/v1/notify/test", json={"person": "duty2", "channel": "hook"})
    assert r.status_code == 202 and len(r.json()["queued"]) == 1
    assert (await world.client.post("/api/v1/notify/test", json={"person": "nobody"})).status_code == 404
    r = await world.client.post("/api/v1/notify/test", json={"person": "chief", "channel": "hook"})
    assert r.status_code == 422
    await world.svc.step()
    assert [m["To"] for m in world.smtp.messages] == ["duty2@kita.example.jp"]
    assert len(world.hook.requests) == 2 and world.hook.bad_signatures == 0
    r = await world.client.get("/api/v1/notify/deliveries", params={"kind": "test", "state": "sent"})
    assert sorted(d["channel"] for d in r.json()["deliveries"]) == ["hook", "hook", "mail"]
    r = await world.client.get("/api/v1/notify/deliveries", params={"tenant": "minami"})
    assert r.json()["deliveries"] == []


def test_cli_test_message(tmp_path: Path, smtp: SmtpServer, hook: HttpReceiver, demo_fleet: Fleet) -> None:
    oncall = write_oncall(tmp_path, smtp_port=smtp.port, hook_url=hook.url)
    fleet_yaml = tmp_path / "fleet.yaml"
    demo = demo_fleet.root
    fleet_yaml.write_text(
        f"name: t\ntenants: {demo}/tenants.yaml\nstations: {demo}/stations.yaml\n"
        f"controllers: {demo}/controllers.yaml\nregister_maps: {demo}/../maps\noncall: {oncall}\n",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    res = CliRunner().invoke(
        main, ["notify", "test", "duty1", "--channel", "mail", "--fleet", str(fleet_yaml), "--db", db]
    )
    assert res.exit_code == 0, res.output
    assert "mail" in res.output and "sent" in res.output
    assert [m["To"] for m in smtp.messages] == ["duty1@kita.example.jp"]
    smtp.stop()
    res = CliRunner().invoke(main, ["notify", "test", "chief", "--fleet", str(fleet_yaml), "--db", db])
    assert res.exit_code == 1 and "pending" in res.output  # will be retried, and says why it failed
    res = CliRunner().invoke(main, ["notify", "test", "nobody", "--fleet", str(fleet_yaml), "--db", db])
    assert res.exit_code == 2 and "no person 'nobody'" in res.output


async def test_heartbeat_goes_quiet_when_the_notifier_stalls(
    world: World, tmp_path: Path, demo_fleet: Fleet
) -> None:
    beat = HttpReceiver().start()
    try:
        text = (
            (tmp_path / "oncall.yaml")
            .read_text()
            .replace(
                "notifier:\n",
                f"notifier:\n  heartbeat: {{url: '{beat.url}/ping/hc-1', method: POST, interval_s: 30}}\n",
                1,
            )
        )
        (tmp_path / "oncall.yaml").write_text(text)
        oncall = load_oncall(tmp_path / "oncall.yaml", demo_fleet)
        clock = FakeClock(START)
        svc = NotifierService(world.engine, oncall, demo_fleet, clock, SECRET_KEY)
        assert await svc.heartbeat_once() is False  # no pass yet: not healthy, no beat
        task = asyncio.create_task(svc.run(tick_s=1))
        for _ in range(40):
            clock.advance(1)
            await asyncio.sleep(0.02)
        for _ in range(200):
            if beat.requests:
                break
            await asyncio.sleep(0.02)
        assert beat.requests and beat.requests[0].method == "POST" and beat.requests[0].path == "/ping/hc-1"
        task.cancel()  # the notifier dies ...
        await asyncio.gather(task, return_exceptions=True)
        n = len(beat.requests)
        clock.advance(200)  # ... long past two intervals: the heartbeat stays quiet
        assert await svc.heartbeat_once() is False
        assert len(beat.requests) == n
    finally:
        beat.stop()


async def test_routes_say_when_notification_is_not_configured(world: World) -> None:
    world.client._transport.app.state.ctx.notify = None  # type: ignore[attr-defined]
    r = await world.client.get("/api/v1/notify/oncall")
    assert r.status_code == 404 and "not configured" in r.json()["detail"]


async def test_status_shows_the_backlog_and_pending_entries_can_be_purged(world: World) -> None:
    from datetime import timedelta

    from pumpwatch.alarms.notify.dispatcher import purge_pending

    world.raise_()
    r = await world.client.get("/api/v1/notify/status")
    assert r.json() == {"events": 1, "queued_items": 0, "outbox": 0, "escalations": 0, "running": False}
    await world.svc.step()
    r = await world.client.get("/api/v1/notify/status")
    assert r.json() == {"events": 0, "queued_items": 1, "outbox": 0, "escalations": 1, "running": True}
    world.raise_("KITA-MP-02")
    assert purge_pending(world.engine, world.clock.now()) == 0  # not older than the cut-off
    assert purge_pending(world.engine, world.clock.now() + timedelta(seconds=1)) == 1
