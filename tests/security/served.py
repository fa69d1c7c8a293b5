"""The API on a real uvicorn (the production server configuration, `api_server_config`) on a free
loopback port, in the test's own event loop: hostile clients talk to it over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from pumpwatch.app.serve import ApiServer, api_server_config
from tests.services import free_port


@contextlib.asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    port = free_port()
    server = ApiServer(api_server_config(app, "127.0.0.1", port, timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(), name="test.uvicorn")
    t0 = time.monotonic()
    while not server.started:
        if task.done() or time.monotonic() - t0 > 15:
            raise AssertionError(f"uvicorn did not start: {task}")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            task.cancel()
            raise AssertionError("uvicorn did not shut down") from None


async def raw_exchange(port: int, requests: list[bytes], wait_s: float = 5.0) -> list[bytes | None]:
    """Send HTTP/1.1 requests one after another on ONE connection; each answer's bytes, or None once
    the server closed the connection instead of answering."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers: list[bytes | None] = []
    try:
        for req in requests:
            writer.write(req)
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s)
            except (asyncio.IncompleteReadError, ConnectionError):
                answers.append(None)
                continue
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await asyncio.wait_for(reader.readexactly(length), wait_s) if length else b""
            answers.append(head + body)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return answers
