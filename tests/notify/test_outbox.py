"""The outbox: stored before sent, survives a crash between claim and send and between send and record
(the receiver sees each message once by its dedupe key), two senders never send one row, a dead primary
channel hands over to the fallback contact, retries back off."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from pumpwatch.alarms.notify.outbox import OutboxSender, claim
from pumpwatch.core.backoff import exponential
from pumpwatch.core.db.schema import notification
from tests.notify.conftest import BOTH_DATABASES, World

pytestmark = BOTH_DATABASES


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the sender catches it."""


async def _queued(world: World, n: int = 1) -> None:
    """Raise alarms and let the dispatcher store their messages, without sending."""
    for i in range(n):
        world.raise_(f"KITA-MP-0{i + 1}")
    await world.svc.dispatch_once()  # escalation step 1: queued for the on-call person
    world.clock.advance(31)
    await world.svc.dispatch_once()  # group wait over: the message is stored


def _rows(world: World) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(notification).order_by(notification.c.id))]


async def test_crash_after_the_claim_loses_nothing_and_sends_once(world: World) -> None:
    await _queued(world)

    async def die(rows: list[dict]) -> None:
        raise Crash

    first = OutboxSender(world.svc.ctx, world.svc.notifiers, world.clock, worker="doomed", after_claim=die)
    with pytest.raises(Crash):
        await first.run_once()
    assert world.smtp.messages == []
    [row] = _rows(world)
    assert row["state"] == "pending" and row["claimed_by"] == "doomed"
    second = OutboxSender(world.svc.ctx, world.svc.notifiers, world.clock, worker="heir")
    assert await second.run_once() == 0  # the lease still holds
    world.clock.advance(61)  # lease_s: 60
    assert await second.run_once() == 1
    assert len(world.smtp.messages) == 1
    [row] = _rows(world)
    assert row["state"] == "sent" and row["attempts"] == 2


async def test_crash_between_send_and_record_repeats_the_same_message_id(world: World) -> None:
    await _queued(world)
    mail = world.svc.notifiers["mail"]

    class SendThenDie:
        name = "mail"

        def secrets(self, msg=None):  # type: ignore[no-untyped-def]
            return []

        async def notify(self, msg) -> None:  # type: ignore[no-untyped-def]
            await mail.notify(msg)
            raise Crash  # sent, but the process dies before the row says so

    doomed = OutboxSender(world.svc.ctx, {"mail": SendThenDie()}, world.clock, worker="doomed")
    with pytest.raises(Crash):
        await doomed.run_once()
    world.clock.advance(61)
    await OutboxSender(world.svc.ctx, world.svc.notifiers, world.clock, worker="heir").run_once()
    assert len(world.smtp.messages) == 2  # at least once ...
    assert len(world.smtp.unique_ids()) == 1  # ... and the receiver can tell it is one message
    assert _rows(world)[0]["state"] == "sent"


async def test_two_senders_never_send_one_row(world: World) -> None:
    await _queued(world, n=6)
    assert len(_rows(world)) == 1  # one person, one grouped message: make more rows to race for
    proto = {k: v for k, v in _rows(world)[0].items() if k != "id"}
    with world.engine.begin() as conn:
        for i in range(2, 41):
            conn.execute(notification.insert().values({**proto, "dedupe_key": f"race:{i}"}))
    now = world.clock.now()
    a, b = await asyncio.gather(
        asyncio.to_thread(claim, world.svc.ctx, "a", now, 25),
        asyncio.to_thread(claim, world.svc.ctx, "b", now, 25),
    )
    ids_a, ids_b = {r["id"] for r in a}, {r["id"] for r in b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 40


async def test_primary_channel_down_falls_back_to_the_next_contact(world: World) -> None:
    world.smtp.stop()
    world.raise_()
    await world.run(31)  # group wait, first attempt fails (connection refused)
    await world.run(10)  # second attempt (backoff 5 s) fails: attempts_before_fallback = 2 → webhook
    assert world.smtp.controller is None
    [req] = world.hook.requests
    assert world.hook.bad_signatures == 0
    import json

    body = json.loads(req.body)
    assert body["recipient"] == "duty1" and "power failure" in body["subject"]
    assert body["ack_url"].startswith("http://127.0.0.1:8000/api/v1/notify/ack/")
    r = await world.client.get("/api/v1/notify/deliveries", params={"person": "duty1"})
    ds = {d["channel"]: d for d in r.json()["deliveries"]}
    assert ds["mail"]["state"] == "failed" and ds["mail"]["attempts"] == 2
    assert "SMTPConnectError" in ds["mail"]["last_error"] or "OSError" in ds["mail"]["last_error"]
    assert ds["hook"]["state"] == "sent" and ds["hook"]["fallback_of"] == ds["mail"]["id"]
    # the fallback is the same message: same Idempotency-Key base as the mail's Message-ID would carry
    assert req.headers["idempotency-key"]


async def test_retries_back_off_and_a_permanent_refusal_moves_on_at_once(world: World) -> None:
    assert [exponential(n, 5, 60) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    world.smtp.box.refuse["duty1@kita.example.jp"] = "550 5.1.1 no such user"
    world.raise_()
    await world.run(31)
    r = await world.client.get("/api/v1/notify/deliveries", params={"person": "duty1"})
    ds = {d["channel"]: d for d in r.json()["deliveries"]}
    assert ds["mail"]["state"] == "failed" and ds["mail"]["attempts"] == 1  # not retried: 5xx is final
    assert ds["hook"]["state"] == "sent"


async def test_webhook_signature_and_idempotency_key_survive_a_retry(world: World) -> None:
    world.hook.status = 503
    world.smtp.stop()
    world.raise_()
    await world.run(41)  # mail fails twice → webhook, which answers 503
    assert world.hook.requests == []
    world.hook.status = 200
    await world.run(20)
    assert len(world.hook.requests) == 1 and world.hook.bad_signatures == 0
    with world.engine.begin() as conn:
        conn.execute(update(notification).values(state="pending", claimed_until=None))  # replay every row
    world.smtp.start()
    await world.run(2)
    assert len(world.hook.unique_keys()) == 1  # the replay carries the same key
