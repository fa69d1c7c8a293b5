"""Pump health from the run signals, motor currents and fault bits of one station (docs/domain.md §1.4,
§1.5, §5).

`PumpHealth` follows each pump through the station's sample batches and derives, per pump N (the N-th pump
of `cfg.pumps`, points `pumpN_running`, `pumpN_current_a`, `pumpN_faulted`, and `pumpN_auto` where a panel
reports its selector):

========================= ===== =============================================================================
point                     unit  meaning
========================= ===== =============================================================================
pumpN_run_min_last        min   length of the last completed run (start seen → stop seen)
pumpN_run_ratio           —     max(last completed run, the run in progress) ÷ median of the completed runs
                                within `median_window_h`; NOT_AVAILABLE until `min_runs` runs are known
pumpN_starts_per_hour     1/h   starts in the last `starts_window_h` (sliding) ÷ the window in hours;
                                NOT_AVAILABLE until the run signal has been followed that long without a gap
pumpN_current_ratio       —     time-weighted mean running current of the last `recent_runs` runs (and the
                                run in progress) ÷ the pump's baseline: the median run current of its runs
                                older than `baseline_holdoff_h` within `median_window_h` once there are
                                `baseline_min_runs` of them, `rated_current_a` until then. Currents
                                read in the first `inrush_s` of a run, samples of bad quality and currents
                                below `no_current_fraction` × rated (see fails_to_run) are left out
pumpN_fails_to_run        state run signal on, current below `no_current_fraction` × rated for at least
                                `fails_to_run_s` ("run relay on but no current detected")
pumpN_available           state not faulted (and in automatic, where the panel reports `pumpN_auto`)
pumps_unavailable         state no pump of the station is available (duty and standby all faulted)
station_starts_per_hour   1/h   sum of the pumps' starts per hour
pumps_not_restarted       state after mains returned (mains_failed true → false), the level has been above
                                `levels.start_m` with no pump running though one is available for longer
                                than `restart_grace_s`; cleared once any pump runs or mains fails again
========================= ===== =============================================================================

Only sample times are used, never the wall clock. Samples are taken in time order (a batch may carry several
times, e.g. an MQTT backlog); a value holds until the next sample of its point (so report-by-exception
sources work). A sample of bad quality makes its point unknown: for a run signal that drops the run in
progress and restarts the starts-per-hour coverage, since starts may have been missed.

Why a clog shows before the trip: rags on the impeller raise the current (+10–30 %) and cut the flow, so each
run lasts longer (§5); the current ratio compares against the pump's own clean history (not the nameplate),
so +15 % is visible while the pump still runs, and the run ratio includes the run in progress, so a pump that
no longer lowers the level is flagged during that run rather than after it.

Defaults, and why: a 7-day median (docs/domain.md §1.5) from 10 runs on (a few hours at an
MPS); starts over a sliding hour, the unit of the §1.5 limits (6/h per pump, 10/h per station, which the
rule sustains for 2 h); the current of the last 3 runs (a clog builds over hours to days, 3 runs smooth one
odd run without lagging much); a baseline of the runs older than 12 h, at least 20 of them, so a clog that
builds within the last half day is not learned as normal, while the baseline still follows a slow change of
the operating point over the week; 5 s of inrush (DOL starts last < 1 s, soft starters a few seconds);
10 % of rated as "no current" and 10 s (two or three polls) before "fails to run"; 60 s of grace after mains
returns (panels restart after a few seconds, staggered).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby, islice

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.sample import Quality, Sample

__all__ = ["PumpHealth"]

_RUNNING, _CURRENT, _FAULTED, _AUTO = "running", "current_a", "faulted", "auto"
_MAINS, _LEVEL = "mains_failed", "wet_well_level_m"


@dataclass(slots=True)
class _Pump:
    number: int
    rated_current_a: float
    running: bool | None = None
    current: float | None = None  # last good value, held until the next sample
    current_at: datetime | None = None  # when it was read
    faulted: bool | None = None
    auto: bool | None = None  # None: not reported (or unknown)
    auto_reported: bool = False
    run_start: datetime | None = None  # None while stopped, or running since an unknown time
    last_run_s: float | None = None
    runs: deque[tuple[datetime, float]] = field(default_factory=deque)  # (end, seconds)
    run_median_s: float | None = None
    run_currents: deque[tuple[datetime, float]] = field(default_factory=deque)  # (end, mean A)
    baseline_a: float | None = None
    i_sum: float = 0.0  # ∫ I dt of the run in progress (A·s)
    i_time: float = 0.0  # seconds counted in i_sum
    starts: deque[datetime] = field(default_factory=deque)
    covered_since: datetime | None = None  # run signal followed without a gap since
    low_since: datetime | None = None  # running with (almost) no current since

    @property
    def available(self) -> bool | None:
        if self.faulted is None or (self.auto_reported and self.auto is None):
            return None
        return not self.faulted and (self.auto is not False)


class PumpHealth:
    """Derived pump and station points from one station's batches (see the module doc)."""

    def __init__(
        self,
        cfg: StationConfig,
        *,
        median_window_h: float = 168,
        starts_window_h: float = 1.0,
        min_runs: int = 10,
        recent_runs: int = 3,
        baseline_holdoff_h: float = 12.0,
        baseline_min_runs: int = 20,
        inrush_s: float = 5.0,
        no_current_fraction: float = 0.1,
        fails_to_run_s: float = 10.0,
        restart_grace_s: float = 60.0,
    ) -> None:
        if not cfg.pumps:
            raise ValueError(f"station {cfg.id} has no pumps")
        self.cfg = cfg
        self.median_window = timedelta(hours=median_window_h)
        self.starts_window = timedelta(hours=starts_window_h)
        self.starts_window_h = starts_window_h
        self.min_runs = min_runs
        self.recent_runs = recent_runs
        self.baseline_holdoff = timedelta(hours=baseline_holdoff_h)
        self.baseline_min_runs = baseline_min_runs
        self.inrush = timedelta(seconds=inrush_s)
        self.no_current_fraction = no_current_fraction
        self.fails_to_run = timedelta(seconds=fails_to_run_s)
        self.restart_grace = timedelta(seconds=restart_grace_s)
        self.start_level_m = cfg.levels.start_m if cfg.levels is not None else None

        self.pumps = [_Pump(n, p.rated_current_a) for n, p in enumerate(cfg.pumps, start=1)]
        self._route: dict[str, tuple[str, _Pump | None]] = {_MAINS: (_MAINS, None), _LEVEL: (_LEVEL, None)}
        outputs: list[DerivedPoint] = []
        for p in self.pumps:
            for what in (_RUNNING, _CURRENT, _FAULTED, _AUTO):
                self._route[f"pump{p.number}_{what}"] = (what, p)
            run, cur, fault = (f"pump{p.number}_{w}" for w in (_RUNNING, _CURRENT, _FAULTED))
            outputs += [
                DerivedPoint(f"pump{p.number}_run_min_last", "min", "analog", (run,)),
                DerivedPoint(f"pump{p.number}_run_ratio", None, "analog", (run,)),
                DerivedPoint(f"pump{p.number}_starts_per_hour", "1/h", "analog", (run,)),
                DerivedPoint(f"pump{p.number}_current_ratio", None, "analog", (run, cur)),
                DerivedPoint(f"pump{p.number}_fails_to_run", None, "state", (run, cur)),
                DerivedPoint(f"pump{p.number}_available", None, "state", (fault,)),
            ]
        runs = tuple(f"pump{p.number}_{_RUNNING}" for p in self.pumps)
        faults = tuple(f"pump{p.number}_{_FAULTED}" for p in self.pumps)
        outputs += [
            DerivedPoint("pumps_unavailable", None, "state", faults),  # every pump's fault must be known
            DerivedPoint("station_starts_per_hour", "1/h", "analog", runs),
            # after mains returns: the level above start, no pump running although one is available
            DerivedPoint("pumps_not_restarted", None, "state", (_MAINS, _LEVEL, *runs, faults)),
        ]
        self.outputs: tuple[DerivedPoint, ...] = tuple(outputs)

        self._t: datetime | None = None  # time the state is at
        self._mains_failed: bool | None = None
        self._mains_failed_known_true = False  # the last *known* mains state was "failed"
        self._level: float | None = None
        self._awaiting_restart = False  # mains came back and no pump has run since
        self._should_run_since: datetime | None = None

    # --- input ----------------------------------------------------------------------------------------

    def observe(self, samples: Sequence[Sample]) -> list[Sample]:
        if not samples:
            return []
        relevant = sorted((s for s in samples if s.point in self._route), key=lambda s: s.observed_at)
        for t, group in groupby(relevant, key=lambda s: s.observed_at):
            self._advance(t)
            for s in group:
                self._apply(s)
            self._after_updates(t)
        batch_time = max(s.observed_at for s in samples)
        self._advance(batch_time)
        return self._outputs(samples[0].station, batch_time)

    def _advance(self, t: datetime) -> None:
        """Move the state to `t`: count the running current held since the last time."""
        prev = self._t
        if prev is not None and t <= prev:
            return
        self._t = t
        if prev is None:
            return
        for p in self.pumps:
            if not p.running or p.run_start is None or p.current is None or p.current_at is None:
                continue
            if p.current < self.no_current_fraction * p.rated_current_a:
                continue
            if p.current_at < p.run_start + self.inrush:
                continue  # read during the starting current
            dt = (t - prev).total_seconds()
            p.i_sum += p.current * dt
            p.i_time += dt

    def _apply(self, s: Sample) -> None:
        what, p = self._route[s.point]
        v = s.value if s.quality is Quality.GOOD else None  # a good value, or None
        on = v >= 0.5 if v is not None else None
        t = s.observed_at
        if p is None:
            if what == _MAINS:
                self._set_mains(on)
            else:
                self._level = float(v) if v is not None else None
            return
        if what == _RUNNING:
            self._set_running(p, on, t)
        elif what == _CURRENT:
            p.current = float(v) if v is not None else None
            p.current_at = t
        elif what == _FAULTED:
            p.faulted = on
        else:
            p.auto_reported = True
            p.auto = on

    def _set_mains(self, failed: bool | None) -> None:
        if failed is None:
            self._mains_failed = None  # unknown: keep waiting for a restart if we were
            return
        if failed:
            self._awaiting_restart = False
        elif self._mains_failed_known_true:
            self._awaiting_restart = True
        self._mains_failed_known_true = failed
        self._mains_failed = failed

    def _set_running(self, p: _Pump, running: bool | None, t: datetime) -> None:
        was = p.running
        p.running = running
        if running is None:  # lost track: the run in progress and the starts count are incomplete
            p.run_start = None
            p.covered_since = None
            p.low_since = None
            self._reset_run_current(p)
            return
        if was is None:
            p.covered_since = t
            p.run_start = None  # running since we do not know when
            self._reset_run_current(p)
            return
        if not was and running:
            p.starts.append(t)
            p.run_start = t
            p.low_since = None
            self._reset_run_current(p)
        elif was and not running:
            if p.run_start is not None:
                self._run_completed(p, t, (t - p.run_start).total_seconds())
            p.run_start = None
            p.low_since = None
            self._reset_run_current(p)

    @staticmethod
    def _reset_run_current(p: _Pump) -> None:
        p.i_sum = 0.0
        p.i_time = 0.0

    def _run_completed(self, p: _Pump, end: datetime, seconds: float) -> None:
        p.last_run_s = seconds
        p.runs.append((end, seconds))
        horizon = end - self.median_window
        while p.runs and p.runs[0][0] < horizon:
            p.runs.popleft()
        p.run_median_s = statistics.median(r for _, r in p.runs) if len(p.runs) >= self.min_runs else None
        if p.i_time > 0:
            p.run_currents.append((end, p.i_sum / p.i_time))
        while p.run_currents and p.run_currents[0][0] < horizon:
            p.run_currents.popleft()
        old = [i for e, i in p.run_currents if e <= end - self.baseline_holdoff]
        if len(old) >= self.baseline_min_runs:
            p.baseline_a = statistics.median(old)

    def _after_updates(self, t: datetime) -> None:
        for p in self.pumps:
            low = (
                p.running is True
                and p.current is not None
                and p.current < self.no_current_fraction * p.rated_current_a
            )
            if not low:
                p.low_since = None
            elif p.low_since is None:
                p.low_since = t
        if any(p.running for p in self.pumps):
            self._awaiting_restart = False
        should_run = (
            self._awaiting_restart
            and self._mains_failed is False
            and self._level is not None
            and self.start_level_m is not None
            and self._level > self.start_level_m
            and all(p.running is False for p in self.pumps)
            and any(p.available for p in self.pumps)
        )
        if not should_run:
            self._should_run_since = None
        elif self._should_run_since is None:
            self._should_run_since = t

    # --- output ---------------------------------------------------------------------------------------

    def _outputs(self, station: str, t: datetime) -> list[Sample]:
        out: list[Sample] = []

        def emit(name: str, value: float | bool | None) -> None:
            if value is None:
                out.append(Sample(station, name, None, t, Quality.NOT_AVAILABLE))
            else:
                out.append(Sample(station, name, float(value), t, Quality.GOOD))

        station_starts: float | None = 0.0
        for p in self.pumps:
            n = p.number
            emit(f"pump{n}_run_min_last", None if p.last_run_s is None else p.last_run_s / 60.0)
            emit(f"pump{n}_run_ratio", self._run_ratio(p, t))
            sph = self._starts_per_hour(p, t)
            station_starts = None if sph is None or station_starts is None else station_starts + sph
            emit(f"pump{n}_starts_per_hour", sph)
            emit(f"pump{n}_current_ratio", self._current_ratio(p, t))
            emit(f"pump{n}_fails_to_run", self._fails_to_run(p, t))
            emit(f"pump{n}_available", p.available)
        availability = [p.available for p in self.pumps]
        if any(a is True for a in availability):
            emit("pumps_unavailable", False)
        elif all(a is False for a in availability):
            emit("pumps_unavailable", True)
        else:
            emit("pumps_unavailable", None)
        emit("station_starts_per_hour", station_starts)
        emit("pumps_not_restarted", self._not_restarted(t))
        return out

    def _run_ratio(self, p: _Pump, t: datetime) -> float | None:
        if p.run_median_s is None or p.run_median_s <= 0 or p.last_run_s is None:
            return None
        run_s = p.last_run_s
        if p.running and p.run_start is not None:
            run_s = max(run_s, (t - p.run_start).total_seconds())
        return run_s / p.run_median_s

    def _starts_per_hour(self, p: _Pump, t: datetime) -> float | None:
        horizon = t - self.starts_window
        while p.starts and p.starts[0] <= horizon:
            p.starts.popleft()
        if p.covered_since is None or p.covered_since > horizon:
            return None
        return len(p.starts) / self.starts_window_h

    def _current_ratio(self, p: _Pump, t: datetime) -> float | None:
        means = [i for _, i in islice(reversed(p.run_currents), self.recent_runs)]
        if p.running and p.run_start is not None and p.i_time >= self.inrush.total_seconds():
            means = [p.i_sum / p.i_time, *means[: self.recent_runs - 1]]
        if not means:
            return None
        baseline = p.baseline_a if p.baseline_a is not None else p.rated_current_a
        return statistics.fmean(means) / baseline

    def _fails_to_run(self, p: _Pump, t: datetime) -> bool | None:
        if p.running is None:
            return None
        if not p.running:
            return False
        if p.low_since is not None:
            return t - p.low_since >= self.fails_to_run
        return None if p.current is None else False

    def _not_restarted(self, t: datetime) -> bool | None:
        if self._mains_failed is None and not self._awaiting_restart:
            return None
        if not self._awaiting_restart:
            return False
        if self._should_run_since is not None:
            return t - self._should_run_since > self.restart_grace
        if self._level is None or any(p.running is None for p in self.pumps):
            return None
        return False
