"""Time to overflow on a matrix of station shapes the team did not tune to (issue 17, item 5).

Each case draws (seeded) a manhole pump station within realistic ranges — wet well φ0.9–2.0 m, 150–600 m of
upstream sewer in reaches of 15–60 m with their own slopes and manholes (1号–3号, benching half to full
pipe height), a branch in half of them, a second sewer in 30 %, Manning n 0.012–0.015, 150–1500 people,
pumps that deliver 80–103 % of their rating — an inflow (the domain profile shifted by up to ±40 min and
varied by up to ±15 % per hour, lognormal noise σ 0.1–0.3 redrawn every 1–5 min), a scenario (dry, steady
wet weather ×1.5–3, or rain beginning 10–30 min before the cut with its own time constant, storm length
and infiltration) and a cut time (night, morning, day or evening). The truth is `tests/alarms/tto_truth.py`
(its own physics, not the estimator's hydraulics): the level the collector would poll, and the spill.

The figures printed: median and worst relative error of `tto_spill_min` at +1, +5 and +15 min after the
cut, and the share of estimates on the unsafe side (longer than the truth). `make test` runs 6 cases;
PUMPWATCH_TTO_MATRIX=48 (or more) runs a bigger matrix: `PUMPWATCH_TTO_MATRIX=48 .venv/bin/pytest -n 0 -s
tests/alarms/test_tto_matrix.py`.

What it asserts: the stored volume the estimator computes (its hydraulics, flow in the pipes excluded)
agrees with the truth's integration within 1 % in every case; in dry and steady wet weather the median
|error| at +5 min is ≤ 12 %.
Issue 17's goal bound (never more than 5 % long, always within 10 %, at +5 min) is NOT reached yet and is
kept as a strict xfail with the figures measured, so reaching it shows.
"""

from __future__ import annotations

import os
import random
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from pumpwatch.alarms.analyzers.overflow import OverflowForecaster
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import StageStorage
from pumpwatch.core.sample import Sample
from tests.alarms import tto_truth as truth

TZ = ZoneInfo("Asia/Tokyo")
DAY0 = datetime(2026, 7, 6, tzinfo=TZ)  # a Monday
N_CASES = int(os.environ.get("PUMPWATCH_TTO_MATRIX", "6"))
MATRIX_SEED = 17
CUT_HOURS = {"night": (1, 5), "morning": (6.5, 9), "day": (11, 16), "evening": (18, 21.5)}
AT_MIN = (1, 5, 15)
WARMUP_S = 4 * 3600.0


def config(i: int, sh: truth.Shape) -> StationConfig:
    def pipe(s: truth.Sewer, *, at_m: float | None = None) -> dict:
        out: dict = {
            "diameter_m": s.diameter,
            "invert_m": s.invert,
            "roughness_n": s.n,
            "reaches": [
                {
                    "length_m": r.length,
                    "slope": r.slope,
                    "manhole": r.manhole_area is not None,
                    "manhole_area_m2": r.manhole_area or 0.636,
                    "benching_m": r.benching,
                }
                for r in s.reaches
            ],
        }
        if at_m is not None:
            out["at_m"] = at_m
        branches = []
        for at, b in s.branches:
            branches.append(pipe(b, at_m=sum(r.length for r in s.reaches[: at + 1])))
        if branches:
            out["branches"] = branches
        return out

    return StationConfig.model_validate(
        {
            "id": f"TTO-{i:03d}",
            "tenant": "t",
            "name": f"matrix case {i}",
            "kind": "manhole_pump",
            "wet_well": {"diameter_m": sh.well_diameter},
            "levels": {
                "stop_m": sh.stop,
                "start_m": sh.start,
                "lag_m": sh.lag,
                "hwl_m": sh.hwl,
                "inlet_invert_m": sh.invert,
                "spill_m": sh.spill,
                "ground_m": sh.ground,
            },
            "pumps": [
                {"name": "P1", "rated_flow_m3_min": sh.pump_rated, "rated_current_a": 10},
                {"name": "P2", "rated_flow_m3_min": sh.pump_rated, "rated_current_a": 10},
            ],
            "catchment": {"population": sh.population, "per_capita_l_day": sh.per_capita},
            "upstream": {"pipes": [pipe(s) for s in sh.sewers]},
        }
    )


@dataclass(frozen=True)
class Case:
    i: int
    scenario: str
    period: str
    cut_hour: float
    spill_min: float
    errors: dict[int, float]  # minutes after the cut → relative error of tto_spill_min vs the truth
    storage_error: float  # estimator's volume to spill at the cut vs the truth's, relative


def _when(t_s: float) -> datetime:
    return DAY0 + timedelta(seconds=t_s)


