"""Link leases (pumpwatch.core.leases) on a fake clock: a lapsed lease is claimed within its bound, a
resumed owner stops, asks its link back and gets it, and writes are fenced by the generation they were
read under."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pumpwatch.core.clock import FakeClock
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.leases import Fence, LeaseKeeper, acquire, grants, leases
from pumpwatch.core.writer import decode_rows, encode_rows, encode_tagged_rows

INTERVAL = 5.0


class Recorder:
    def __init__(self) -> None:
        self.gained: list[str] = []
        self.lost: list[str] = []

    async def gain(self, links: list[str]) -> None:
        self.gained += links

    async def lose(self, links: list[str]) -> None:
        self.lost += links


def keeper(engine, owner: str, clock: FakeClock, home: list[str], rec: Recorder) -> LeaseKeeper:
    return LeaseKeeper(
        engine,
        owner,
        clock,
        home=home,
        links=["gw-a", "gw-b"],
        interval_s=INTERVAL,
        on_gain=rec.gain,
        on_lose=rec.lose,
    )


@pytest.fixture
def engine(db_url: str):
    e = make_engine(db_url)
    upgrade(e)
    yield e
    e.dispose()


async def test_a_lapsed_lease_is_taken_over_within_its_bound_and_given_back(engine) -> None:
    clock = FakeClock()
    ra, rb, rs = Recorder(), Recorder(), Recorder()
    a = keeper(engine, "shard-0", clock, ["gw-a"], ra)
    b = keeper(engine, "shard-1", clock, ["gw-b"], rb)
    s = keeper(engine, "standby-x", clock, [], rs)
    for k in (a, b, s):
        await k.step()
    assert ra.gained == ["gw-a"] and rb.gained == ["gw-b"] and rs.gained == []
    assert a.generation("gw-a") == 1 and a.may_poll("gw-a") and not a.may_poll("gw-b")

    # shard-0 stops renewing (SIGKILL, SIGSTOP) right after its renewal at t0; the standby beats first
    t0 = clock.monotonic()
    taken_at = None
    while taken_at is None:
        clock.advance(INTERVAL)
        for k in (s, b):
            await k.step()
        if rs.gained:
            taken_at = clock.monotonic()
        assert clock.monotonic() - t0 <= 60, "never taken over"
    assert rs.gained == ["gw-a"] and s.generation("gw-a") == 2 and "gw-a" not in b.held
    # bound: the lease's two beats, and the claimer's next beat
    assert taken_at - t0 <= s.ttl_s + INTERVAL
    assert s.takeovers[-1]["from"] == "shard-0"

    # shard-0 resumes: it may not poll (its lease is older than its ttl while the database answers)
    assert not a.may_poll("gw-a")
    await a.step()
    assert ra.lost == ["gw-a"] and "gw-a" not in a.held  # lost: renewing found another generation
    (row,) = [r for r in leases(engine) if r["link_id"] == "gw-a"]
    assert row["owner"] == "standby-x" and row["wanted_by"] == "shard-0"  # asked back

    clock.advance(INTERVAL)
    await s.step()  # the standby gives it back: stops polling first, then releases
    assert rs.lost == ["gw-a"] and "gw-a" not in s.held
    assert s.given_back == 1
    await b.step()  # another collector does not snatch a link its home asked back
    assert "gw-a" not in b.held
    await a.step()
    assert a.generation("gw-a") == 3 and ra.gained == ["gw-a", "gw-a"]
    assert [g["owner"] for g in grants(engine, "gw-a")] == ["shard-0", "standby-x", "shard-0"]


async def test_a_newcomer_claims_only_after_renewing_for_a_ttl(engine) -> None:
    """After a database outage every lease has lapsed; the owners renew at their first beat, and nobody
    claims another's link before having been connected for a whole ttl."""
    clock = FakeClock()
    ra, rs = Recorder(), Recorder()
    a = keeper(engine, "shard-0", clock, ["gw-a"], ra)
    await a.step()
    clock.advance(60)  # every lease lapsed (as after an outage)
    s = keeper(engine, "standby-x", clock, [], rs)
    await s.step()
    assert rs.gained == []  # connected for less than a ttl
    await a.step()  # the owner renews at its generation, lapsed or not
    assert a.generation("gw-a") == 1 and ra.lost == []
    clock.advance(INTERVAL)
    await s.step()
    clock.advance(INTERVAL)
    await s.step()
    await a.step()
    assert rs.gained == ["gw-b"]  # the one nobody holds; gw-a stays with its owner


async def test_a_restarted_owner_takes_its_links_at_once_with_a_new_generation(engine) -> None:
    clock = FakeClock()
    old = keeper(engine, "shard-0", clock, ["gw-a"], Recorder())
    await old.step()
    new = keeper(engine, "shard-0", clock, ["gw-a"], Recorder())
    await new.step()
    assert new.generation("gw-a") == 2  # not waiting for its own earlier life's lease to lapse
    await old.step()
    assert "gw-a" not in old.held  # the earlier life, if it still runs, is fenced out


async def test_writes_are_fenced_by_the_generation_they_were_read_under(engine) -> None:
    clock = FakeClock()
    a = keeper(engine, "shard-0", clock, ["gw-a"], Recorder())
    await a.step()
    fence = Fence(a, {"st-1": "gw-a"})
    t1 = clock.now()
    assert fence.tag("st-1") == 1 and fence.tag("st-other") == 0
    clock.advance(30)
    t2 = clock.now()
    assert acquire(engine, "standby-x", "gw-a", t2, 10.0) == 2
    before, after = t2 - timedelta(seconds=1), t2 + timedelta(seconds=1)
    with engine.connect() as conn:
        ok = fence.keep(
            conn,
            [
                ("st-1", 1, t1),  # read by shard-0 while it held the link: stands (spooled or not)
                ("st-1", 1, before),
                ("st-1", 1, after),  # read by shard-0 after the takeover: refused
                ("st-1", 2, after),  # the new holder's
                ("st-1", 2, before),  # generation 2 did not exist yet
                ("st-1", 7, after),  # no such grant
                ("st-1", -1, t1),  # not held when read
                ("st-other", 0, after),  # not on a leased link
            ],
        )
    assert ok == [True, True, False, True, False, False, False, True]


def test_tagged_rows_survive_the_spool_format() -> None:
    clock = FakeClock()
    t = clock.now()
    plain = [(1, t, 2.5, 0), (2, t, None, 3)]
    tagged = [(*r, g) for r, g in zip(plain, [4, 2**40], strict=True)]
    assert decode_rows(encode_rows(plain)) == plain
    assert decode_rows(encode_tagged_rows(tagged)) == tagged


async def test_clock_skew_against_the_database_is_measured_either_way(pg_url: str) -> None:
    """A collector's clock 5 min ahead or behind the database's is measured (the `clock_skew` system
    alarm rises above 2 s); a clock in step reads well under a second."""
    from datetime import UTC, datetime

    from pumpwatch.alarms.rules import default_system_rules
    from pumpwatch.core.leases import clock_skew_s

    e = make_engine(pg_url)
    try:
        for offset in (300.0, -300.0, 0.0):
            clock = FakeClock(datetime.now(UTC) + timedelta(seconds=offset))
            skew = clock_skew_s(e, clock)
            assert skew is not None and abs(skew - offset) < 1.0, (offset, skew)
    finally:
        e.dispose()
    rule = {r.name: r for r in default_system_rules()}["clock_skew"]
    assert rule.point == "clock_skew_s" and rule.limit == 2 and rule.above
