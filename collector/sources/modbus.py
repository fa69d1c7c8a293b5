"""Modbus TCP polling with pymodbus's async client.

One `ModbusSource` per endpoint (host:port). An endpoint is one device or a gateway with several unit ids;
either way requests go one at a time on one connection, which is what serial gateways need. Each endpoint
runs in its own task, so a dead station never slows another endpoint.

Failure handling, per unit:
- no answer (timeout, refused, reset, or a gateway's exception 0x0A "path unavailable" / 0x0B "target
  device failed to respond": the unit behind it is as silent as a dead device): a missed poll; after
  `comm_loss_after` misses in a row every point of the unit gets a COMM_LOSS sample (value None), once, and
  the problem is logged once;
- an answer that does not fit (exception response, wrong length, unparseable frame): BAD_VALUE samples for
  the points of that block, logged once until it recovers; an unparseable frame also drops the connection
  so the next poll starts on a clean stream. Each such answer is also handed to `reject` (counted by
  controller and reason, kept as a dead letter with the frame received: `exception response`, `malformed
  frame`, `wrong function code`, `wrong length`);
- reconnects back off with jitter up to `reconnect_max_s` (seconds, not pymodbus's 300 s default).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from pumpwatch.collector.errors import ConnectError
from pumpwatch.collector.registers import Block, ReadPlan
from pumpwatch.collector.sources import Emit, Reject
from pumpwatch.core.backoff import jittered
from pumpwatch.core.clock import Clock
from pumpwatch.core.config.models import ControllerConfig
from pumpwatch.core.metrics import POLL_BUCKETS, Histogram
from pumpwatch.core.sample import Quality, Sample

log = logging.getLogger(__name__)

# Exception codes a gateway answers for the unit behind it: path unavailable, target failed to respond.
GATEWAY_NO_ANSWER = frozenset({0x0A, 0x0B})


@dataclass(frozen=True, slots=True)
class UnitPlan:
    unit_id: int
    station: str
    plan: ReadPlan
    timeout_s: float | None = None  # this unit's answer time limit (None: the controller's)


@dataclass
class UnitState:
    misses: int = 0
    lost: bool = False
    problems: dict[str, str] = field(default_factory=dict)  # what is wrong now, by block, for log-once


@dataclass
class SourceStats:
    polls: int = 0  # unit polls attempted
    answered: int = 0
    missed: int = 0
    bad_blocks: int = 0
    connects: int = 0
    late_cycles: int = 0
    cycles: int = 0  # poll cycles completed (every unit once)
    paused_cycles: int = 0  # cycles skipped: the link's lease was in doubt (may_poll said no)
    latency: Histogram = field(default_factory=lambda: Histogram(POLL_BUCKETS))  # seconds per unit read


def _raise_if_cancelling() -> None:
    """Python 3.11's asyncio.wait_for (inside pymodbus) can swallow a cancellation that races with its
    answer; the task's pending cancel count still says so. Honour it, or shutdown waits forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


ClientFactory = Callable[..., AsyncModbusTcpClient]
# problem text (from _read_block) → the reason a rejected answer is counted under
_REASONS = (
    ("exception response", "exception response"),
    ("malformed response frame", "malformed frame"),
    ("answer has function code", "wrong function code"),
    ("answer has", "wrong length"),
)


