"""One MQTT session of a simulated MQTT device kept alive: connect, run the session, reconnect.

Reconnecting is a visible loop with the project's jittered backoff (`pumpwatch.core.backoff.jittered`),
capped at `broker.reconnect_max_s`, in real time (the broker lives in real time, even when the clock is
fake). `kill()` drops the TCP connection without an MQTT DISCONNECT (the broker then sends the will),
`stop()` is the clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt

from pumpwatch.core import tasks
from pumpwatch.core.backoff import jittered
from pumpwatch.core.config.models import MqttBroker

__all__ = ["MqttLink"]

log = logging.getLogger(__name__)


class MqttLink:
    """One MQTT session kept alive: connect, run the session, reconnect with backoff until closed.

    `will()` is called before every connection attempt (the will may change per session: bdSeq). `session`
    runs while connected; it returns or raises MqttError when the connection is gone. `kill()` shuts the
    socket down under paho (no DISCONNECT leaves), so the broker publishes the will."""

    def __init__(
        self,
        name: str,
        broker: MqttBroker,
        identifier: str,
        will: Callable[[], aiomqtt.Will],
        session: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]],
    ) -> None:
        self.name = name
        self.broker = broker
        self.identifier = identifier
        self._will = will
        self._session = session
        self.client: aiomqtt.Client | None = None  # set while a session is up
        self.online = False  # True once the session's opening messages are out, until it ends
        self._changed = asyncio.Condition()
        self.sessions = 0
        self._task: asyncio.Task[None] | None = None
        self._dead = False  # kill(): do not reconnect

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._dead = False
        self._task = asyncio.create_task(self._run(), name=self.name)
        self._task.add_done_callback(tasks.log_failure(log, f"{self.name}: the MQTT session"))

    async def _run(self) -> None:
        attempt = 0
        while not self._dead:
            client = aiomqtt.Client(
                self.broker.host,
                self.broker.port,
                identifier=self.identifier,
                username=self.broker.username,
                password=self.broker.password,
                will=self._will(),
                keepalive=self.broker.keepalive_s,
                clean_session=True,
                timeout=10,
            )
            lost: BaseException | None = None
            try:
                async with client:
                    attempt = 0
                    self.client = client
                    self.sessions += 1
                    log.debug("%s: connected to %s:%d", self.name, self.broker.host, self.broker.port)
                    await self._session(client)
            except* aiomqtt.MqttError as eg:
                lost = eg.exceptions[0]
            finally:
                self.client = None
                self.online = False
            if self._dead:
                break
            delay = jittered(attempt, self.broker.reconnect_max_s)
            attempt += 1
            log.info("%s: connection lost (%s); reconnecting in %.2f s", self.name, lost, delay)
            await asyncio.sleep(delay)

    async def set_online(self) -> None:
        self.online = True
        async with self._changed:
            self._changed.notify_all()

    async def wait_online(self, min_sessions: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.online and self.sessions >= min_sessions)

    def drop(self) -> bool:
        """Shut the TCP connection down without DISCONNECT; False if there was none."""
        client = self.client
        sock = client._client.socket() if client is not None else None  # noqa: SLF001 - paho's socket
        if not isinstance(sock, socket.socket):  # (None between sessions; paho's TCP socket otherwise)
            return False
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # FIN to the broker; paho sees EOF and reports the loss
        return True

    async def kill(self, *, reconnect: bool) -> None:
        self._dead = not reconnect
        dropped = self.drop()
        if reconnect or self._task is None:
            return
        if not dropped:  # between sessions: nothing to drop, just stop trying
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except TimeoutError:
                await tasks.stop(self._task, logger=log, failure_level=logging.DEBUG)

    async def stop(self, goodbye: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]] | None) -> None:
        """Clean shutdown: `goodbye(client)` while still connected, then cancel: aiomqtt's `__aexit__` sends
        DISCONNECT, so the broker drops the will."""
        self._dead = True
        client = self.client
        if goodbye is not None and client is not None:
            try:
                await goodbye(client)
            except aiomqtt.MqttError as exc:
                log.warning("%s: goodbye message not sent: %s", self.name, exc)
        if self._task is not None:
            await tasks.stop(self._task, logger=log, failure_level=logging.DEBUG)
            self._task = None

    async def publish_raw(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> None:
        if self.client is None:
            raise RuntimeError(f"{self.name}: not connected")
        await self.client.publish(topic, payload, qos=qos, retain=retain)
