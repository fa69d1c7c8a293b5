"""Per-station rule evaluation: a pure state machine over samples and time.

Per rule: normal → pending (condition true, waiting `on_delay_s`) → active → clearing (condition false,
waiting `off_delay_s`) → normal. A limit alarm clears only past its deadband.

Rules decide only on good data. When a rule's input is not good — a sample of any quality but `good`, a
value older than the station's `stale_after_s`, or a derived point computed from a batch in which the device
did not answer (every sample `stale` or `comm_loss`: a time to overflow dead-reckoned from a lost link) —
the rule *holds*: a pending raise is abandoned (its on-delay starts again on the next good sample), an active
alarm stays active and does not clear, a pending clear is abandoned too. It says so: the rule carries
`held_since`/`held_quality`, and an active alarm gets an `input_not_good` event (the store marks the alarm,
the API shows "input not good since …"), then `input_good` when good data returns.

The link itself is judged by the `comm_loss` rule: a batch of COMM_LOSS samples with no answer in it makes
its condition true; any answer from the device (good, bad value, sensor fault, not available) makes it
false. STALE samples (an MQTT death, a Sparkplug seq gap) say neither: the source reports the loss itself
(as COMM_LOSS) within its stated bound.

Design-time relations between rules of one station:
- `suppressed_by`: while a named alarm is active, this one is raised suppressed (and an active one is
  suppressed when the named alarm comes, unsuppressed when it goes) — a power failure explains the pumps
  that stopped, never the water that rises.
- `enabled_by`: the rule only holds while a named alarm is active (time to overflow matters when the
  pumps cannot run).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pumpwatch.alarms.rules import StationRule
from pumpwatch.core.sample import Quality, Sample


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    kind: str  # raise | clear | suppress | unsuppress | input_not_good | input_good
    tenant: str
    station: str
    name: str
    priority: str
    message: str
    value: float | None
    at: datetime
    suppressed_by: str | None = None
    latch: bool = False
    quality: str | None = None  # input_not_good: the input's quality (stale, comm_loss, bad_value, ...)
    gen: int = 0  # the lease generation of the station's link when decided (0: not leased; core.leases)


@dataclass(slots=True)
class RuleState:
    active: bool = False
    condition: bool | None = None
    value: float | None = None
    pending_since: datetime | None = None
    clearing_since: datetime | None = None
    suppressed_by: str | None = None
    seen_at: datetime | None = None  # time of the newest sample of the rule's point, good or not
    held_since: datetime | None = None  # the input is not good since then: the rule holds its state
    held_quality: str | None = None


def _format(message: str, value: float | None, station: str) -> str:
    if "{" not in message:
        return message
    try:
        return message.format(value=value if value is not None else float("nan"), station=station)
    except (ValueError, KeyError, IndexError):
        return message


class StationEvaluator:
    def __init__(
        self,
        tenant: str,
        station: str,
        rules: Iterable[StationRule],
        stale_after_s: float | None = None,
    ) -> None:
        """`stale_after_s`: a value older than this is not good any more (the API's rule, the same
        figure: `Fleet.stale_after_s`); None: age is not checked."""
        self.tenant = tenant
        self.station = station
        self.stale_after_s = stale_after_s
        rules = list(rules)
        referenced = {ref for r in rules for ref in (*r.suppressed_by, *r.enabled_by)}
        # rules others depend on are evaluated first, so a batch with both sees the cause before the effect
        self.rules = sorted(rules, key=lambda r: r.name not in referenced)
        self.by_name = {r.name: r for r in self.rules}
        self.states = {r.name: RuleState() for r in self.rules}
        self._by_point: dict[str, list[StationRule]] = {}
        for r in self.rules:
            if r.point is not None:
                self._by_point.setdefault(r.point, []).append(r)
        self._comm_rules = [r for r in self.rules if r.type == "comm_loss"]
        self._gated = [r for r in self.rules if r.enabled_by]

    def restore_active(self, name: str, suppressed_by: str | None = None) -> None:
        """Mark a rule active (it was active in the store when we started), so it can clear."""
        st = self.states.get(name)
        if st is not None:
            st.active = True
            st.suppressed_by = suppressed_by

    def active(self, name: str) -> bool:
        st = self.states.get(name)
        return bool(st and st.active)

    def evaluate(
        self, samples: Iterable[Sample], now: datetime, derived: Iterable[Sample] = ()
    ) -> list[AlarmEvent]:
        """`samples` from the device; `derived` ones computed from them (they say nothing about the link,
        and are no better than it: from a batch without any answer they are not good)."""
        events: list[AlarmEvent] = []
        answered = lost = False
        by_point: dict[str, tuple[Sample, str | None]] = {}  # the newest of each point, and why not good
        for s in samples:
            if s.quality is Quality.COMM_LOSS:
                lost = True
            elif s.quality is not Quality.STALE:
                answered = True
            by_point[s.point] = (s, _not_good(s))
        for s in derived:
            why = _not_good(s)
            if why is None and not answered:
                why = "comm_loss" if lost else "stale"
            by_point[s.point] = (s, why)
        for rule in self.rules:
            st = self.states[rule.name]
            if rule.type == "comm_loss":
                if lost or answered:
                    st.condition = lost and not answered
                    self._advance(rule, st, now, events)
                continue
            got = by_point.get(rule.point)  # type: ignore[arg-type]  # every rule but comm_loss has a point
            if got is None:
                continue
            s, why = got
            st.seen_at = s.observed_at
            if why is not None:
                self._hold(rule, st, s.observed_at, why, events)
                continue
            self._release(rule, st, s.observed_at, events)
            st.condition, st.value = self._condition(rule, st, s), s.value
            self._advance(rule, st, s.observed_at, events)
        return events

    def tick(self, now: datetime) -> list[AlarmEvent]:
        """Let delays run out when no new sample arrives, re-check gated rules, and hold the rules whose
        input has aged beyond `stale_after_s`."""
        events: list[AlarmEvent] = []
        for rule in self.rules:
            st = self.states[rule.name]
            busy = st.pending_since is not None or st.clearing_since is not None or st.active
            if busy and st.held_since is None and self._aged(rule, st, now):
                assert st.seen_at is not None and self.stale_after_s is not None
                self._hold(rule, st, st.seen_at + timedelta(seconds=self.stale_after_s), "stale", events)
                continue
            if (
                st.pending_since is not None
                or st.clearing_since is not None
                or (rule.enabled_by and st.active)
            ):
                self._advance(rule, st, now, events)
        return events

    def held(self) -> dict[str, tuple[datetime, str]]:
        """Rules that hold their state now because their input is not good: name → (since, quality)."""
        return {
            name: (st.held_since, st.held_quality or "")
            for name, st in self.states.items()
            if st.held_since is not None
        }

    def _aged(self, rule: StationRule, st: RuleState, now: datetime) -> bool:
        return (
            rule.type != "comm_loss"
            and self.stale_after_s is not None
            and st.seen_at is not None
            and (now - st.seen_at).total_seconds() > self.stale_after_s
        )

    def _hold(
        self, rule: StationRule, st: RuleState, at: datetime, why: str, events: list[AlarmEvent]
    ) -> None:
        """The input is not good: no decision on it. Abandon what was pending; an active alarm stays."""
        st.condition = None
        st.pending_since = st.clearing_since = None
        if st.held_since is not None and st.held_quality == why:
            return
        if st.held_since is None:
            st.held_since = at
        st.held_quality = why
        if st.active:
            events.append(self._event("input_not_good", rule, st, st.held_since, quality=why))

    def _release(self, rule: StationRule, st: RuleState, at: datetime, events: list[AlarmEvent]) -> None:
        if st.held_since is None:
            return
        st.held_since = st.held_quality = None
        if st.active:
            events.append(self._event("input_good", rule, st, at))

    def _enabled(self, rule: StationRule) -> bool:
        return not rule.enabled_by or any(self.active(n) for n in rule.enabled_by)

    def _suppressor(self, rule: StationRule) -> str | None:
        return next((n for n in rule.suppressed_by if self.active(n)), None)

    @staticmethod
    def _condition(rule: StationRule, st: RuleState, s: Sample) -> bool:
        assert s.value is not None
        if rule.type == "state":
            return (s.value >= 0.5) == rule.when
        assert rule.limit is not None
        band = rule.deadband if st.active else 0.0
        if rule.above:
            return s.value > rule.limit - band
        return s.value < rule.limit + band

    def _advance(self, rule: StationRule, st: RuleState, now: datetime, events: list[AlarmEvent]) -> None:
        if st.held_since is not None:
            return  # input not good: hold (see the module docstring)
        if st.condition and self._enabled(rule):
            st.clearing_since = None
            if st.active:
                return
            if st.pending_since is None:
                st.pending_since = now
            if (now - st.pending_since).total_seconds() >= rule.on_delay_s:
                st.active, st.pending_since = True, None
                st.suppressed_by = self._suppressor(rule)
                events.append(self._event("raise", rule, st, now))
                self._cause_changed(rule.name, now, events)
        else:
            st.pending_since = None
            if not st.active:
                return
            if st.clearing_since is None:
                st.clearing_since = now
            if (now - st.clearing_since).total_seconds() >= rule.off_delay_s:
                st.active, st.clearing_since = False, None
                events.append(self._event("clear", rule, st, now))
                st.suppressed_by = None
                self._cause_changed(rule.name, now, events)

    def _cause_changed(self, name: str, now: datetime, events: list[AlarmEvent]) -> None:
        """`name` became active or cleared: re-decide the suppression of the active alarms that name it,
        and re-check the rules it enables."""
        for rule in self.rules:
            st = self.states[rule.name]
            if name in rule.suppressed_by and st.active:
                by = self._suppressor(rule)
                if by != st.suppressed_by:
                    st.suppressed_by = by
                    events.append(self._event("suppress" if by else "unsuppress", rule, st, now))
            if name in rule.enabled_by and (st.active or st.pending_since is not None or st.condition):
                self._advance(rule, st, now, events)

    def _event(
        self, kind: str, rule: StationRule, st: RuleState, at: datetime, quality: str | None = None
    ) -> AlarmEvent:
        return AlarmEvent(
            kind,
            self.tenant,
            self.station,
            rule.name,
            rule.priority,
            _format(rule.message, st.value, self.station),
            st.value,
            at,
            suppressed_by=st.suppressed_by,
            latch=rule.latch,
            quality=quality,
        )


def _not_good(s: Sample) -> str | None:
    """Why a sample cannot decide a rule (its quality), or None when it can."""
    if s.quality is not Quality.GOOD:
        return s.quality.label
    return "not_available" if s.value is None else None