class ModbusSource:
    def __init__(
        self,
        ctrl: ControllerConfig,
        units: Sequence[UnitPlan],
        clock: Clock,
        emit: Emit,
        *,
        rng: random.Random | None = None,
        client_factory: ClientFactory = AsyncModbusTcpClient,
        reject: Reject | None = None,
    ) -> None:
        self.ctrl = ctrl
        self.reject = reject
        self.units = list(units)
        self.clock = clock
        self.emit = emit
        self.name = f"collector.modbus[{ctrl.id}]"
        self.stats = SourceStats()
        self.state = {u.unit_id: UnitState() for u in self.units}
        self._rng = rng or random.Random()
        self._client_factory = client_factory
        self._client: AsyncModbusTcpClient | None = None
        self._connect_failures = 0
        self._retry_at = 0.0  # real monotonic time before which no reconnect is tried
        self._rx_count = 0  # frames received: tells "garbled answer" from "no answer"
        self._last_rx = b""  # the last bytes received (kept with a rejected answer)
        self._requests_this_cycle = 0
        # One request at a time on the link: polls and the (rare, engineer-confirmed) field write.
        self.io_lock = asyncio.Lock()
        self.in_cycle = False  # polling now, rather than waiting for the next slot
        # Asked before each cycle (a collector on leased links: pumpwatch.core.leases.LeaseKeeper.may_poll);
        # None: always poll.
        self.may_poll: Callable[[], bool] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    async def run(self) -> None:
        interval = self.ctrl.poll_interval_s
        next_at = self.clock.monotonic()
        try:
            while True:
                _raise_if_cancelling()
                if self.may_poll is not None and not self.may_poll():  # the link's lease is in doubt
                    self.stats.paused_cycles += 1
                else:
                    self.in_cycle = True
                    try:
                        await self.poll_once()
                    finally:
                        self.in_cycle = False
                self.stats.cycles += 1
                next_at += interval
                now = self.clock.monotonic()
                if next_at < now:  # overran: skip the missed slots rather than burst to catch up
                    self.stats.late_cycles += 1
                    next_at = now + interval - ((now - next_at) % interval)
                await self.clock.sleep(next_at - now)
        finally:
            self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx_count += 1
            self._last_rx = bytes(data[:300])
        return data

    async def _ensure_connected(self) -> bool:
        if self._client is not None and self._client.connected:
            return True
        self._close()
        if time.monotonic() < self._retry_at:
            return False
        self.stats.connects += 1
        client = self._client_factory(
            self.ctrl.host,
            port=self.ctrl.port,
            timeout=self.ctrl.timeout_s,
            retries=0,
            reconnect_delay=0,  # we reconnect ourselves, with a bounded backoff
            trace_packet=self._trace,
        )
        try:
            ok = await asyncio.wait_for(client.connect(), self.ctrl.timeout_s + 0.5)
        except (TimeoutError, OSError, ModbusException):
            ok = False
        if ok and client.connected:
            self._client = client
            self._connect_failures = 0
            if self.ctrl.workarounds.pause_after_connect_s:
                await asyncio.sleep(self.ctrl.workarounds.pause_after_connect_s)
            return True
        client.close()
        self._connect_failures += 1
        self._retry_at = time.monotonic() + jittered(
            self._connect_failures, self.ctrl.reconnect_max_s, self._rng
        )
        return False

    # -- one cycle -------------------------------------------------------------------------------------
    async def poll_once(self) -> None:
        """Poll every unit once, in order, one request at a time."""
        self._requests_this_cycle = 0
        try:
            await self._poll_units()
        finally:
            if self.ctrl.workarounds.close_connection_after_poll:
                self._close()

    async def _poll_units(self) -> None:
        for unit in self.units:
            _raise_if_cancelling()
            self.stats.polls += 1
            if not await self._ensure_connected():
                self._missed(unit, f"cannot connect to {self.ctrl.host}:{self.ctrl.port}")
                continue
            t0 = time.perf_counter()
            try:
                samples = await self._read_unit(unit)
            except ConnectError as exc:
                self._missed(unit, str(exc))
                continue
            self.stats.latency.observe(time.perf_counter() - t0)
            self._answered(unit)
            if samples:
                self.emit(samples)

    async def _read_unit(self, unit: UnitPlan) -> list[Sample]:
        st = self.state[unit.unit_id]
        out: list[Sample] = []
        for block in unit.plan.blocks:
            key = f"{block.table}@{block.start}"
            if not await self._ensure_connected():  # a garbled frame before may have dropped the link
                raise ConnectError(f"cannot reconnect to {self.ctrl.host}:{self.ctrl.port}")
            words, problem = await self._read_block(unit, block)
            at = self.clock.now()
            if problem is not None:
                self.stats.bad_blocks += 1
                self._rejected(unit, block, problem)
                if st.problems.get(key) != problem:
                    log.warning(
                        "%s unit %d (%s) %s %d×%d: %s; its points are BAD_VALUE until it recovers",
                        self.name,
                        unit.unit_id,
                        unit.station,
                        block.table,
                        block.start,
                        block.count,
                        problem,
                    )
                    st.problems[key] = problem
                out.extend(Sample(unit.station, p.name, None, at, Quality.BAD_VALUE) for p in block.points)
                continue
            if st.problems.pop(key, None) is not None:
                log.info(
                    "%s unit %d (%s) %s %d: reads again",
                    self.name,
                    unit.unit_id,
                    unit.station,
                    block.table,
                    block.start,
                )
            for p in block.points:
                value, quality = p.decode(words, p.offset)  # type: ignore[arg-type]  # no problem: words
                out.append(Sample(unit.station, p.name, value, at, quality))
        return out

    async def _read_block(self, unit: UnitPlan, block: Block) -> tuple[Sequence[int] | None, str | None]:
        """Words of one block, or (None, why the answer does not fit). Raises ConnectError."""
        client = self._client
        if client is None:
            raise ConnectError("not connected")
        pause = self.ctrl.workarounds.pause_between_requests_s
        if pause and self._requests_this_cycle:
            await asyncio.sleep(pause)  # a serial gateway needs quiet time between frames
        self._requests_this_cycle += 1
        timeout = unit.timeout_s or self.ctrl.timeout_s
        # pymodbus reads its answer time limit from comm_params at each request: set it per unit.
        client.comm_params.timeout_connect = timeout
        read = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
        }[block.function_code]
        rx_before = self._rx_count
        try:
            async with self.io_lock:
                rr = await read(block.start, count=block.count, device_id=unit.unit_id)
        except ConnectionException as exc:
            self._close()
            raise ConnectError(f"connection lost: {exc}") from None
        except (ModbusException, TimeoutError, OSError) as exc:
            if self._rx_count != rx_before:
                # Bytes came back but did not make a response: garbled frame. Resync on a new connection.
                self._close()
                return None, "malformed response frame"
            if self._client is None or not self._client.connected:
                self._close()
            raise ConnectError(f"no answer within {timeout} s ({type(exc).__name__})") from None
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            if code in GATEWAY_NO_ANSWER:
                raise ConnectError(f"the gateway says unit {unit.unit_id} does not answer (exception {code})")
            return None, f"exception response {code if code is not None else '?'}"
        if rr.function_code != block.function_code:
            return None, f"answer has function code {rr.function_code}, asked {block.function_code}"
        bits = block.table in ("coil", "discrete_input")
        words: Sequence[int] = rr.bits if bits else rr.registers
        # Exactly what was asked: bit answers come in whole bytes; more values than asked is malformed too.
        expected = 8 * ((block.count + 7) // 8) if bits else block.count
        if len(words) != expected:
            return None, f"answer has {len(words)} values, asked {block.count}"
        return words, None

    def _rejected(self, unit: UnitPlan, block: Block, problem: str) -> None:
        if self.reject is None:
            return
        reason = next((r for prefix, r in _REASONS if problem.startswith(prefix)), "bad answer")
        where = f"unit {unit.unit_id} ({unit.station}) {block.table} {block.start}+{block.count}"
        try:
            self.reject(self.ctrl.id, where, reason, problem, self._last_rx)
        except Exception:  # keeping it must never stop polling
            log.exception("%s: cannot keep a rejected answer", self.name)

    # -- liveness --------------------------------------------------------------------------------------
    def _missed(self, unit: UnitPlan, why: str) -> None:
        self.stats.missed += 1
        st = self.state[unit.unit_id]
        st.misses += 1
        if st.misses >= self.ctrl.comm_loss_after and not st.lost:
            st.lost = True
            log.warning(
                "%s unit %d (%s): communication lost after %d missed polls (%s)",
                self.name,
                unit.unit_id,
                unit.station,
                st.misses,
                why,
            )
            at = self.clock.now()
            self.emit(
                [Sample(unit.station, name, None, at, Quality.COMM_LOSS) for name in unit.plan.point_names]
            )

    def _answered(self, unit: UnitPlan) -> None:
        self.stats.answered += 1
        st = self.state[unit.unit_id]
        if st.lost:
            log.info("%s unit %d (%s): communication restored", self.name, unit.unit_id, unit.station)
        st.misses = 0
        st.lost = False
