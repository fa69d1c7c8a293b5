"""Real receivers on loopback for the notification tests: an SMTP server (aiosmtpd) and an HTTP server
(stdlib, in a thread) that checks webhook signatures and keeps every request. Both count what they got by
the sender's dedupe key (Message-ID / Idempotency-Key), as a receiver that drops repeats would."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.services import free_port


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse: dict[str, str] = {}  # address -> SMTP reply, e.g. "550 no such user"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on a free loopback port; `stop()` and `start()` play an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.box = _Mailbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Message]:
        return self.box.messages

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]

    def unique_ids(self) -> Counter[str]:
        return Counter(m["Message-ID"] for m in self.messages)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Keeps every request; answers `status`; with `secret`, refuses (401) a webhook whose
    X-Pumpwatch-Signature is not the HMAC-SHA256 of the body."""

    secret: str | None = None
    status: int = 200
    delay_s: float = 0.0  # hold each answer this long (a slow provider; a sender killed mid-request)
    requests: list[Request] = field(default_factory=list)
    bad_signatures: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> HttpReceiver:
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                status = recv.status
                if recv.secret is not None and self.command == "POST":
                    want = hmac.new(recv.secret.encode(), body, hashlib.sha256).hexdigest()
                    if not hmac.compare_digest(
                        req.headers.get("x-pumpwatch-signature", ""), f"sha256={want}"
                    ):
                        recv.bad_signatures += 1
                        status = 401
                if status < 300:
                    recv.requests.append(req)
                if recv.delay_s:
                    time.sleep(recv.delay_s)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"sid": "SM123", "status": "queued"}' if status < 300 else b"{}")

            do_POST = do_GET = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def unique_keys(self) -> Counter[str]:
        return Counter(r.headers.get("idempotency-key", "") for r in self.requests)
