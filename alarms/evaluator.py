"""Per-station rule evaluation: a pure state machine over samples and time.

Per rule: normal → pending (condition true, waiting `on_delay_s`) → active → clearing (condition false,
waiting `off_delay_s`) → normal. A limit alarm clears only past its deadband. Samples of bad quality leave
a state or limit condition as it was: a garbled read neither raises nor clears an alarm.

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
from datetime import datetime

from alarms.rules import StationRule
from collector.model import Quality, Sample


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    kind: str  # raise | clear | suppress | unsuppress
    tenant: str
    station: str
    name: str
    priority: str
    message: str
    value: float | None
    at: datetime
    suppressed_by: str | None = None
    latch: bool = False


@dataclass(slots=True)
class RuleState:
    active: bool = False
    condition: bool | None = None
    value: float | None = None
    pending_since: datetime | None = None
    clearing_since: datetime | None = None
    suppressed_by: str | None = None


def _format(message: str, value: float | None, station: str) -> str:
    if "{" not in message:
        return message
    try:
        return message.format(value=value if value is not None else float("nan"), station=station)
    except (ValueError, KeyError, IndexError):
        return message


class StationEvaluator:
    def __init__(self, tenant: str, station: str, rules: Iterable[StationRule]) -> None:
        self.tenant = tenant
        self.station = station
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
        """`samples` from the device; `derived` ones computed from them (they say nothing about the link)."""
        events: list[AlarmEvent] = []
        answered = lost = False
        by_point: dict[str, Sample] = {}
        for s in samples:
            if s.quality is Quality.COMM_LOSS:
                lost = True
                continue
            answered = True
            by_point[s.point] = s  # the newest of each point in the batch
        for s in derived:
            by_point[s.point] = s
        for rule in self.rules:
            st = self.states[rule.name]
            if rule.type == "comm_loss":
                if lost or answered:
                    st.condition = lost and not answered
                    self._advance(rule, st, now, events)
                continue
            s = by_point.get(rule.point)  # type: ignore[arg-type]
            if s is None:
                continue
            cond = self._condition(rule, st, s)
            if cond is not None:
                st.condition, st.value = cond, s.value
                self._advance(rule, st, s.observed_at, events)
        return events

    def tick(self, now: datetime) -> list[AlarmEvent]:
        """Let delays run out when no new sample arrives, and re-check gated rules."""
        events: list[AlarmEvent] = []
        for rule in self.rules:
            st = self.states[rule.name]
            if (
                st.pending_since is not None
                or st.clearing_since is not None
                or (rule.enabled_by and st.active)
            ):
                self._advance(rule, st, now, events)
        return events

    def _enabled(self, rule: StationRule) -> bool:
        return not rule.enabled_by or any(self.active(n) for n in rule.enabled_by)

    def _suppressor(self, rule: StationRule) -> str | None:
        return next((n for n in rule.suppressed_by if self.active(n)), None)

    @staticmethod
    def _condition(rule: StationRule, st: RuleState, s: Sample) -> bool | None:
        if s.quality is not Quality.GOOD or s.value is None:
            return None
        if rule.type == "state":
            return (s.value >= 0.5) == rule.when
        assert rule.limit is not None
        band = rule.deadband if st.active else 0.0
        if rule.above:
            return s.value > rule.limit - band
        return s.value < rule.limit + band

    def _advance(self, rule: StationRule, st: RuleState, now: datetime, events: list[AlarmEvent]) -> None:
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

    def _event(self, kind: str, rule: StationRule, st: RuleState, at: datetime) -> AlarmEvent:
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
        )
