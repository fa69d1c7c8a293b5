"""Simulated history with known truth for the report tests: a manhole pump station of the demo fleet run
by the simulator's own physics, polled every `poll_s` the way the collector does, written to the
historian; the simulator's counters (run seconds, starts, mains) are the truth the report must match."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from pumpwatch.core import historian
from pumpwatch.core.config.loader import Fleet, load_fleet
from pumpwatch.core.sample import Quality
from pumpwatch.simulators.manhole import ManholePumpStation

REPO = Path(__file__).resolve().parents[2]
POINTS = (
    "pump1_running", "pump2_running", "pump1_starts", "pump2_starts", "wet_well_level_m", "hwl_float",
    "mains_failed",
)  # fmt: skip


def demo_fleet(tmp: Path, poll_s: int = 10) -> Fleet:
    """The demo fleet with Kita's first station polled every `poll_s` (the shipped 2 s makes slow tests)."""
    root = tmp / "fleet"
    shutil.copytree(REPO / "deploy" / "config" / "demo", root)
    shutil.copytree(REPO / "deploy" / "config" / "maps", tmp / "maps")
    shutil.copytree(REPO / "deploy" / "config" / "rules", tmp / "rules")
    ctl = root / "controllers.yaml"
    ctl.write_text(
        ctl.read_text().replace("port: 15021, poll_interval_s: 2", f"port: 15021, poll_interval_s: {poll_s}")
    )
    return load_fleet(root / "fleet.yaml")


@dataclass
class Truth:
    """Per local hour (index from the start) and in all: what the simulator did. A start is in the hour
    of the first poll that can see it (within one poll interval of when the pump started); run time is
    in the hour it ran."""

    run_s: dict[tuple[int, int], float] = field(default_factory=dict)  # (pump, hour) → s
    starts: dict[tuple[int, int], int] = field(default_factory=dict)
    mains_off_s: dict[int, float] = field(default_factory=dict)
    levels: dict[int, list[float]] = field(default_factory=dict)  # sampled levels per hour (present ones)

    def total_run_s(self, pump: int, hours: range | None = None) -> float:
        return sum(v for (p, h), v in self.run_s.items() if p == pump and (hours is None or h in hours))

    def total_starts(self, pump: int, hours: range | None = None) -> int:
        return sum(v for (p, h), v in self.starts.items() if p == pump and (hours is None or h in hours))


def simulate(
    engine: Engine,
    fleet: Fleet,
    start: datetime,
    hours: int,
    *,
    station: str = "KITA-MP-01",
    poll_s: int = 10,
    outage: tuple[datetime, datetime] | None = None,
    gap: tuple[datetime, datetime] | None = None,
    seed: int = 7,
    rain_factor: float = 2.5,
) -> Truth:
    """Run `hours` of the station from `start`, write a sample of each report point every `poll_s` (none
    inside `gap`: the link was down), and return the truth."""
    ids = historian.sync_catalog(engine, fleet)
    cfg = fleet.stations[station]
    sim = ManholePumpStation(cfg, seed, start, rain_factor=rain_factor)
    truth = Truth()
    rows: list[tuple] = []
    t = start
    end = start + timedelta(hours=hours)
    while t < end:
        h = (t - start) // timedelta(hours=1)
        if outage:
            sim.set_mains(not (outage[0] <= t < outage[1]))
        before = [(p.run_s, p.starts) for p in sim.pumps]
        mains_before = sim.mains_ok
        in_gap = gap is not None and gap[0] <= t < gap[1]
        if not in_gap:
            vals = sim.point_values()
            for name in POINTS:
                v = vals[name]
                rows.append((ids[(station, name)], t, float(v), int(Quality.GOOD)))
            truth.levels.setdefault(h, []).append(float(vals["wet_well_level_m"]))
        t_next = t + timedelta(seconds=poll_s)
        sim.step(t_next)
        for k, (p, (r0, s0)) in enumerate(zip(sim.pumps, before, strict=True), start=1):
            truth.run_s[(k, h)] = truth.run_s.get((k, h), 0.0) + p.run_s - r0
            # a start made during this step shows in the next poll's counter: it is that sample's hour's
            h_seen = (t_next - start) // timedelta(hours=1)
            if t_next < end:  # seen by no poll of the simulated span otherwise
                truth.starts[(k, h_seen)] = truth.starts.get((k, h_seen), 0) + p.starts - s0
        if not mains_before:
            truth.mains_off_s[h] = truth.mains_off_s.get(h, 0.0) + poll_s
        t = t_next
        if len(rows) > 50_000:
            historian.write_samples(engine, rows)
            rows = []
    historian.write_samples(engine, rows)
    return truth
