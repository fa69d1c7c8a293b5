"""The drill engine: plays a scenario file on the running simulated fleet, for one tenant at a time.

`DrillRunner.start(text, actor)` validates the scenario against the fleet (ConfigError, every problem),
records the drill as running (`pumpwatch.core.drills.start`: from then on the tenant's new alarms and
incidents carry its id), and schedules its faults on the simulator from now (`simulators.drill`). Each
second of clock time `tick()` journals the faults applied since and every simulated spill of the tenant's
stations (the truth a drill report measures dispatch against), and ends a drill whose time is up. `stop()`
ends one early. Either way the drill's faults are undone at once, so the fleet is back to normal.

It lives in the composition root because it needs the simulator and the database; the API reaches it
through `ApiContext.drills` (start, stop), never by importing it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from pumpwatch.core import drills as store
from pumpwatch.core.clock import Clock
from pumpwatch.core.config import Fleet
from pumpwatch.core.config.scenario import Scenario, parse_scenario_text
from pumpwatch.simulators.drill import DrillChange, DrillPlan, compile_scenario
from pumpwatch.simulators.fleet import SimulatedFleet

__all__ = ["DrillRunner"]

log = logging.getLogger(__name__)


@dataclass
class _Running:
    id: int
    scenario: Scenario
    plan: DrillPlan
    ends_at: datetime
    stations: list[str]
    applied: list[tuple[datetime, str]] = field(default_factory=list)  # faults, not journaled yet
    spills: list[tuple[datetime, str, str | None, str]] = field(default_factory=list)  # the same
    spilling: dict[str, bool] = field(default_factory=dict)


class DrillRunner:
    def __init__(self, sim: SimulatedFleet, clock: Clock, engine: Engine, fleet: Fleet) -> None:
        self.sim, self.clock, self.engine, self.fleet = sim, clock, engine, fleet
        self.running: dict[int, _Running] = {}
        self._lock = asyncio.Lock()

    def close_abandoned(self) -> list[int]:
        """Drills a previous process left running cannot go on (their faults died with it): end them."""
        ended = []
        for d in store.active_drills(self.engine):
            if d["id"] not in self.running:
                store.stop(self.engine, d["id"], at=self.clock.now(), actor=None, outcome="abandoned")
                ended.append(d["id"])
        if ended:
            log.warning("drills %s were left running by a previous process: ended as abandoned", ended)
        return ended

    async def start(self, text: str, actor: str | None, *, name: str = "<scenario>") -> int:
        """Start the drill in `text` now; ConfigError (invalid), store.DrillConflict (one runs already)."""
        scenario = parse_scenario_text(text, name, self.fleet)
        async with self._lock:
            now = self.clock.now()
            ends_at = now + scenario.length
            did = await asyncio.to_thread(
                store.start,
                self.engine,
                tenant_id=scenario.tenant,
                name=scenario.name,
                title=scenario.title,
                scenario=text,
                notify=scenario.notify,
                contacts=scenario.drill_contacts,
                at=now,
                ends_at=ends_at,
                actor=actor,
            )
            plan = compile_scenario(scenario, now, drill=f"drill-{did}")
            stations = sorted(s for s, c in self.fleet.stations.items() if c.tenant == scenario.tenant)
            run = _Running(did, scenario, plan, ends_at, [s for s in stations if s in self.sim.stations])
            run.spilling = {s: bool(getattr(self.sim.stations[s], "spilling", False)) for s in run.stations}

            def journaled(c: DrillChange, run: _Running = run) -> DrillChange:
                def apply(sim: SimulatedFleet) -> None:
                    c.apply_fn(sim)
                    run.applied.append((c.at, c.label))

                return DrillChange(c.at, c.label, apply, c.drill)

            self.sim.step_now()
            self.sim.schedule([journaled(c) for c in plan.changes])
            self.running[did] = run
        log.warning(
            "DRILL %d started by %s: %s (%s, until %s)", did, actor, scenario.title, scenario.tenant, ends_at
        )
        return did

    async def stop(self, drill_id: int, actor: str | None) -> bool:
        """End a running drill now (False: not running here)."""
        async with self._lock:
            run = self.running.get(drill_id)
            if run is None:
                return False
            await self._finish(run, actor, "stopped")
        return True

    async def _finish(self, run: _Running, actor: str | None, outcome: str) -> None:
        self._observe(run)
        await asyncio.to_thread(self._flush, run)
        undone = run.plan.undo(self.sim)
        self.running.pop(run.id, None)
        await asyncio.to_thread(
            store.stop, self.engine, run.id, at=self.clock.now(), actor=actor, outcome=outcome
        )
        log.warning("DRILL %d %s (%d faults put right)", run.id, outcome, len(undone))

    def _observe(self, run: _Running) -> None:
        """Note each station's spill starting and ending (the simulated truth)."""
        now = self.clock.now()
        for sid in run.stations:
            st = self.sim.stations[sid]
            spilling = bool(getattr(st, "spilling", False))
            if spilling != run.spilling.get(sid, False):
                run.spilling[sid] = spilling
                at = getattr(st, "now", None) or now
                run.spills.append(
                    (at, "spill" if spilling else "spill_end", sid, "spill" if spilling else "spill over")
                )

    def _flush(self, run: _Running) -> None:
        rows = [(at, "fault", None, label) for at, label in run.applied] + run.spills
        run.applied.clear()
        run.spills = []
        store.note(self.engine, run.id, sorted(rows, key=lambda r: r[0]))

    async def tick(self) -> None:
        """Journal what happened since the last tick; end the drills whose time is up."""
        async with self._lock:
            for run in list(self.running.values()):
                self._observe(run)
                if run.applied or run.spills:
                    await asyncio.to_thread(self._flush, run)
                if self.clock.now() >= run.ends_at:
                    await self._finish(run, None, "completed")

    def resource_changed(self, station_id: str, kind: str, state: str) -> None:
        """A portable generator connected and running at a simulated station feeds its panel: the pumps
        get power (mains as the panel sees it). When it leaves, the station is on whatever supply the
        simulation has (a drill's outage that is still on stays off only through its own events)."""
        st = self.sim.stations.get(station_id)
        if st is None or kind != "generator":
            return
        if state == "running" and not st.mains_ok:
            self.sim.set_mains([station_id], True)
            log.warning("portable generator running at %s: its panel has power", station_id)

    async def run(self, interval_s: float = 1.0) -> None:
        """Tick every `interval_s` of clock time until cancelled."""
        await asyncio.to_thread(self.close_abandoned)
        while True:
            await self.clock.sleep(interval_s)
            try:
                await self.tick()
            except Exception:  # a drill's journal must not take the demo down; the log says it
                log.exception("drill tick failed")
