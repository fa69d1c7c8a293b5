"""A private Mosquitto broker for tests, on a free loopback port, plus a small collecting subscriber.

`MosquittoBroker(port)` is the app's one launcher (`pumpwatch.app.mosquitto.Mosquitto`: config in a
temporary folder, log in `broker.log` there, `start`/`stop`/`restart`/`cleanup`) on a free port of this
test worker's range. The binary is `$PUMPWATCH_MOSQUITTO`, else `mosquitto` on PATH, else
`/usr/sbin/mosquitto`; without one, `service_missing` skips (fails in CI).

`Subscriber` is a plain aiomqtt client that queues every message of its subscriptions, so a test can
`await sub.next("scada/v1/PS-01/status")` with a timeout instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from typing import Any

import aiomqtt

from pumpwatch.app.mosquitto import Mosquitto, find_mosquitto
from pumpwatch.core.config.models import MqttBroker
from tests.services import free_port, service_missing

__all__ = ["MosquittoBroker", "Subscriber", "mosquitto_binary"]

mosquitto_binary = find_mosquitto


class MosquittoBroker(Mosquitto):
    """The app's launcher (`pumpwatch.app.mosquitto.Mosquitto`) on a port of this test worker's range,
    skipping (failing under CI) without a binary. Not a context manager on purpose: the fixture owns start
    and stop."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", config: str | None = None) -> None:
        super().__init__(
            find_mosquitto() or "mosquitto",
            port if port is not None else free_port(host),
            host,
            settings=config,  # replaces the default settings after the listener line
        )
        self.config = config

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

    def start(self) -> None:
        if find_mosquitto() is None:
            service_missing("Mosquitto", "install it with `apt-get install mosquitto`; .ci/run does")
            return
        super().start()


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
