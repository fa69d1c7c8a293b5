"""A flood of alarms loses none: 200+ stations toggling power and pumps; every raise and every clear the
evaluator decides on has its own journal entry, and the open alarms match the last state of each."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

from pumpwatch.alarms import store
from pumpwatch.alarms.rules import RuleSet
from pumpwatch.alarms.service import AlarmService
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.sample import Quality, Sample
from tests.alarms.test_lifecycle_api import RULES

CITY = Path(__file__).resolve().parents[2] / "deploy" / "config" / "city"


async def test_a_flood_of_alarms_loses_none(db_all_url: str) -> None:
    fleet = load_fleet(CITY)
    engine = make_engine(db_all_url)
    upgrade(engine)
    historian.sync_catalog(engine, fleet)
    clock = FakeClock(datetime(2026, 9, 1, tzinfo=UTC))
    svc = AlarmService(fleet, RuleSet({sid: RULES for sid in fleet.stations}, []), engine, clock)
    persist = asyncio.create_task(svc._persist_forever())
    rng = random.Random(5)
    decided = {"raise": 0, "clear": 0}
    state: dict[tuple[str, str], bool] = {}
    stations = sorted(fleet.stations)
    for _ in range(12):  # twelve rounds of a storm: each station flips power and a pump at random
        batch = []
        for sid in stations:
            mains, fault = rng.random() < 0.5, rng.random() < 0.3
            batch += [
                Sample(sid, "mains_failed", float(mains), clock.now(), Quality.GOOD),
                Sample(sid, "pump1_faulted", float(fault), clock.now(), Quality.GOOD),
            ]
        for sid in stations:  # evaluate as the collector would, and count what the engine decided
            ev = svc.evaluators[sid]
            for e in ev.evaluate([s for s in batch if s.station == sid], clock.now()):
                if e.kind in decided:
                    decided[e.kind] += 1
                    state[(sid, e.name)] = e.kind == "raise"
                svc._queue.put_nowait(e)
        clock.advance(1)
    await asyncio.wait_for(svc.drain(), 120)
    persist.cancel()
    assert decided["raise"] > 1000 and decided["clear"] > 800  # a real flood
    journal = store.alarm_journal(engine, kinds=["raise", "clear"], limit=1_000_000)
    assert sum(e["kind"] == "raise" for e in journal) == decided["raise"]
    assert sum(e["kind"] == "clear" for e in journal) == decided["clear"]
    active = {
        (a["station_id"], a["name"])
        for a in store.list_alarms(engine, open_=True, active=True, limit=100_000)
    }
    assert active == {k for k, on in state.items() if on}
    engine.dispose()
