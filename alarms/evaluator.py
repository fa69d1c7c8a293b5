"""Per-station rule evaluation: a pure state machine over samples and time.

Per rule: normal → pending (condition true, waiting `on_delay_s`) → active → clearing (condition false,
waiting `off_delay_s`) → normal. A limit alarm clears only past its deadband. Samples of bad quality leave
a state or limit condition as it was: a garbled read neither raises nor clears an alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from alarms.rules import StationRule
from collector.model import Quality, Sample


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    kind: str  # "raise" | "clear"
    tenant: str
    station: str
    name: str
    priority: str
    message: str
    value: float | None
    at: datetime


@dataclass(slots=True)
class RuleState:
    active: bool = False
    condition: bool | None = None
    value: float | None = None
    pending_since: datetime | None = None
    clearing_since: datetime | None = None


class StationEvaluator:
    def __init__(self, tenant: str, station: str, rules: Iterable[StationRule]) -> None:
        self.tenant = tenant
        self.station = station
        self.rules = list(rules)
        self.states = {r.name: RuleState() for r in self.rules}
        self._by_point: dict[str, list[StationRule]] = {}
        for r in self.rules:
            if r.point is not None:
                self._by_point.setdefault(r.point, []).append(r)
        self._comm_rules = [r for r in self.rules if r.type == "comm_loss"]

    def restore_active(self, name: str) -> None:
        """Mark a rule active (it was active in the store when we started), so it can clear."""
        if name in self.states:
            self.states[name].active = True

    def evaluate(self, samples: Iterable[Sample], now: datetime) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        answered = lost = False
        for s in samples:
            if s.quality is Quality.COMM_LOSS:
                lost = True
                continue
            answered = True
            for rule in self._by_point.get(s.point, ()):
                st = self.states[rule.name]
                cond = self._condition(rule, st, s)
                if cond is not None:
                    st.condition, st.value = cond, s.value
                    self._advance(rule, st, s.observed_at, events)
        for rule in self._comm_rules:
            if lost or answered:
                st = self.states[rule.name]
                st.condition = lost and not answered
                self._advance(rule, st, now, events)
        return events

    def tick(self, now: datetime) -> list[AlarmEvent]:
        """Let delays run out when no new sample arrives."""
        events: list[AlarmEvent] = []
        for rule in self.rules:
            st = self.states[rule.name]
            if st.pending_since is not None or st.clearing_since is not None:
                self._advance(rule, st, now, events)
        return events

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
        if st.condition:
            st.clearing_since = None
            if st.active:
                return
            if st.pending_since is None:
                st.pending_since = now
            if (now - st.pending_since).total_seconds() >= rule.on_delay_s:
                st.active, st.pending_since = True, None
                events.append(self._event("raise", rule, st, now))
        else:
            st.pending_since = None
            if not st.active:
                return
            if st.clearing_since is None:
                st.clearing_since = now
            if (now - st.clearing_since).total_seconds() >= rule.off_delay_s:
                st.active, st.clearing_since = False, None
                events.append(self._event("clear", rule, st, now))

    def _event(self, kind: str, rule: StationRule, st: RuleState, at: datetime) -> AlarmEvent:
        return AlarmEvent(
            kind, self.tenant, self.station, rule.name, rule.priority, rule.message, st.value, at
        )