@cache
def case(i: int) -> Case:
    rng = random.Random(MATRIX_SEED * 100_003 + i)
    sh = truth.random_shape(rng)
    scenario = truth.SCENARIOS[i % 3]
    period = tuple(CUT_HOURS)[(i // 3) % 4]
    lo, hi = CUT_HOURS[period]
    cut_hour = rng.uniform(lo, hi)
    cut_s = 86400.0 + cut_hour * 3600.0
    inflow = truth.random_inflow(rng, sh, scenario, cut_s, seed=i)
    poll_s = rng.choice((2.0, 5.0, 5.0, 10.0))
    run = truth.run(sh, inflow, cut_s=cut_s, warmup_s=WARMUP_S, poll_s=poll_s, after_s=16 * 60.0, seed=i)
    assert run.spill_s is not None, "no spill within the horizon"
    cfg = config(i, sh)
    q_cut = inflow(cut_s)
    st = truth.Storage(sh)
    true_need = st.water(sh.spill, q_cut) - st.water(run.level_at_cut, q_cut)
    mine = StageStorage.from_station(cfg)
    need = mine.volume_with_flow(sh.spill, q_cut) - mine.volume_with_flow(run.level_at_cut, q_cut)
    fc = OverflowForecaster(cfg, timezone="Asia/Tokyo")
    errors: dict[int, float] = {}
    want = {m: cut_s + m * 60.0 for m in AT_MIN}
    for p in run.polls:
        at = _when(p.t)
        fc.observe(
            [
                Sample(cfg.id, "wet_well_level_m", p.level, at),
                Sample(cfg.id, "pump1_running", float(p.running[0]), at),
                Sample(cfg.id, "pump2_running", float(p.running[1]), at),
                Sample(cfg.id, "mains_failed", float(p.mains_failed), at),
                Sample(cfg.id, "hwl_float", float(p.level >= sh.hwl), at),
            ]
        )
        for m, t in want.items():
            if m not in errors and p.t >= t:
                remaining = (run.spill_s - p.t) / 60.0
                assert fc.last_forecast is not None
                errors[m] = (fc.last_forecast.tto_spill_min - remaining) / remaining
    return Case(i, scenario, period, cut_hour, (run.spill_s - cut_s) / 60.0, errors, need / true_need - 1)


def figures(cases: list[Case]) -> str:
    lines = [f"time to overflow, {len(cases)} random cases (seed {MATRIX_SEED}): error of tto_spill_min"]
    for m in AT_MIN:
        errs = [c.errors[m] for c in cases]
        worst = max(errs, key=abs)
        unsafe = sum(e > 0 for e in errs) / len(errs)
        within = sum(abs(e) <= 0.10 for e in errs)
        lines.append(
            f"  +{m:2d} min: median |e| {statistics.median(abs(e) for e in errs):6.1%}  worst {worst:+7.1%}  "
            f"longest {max(errs):+7.1%}  unsafe share {unsafe:4.0%}  within 10 % {within}/{len(errs)}"
        )
    for sc in truth.SCENARIOS:
        errs = [c.errors[5] for c in cases if c.scenario == sc]
        if errs:
            lines.append(
                f"  +5 min {sc:5s} ({len(errs):3d}): median {statistics.median(errs):+6.1%}  "
                f"range {min(errs):+6.1%} … {max(errs):+6.1%}"
            )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return [case(i) for i in range(N_CASES)]


def test_matrix_figures(cases: list[Case], capsys: pytest.CaptureFixture[str]) -> None:
    text = figures(cases)
    with capsys.disabled():
        print("\n" + text)
    worst_storage = max(cases, key=lambda c: abs(c.storage_error))
    assert abs(worst_storage.storage_error) <= 0.01, (
        f"case {worst_storage.i}: the estimator's storage differs by {worst_storage.storage_error:+.2%}"
    )
    # dry and steady wet weather: the median |error| at +5 min (rain just before the cut: see the xfail)
    settled = [abs(c.errors[5]) for c in cases if c.scenario != "rain"]
    assert statistics.median(settled) <= 0.12, text


@pytest.mark.xfail(
    strict=True,
    reason="issue 17 goal not reached. Measured on 24 cases (PUMPWATCH_TTO_MATRIX=24), +5 min: median |e| "
    "9.4 %, unsafe share 58 %, 12/24 within 10 %; dry -11 % … +23 %, steady wet -26 % … +8 % (the diurnal "
    "shape of the station and the learned pump flows), rain just before the cut +11 % … +62 % (median +27 %: "
    "the rain-derived inflow still rising after the cut)",
)
def test_goal_bound_at_five_minutes(cases: list[Case]) -> None:
    bad = [
        f"case {c.i} ({c.scenario}, {c.period} {c.cut_hour:.1f} h, spill after {c.spill_min:.0f} min): "
        + ", ".join(f"+{m} min {e:+.1%}" for m, e in c.errors.items())
        for c in cases
        if c.errors[5] > 0.05 or abs(c.errors[5]) > 0.10
    ]
    assert not bad, figures(cases) + "\n" + "\n".join(bad)
