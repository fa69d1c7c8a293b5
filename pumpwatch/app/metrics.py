"""The `/metrics` exporter: reads a running process's parts at scrape time (the counters stay theirs).

It reads a `System` (pumpwatch/app/system.py) through `Observed`, the part of it the exporter needs, so
the wiring can build its registry without the two modules importing each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from pumpwatch.alarms.service import AlarmService
from pumpwatch.alarms.system_monitor import SystemMonitor
from pumpwatch.collector.sources.modbus import ModbusSource
from pumpwatch.core.rejections import RejectionLog
from pumpwatch.core.sharding import ShardHeartbeat
from pumpwatch.core.timescale import HistorianFeatures, JobWatch
from pumpwatch.core.writer import HistorianWriter


class Observed(Protocol):
    """What the exporter reads of a System."""

    sources: list[ModbusSource]
    writer: HistorianWriter | None
    alarms: AlarmService | None
    historian_features: HistorianFeatures | None
    timescale_jobs: JobWatch | None
    rejections: RejectionLog | None
    monitor: SystemMonitor | None
    heartbeat: ShardHeartbeat | None

    def late_polls(self) -> int: ...

    def station_count(self) -> int: ...


class SystemCollector(Collector):
    def __init__(self, system: Observed) -> None:
        self.system = system

    def collect(self) -> Iterator[Any]:
        s = self.system
        polls = CounterMetricFamily("pumpwatch_polls", "Unit polls attempted", labels=["result"])
        answered = sum(src.stats.answered for src in s.sources)
        missed = sum(src.stats.missed for src in s.sources)
        polls.add_metric(["answered"], answered)
        polls.add_metric(["missed"], missed)
        yield polls
        yield CounterMetricFamily(
            "pumpwatch_late_polls", "Poll cycles that overran their interval", value=s.late_polls()
        )
        hists = [src.stats.latency for src in s.sources if getattr(src.stats, "latency", None) is not None]
        if hists:
            buckets, total = hists[0].merged(hists)
            h = HistogramMetricFamily("pumpwatch_poll_latency_seconds", "Time to read one unit")
            h.add_metric([], buckets, total)
            yield h
        yield GaugeMetricFamily("pumpwatch_stations", "Stations this process polls", value=s.station_count())
        w = s.writer
        if w is not None:
            yield CounterMetricFamily("pumpwatch_rows_written", "Sample rows stored", value=w.written)
            yield GaugeMetricFamily("pumpwatch_rows_pending", "Rows waiting in memory", value=w.pending)
            yield GaugeMetricFamily(
                "pumpwatch_historian_delayed", "1 while rows wait for the database", value=int(w.delayed)
            )
            if w.spool is not None:
                st = w.spool.status()
                yield GaugeMetricFamily(
                    "pumpwatch_spool_rows", "Rows in the disk spool", value=st.pending_rows
                )
                yield GaugeMetricFamily("pumpwatch_spool_bytes", "Bytes of the disk spool", value=st.bytes)
                yield GaugeMetricFamily(
                    "pumpwatch_spool_fill_ratio", "Spool bytes / capacity", value=st.fill_pct / 100
                )
                yield CounterMetricFamily(
                    "pumpwatch_spool_dropped_rows", "Rows dropped by a full spool", value=st.dropped_rows
                )
        a = s.alarms
        if a is not None:
            yield CounterMetricFamily("pumpwatch_alarm_events", "Alarm events stored", value=a.events)
            if a.latency is not None:
                buckets, total = a.latency.merged([a.latency])
                h = HistogramMetricFamily(
                    "pumpwatch_alarm_latency_seconds", "From the sample's time to the alarm event stored"
                )
                h.add_metric([], buckets, total)
                yield h
        f = s.historian_features
        if f is not None and f.shape == "timescaledb":
            feat = GaugeMetricFamily(
                "pumpwatch_historian_feature",
                "1 if a TimescaleDB feature of the historian is set up, 0 if it is missing",
                labels=["feature"],
            )
            for name in f.present:
                feat.add_metric([name], 1)
            for name in f.missing:
                feat.add_metric([name], 0)
            yield feat
        jw = s.timescale_jobs
        if jw is not None and jw.jobs:
            failing = GaugeMetricFamily(
                "pumpwatch_timescale_job_failing",
                "1 while TimescaleDB's background scheduler fails a historian job (pumpwatch then runs it)",
                labels=["job", "proc", "relation"],
            )
            for j in jw.jobs:
                failing.add_metric([str(j.job_id), j.proc, j.relation], int(j.job_id in jw.failing_ids))
            yield failing
        rj = s.rejections
        if rj is not None:
            rejected = CounterMetricFamily(
                "pumpwatch_rejected_messages",
                "Inputs rejected, by source (controller) and reason; each kept as a dead letter",
                labels=["source", "reason"],
            )
            for (source, reason), n in sorted(rj.counts.items()):
                rejected.add_metric([source, reason], n)
            yield rejected
            yield GaugeMetricFamily(
                "pumpwatch_dead_letters_queued", "Dead letters waiting to be stored", value=rj.queued
            )
            yield CounterMetricFamily(
                "pumpwatch_dead_letters_lost",
                "Dead letters dropped from memory before they could be stored (counted in the totals)",
                value=rj.lost,
            )
            yield CounterMetricFamily(
                "pumpwatch_dead_letters_pruned",
                "Dead letters deleted by the bound (newest N per source kept)",
                value=rj.pruned,
            )
        mon = s.monitor
        if mon is not None:
            active = GaugeMetricFamily(
                "pumpwatch_system_alarm_active",
                "1 while a system alarm of the centre is active in this process's monitor",
                labels=["station", "alarm", "priority"],
            )
            for row in mon.active():
                active.add_metric([row["station"], row["name"], row["priority"]], 1)
            yield active
        hb = s.heartbeat
        if hb is not None:
            up = GaugeMetricFamily(
                "pumpwatch_shard_up", "1 while a collector shard heartbeats", labels=["shard"]
            )
            for r in hb.last:
                up.add_metric([str(r["shard"])], int(r["alive"]))
            yield up


def registry_for(system: Observed) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SystemCollector(system))
    return reg
