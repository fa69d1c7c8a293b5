"""A private Mosquitto broker for tests, on a free loopback port, plus a small collecting subscriber.

`MosquittoBroker(port).start()` writes a minimal config to a temporary folder (`listener PORT 127.0.0.1`,
`allow_anonymous true`, `persistence false`, log to stderr, which goes to `broker.log` in that folder),
starts the mosquitto binary and waits until the port accepts connections. `stop()` terminates it;
`restart()` is stop + start on the same port (broker-restart tests). The binary is `$PUMPWATCH_MOSQUITTO`,
else `mosquitto` on PATH, else `/usr/sbin/mosquitto`; without one, `service_missing` skips (fails in CI).

`Subscriber` is a plain aiomqtt client that queues every message of its subscriptions, so a test can
`await sub.next("scada/v1/PS-01/status")` with a timeout instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from pumpwatch.core.config.models import MqttBroker
from tests.services import free_port, service_missing

__all__ = ["MosquittoBroker", "Subscriber", "mosquitto_binary"]

START_TIMEOUT_S = 5.0


def mosquitto_binary() -> str | None:
    env = os.environ.get("PUMPWATCH_MOSQUITTO")
    if env:
        return env if os.access(env, os.X_OK) else None
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoBroker:
    """One mosquitto process. Not a context manager on purpose: the fixture owns start and stop."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", config: str | None = None) -> None:
        self.host = host
        self.config = config  # replaces the default settings after the listener line
        self.port = port if port is not None else free_port(host)
        self._dir = Path(tempfile.mkdtemp(prefix="pumpwatch-mosquitto-"))
        self.conf = self._dir / "mosquitto.conf"
        self.log_path = self._dir / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def broker_config(self, **overrides: Any) -> MqttBroker:
        """An `MqttBroker` pointing at this broker (short reconnect ceiling for tests unless overridden)."""
        fields: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "reconnect_max_s": 2.0,
            "keepalive_s": 10,
        }
        fields.update(overrides)
        return MqttBroker(**fields)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        if self.running:
            return
        binary = mosquitto_binary()
        if binary is None:
            service_missing("Mosquitto", "install it with `apt-get install mosquitto`; .ci/run does")
            return
        settings = self.config if self.config is not None else "allow_anonymous true\npersistence false\n"
        self.conf.write_text(
            f"listener {self.port} {self.host}\n" + settings + "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
        )
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603
                [binary, "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"mosquitto exited with {rc} on port {self.port}:\n{self.log_tail()}")
            if _accepts(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"mosquitto did not accept connections on port {self.port} within {START_TIMEOUT_S} s"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class Subscriber:
    """`async with Subscriber(broker, "scada/v1/#") as sub:` then `await sub.next(pattern)`.

    Messages are kept in arrival order; `next` returns (and removes) the first one whose topic matches the
    `fnmatch` pattern, waiting up to `timeout` seconds for it."""

    def __init__(self, broker: MosquittoBroker | MqttBroker, *topics: str, qos: int = 1) -> None:
        self._host, self._port = broker.host, broker.port
        self._topics = topics
        self._qos = qos
        self.messages: list[aiomqtt.Message] = []
        self._arrived = asyncio.Condition()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self._client = aiomqtt.Client(self._host, self._port, keepalive=10)
        await self._client.__aenter__()
        for t in self._topics:
            await self._client.subscribe(t, qos=self._qos)
        self._task = asyncio.create_task(self._receive(), name="tests.mqtt.subscriber")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    async def _receive(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            async with self._arrived:
                self.messages.append(message)
                self._arrived.notify_all()

    def _take(self, pattern: str) -> aiomqtt.Message | None:
        for i, m in enumerate(self.messages):
            if fnmatch.fnmatchcase(m.topic.value, pattern):
                return self.messages.pop(i)
        return None

    # The timeout is a parameter so the failure can list what did arrive.
    async def next(self, pattern: str = "*", timeout: float = 5.0) -> aiomqtt.Message:  # noqa: ASYNC109
        async def wait() -> aiomqtt.Message:
            async with self._arrived:
                while (m := self._take(pattern)) is None:
                    await self._arrived.wait()
                return m

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            seen = sorted({m.topic.value for m in self.messages})
            raise AssertionError(f"no message on {pattern!r} within {timeout} s; queued: {seen}") from None

    async def quiet(self, pattern: str = "*", for_s: float = 0.3) -> None:
        """Assert nothing matching `pattern` arrives for `for_s` seconds."""
        try:
            m = await self.next(pattern, timeout=for_s)
        except AssertionError:
            return
        raise AssertionError(f"unexpected message on {m.topic.value}: {m.payload!r}")

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        assert self._client is not None
        await self._client.publish(topic, payload, qos=qos, retain=retain)

    def drain(self) -> list[aiomqtt.Message]:
        out, self.messages = self.messages, []
        return out
