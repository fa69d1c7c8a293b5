"""Channels: how a message reaches a person. One `Notifier` per configured channel.

A channel raises `NotifyError(retryable=...)`: retryable (connection refused, timeout, 5xx, 429) is tried
again later with backoff; not retryable (a 5xx SMTP reply to the recipient, a 4xx from an API) moves on to
the person's next contact at once. No error text ever carries a secret (URL, token, password, Apprise URL):
every message is passed through `redact` with the channel's secrets, and the exception chain is cut.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib
import httpx

from pumpwatch.alarms.notify.config import (
    AppriseChannel,
    EmailChannel,
    LogChannel,
    Oncall,
    SmsChannel,
    WebhookChannel,
)

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and a webhook URL may carry its token: keep that log quiet.
logging.getLogger("httpx").setLevel(logging.WARNING)
SIGNATURE_HEADER = "X-Pumpwatch-Signature"
SMS_MAX = 1600  # Twilio's limit for one message body


class NotifyError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class OutgoingMessage:
    dedupe_key: str
    to: str
    subject: str
    body: str
    short: str
    person: str
    person_name: str
    tenant: str
    kind: str
    created_at: datetime | None = None
    ack_url: str | None = None
    alarm_ids: tuple[int, ...] = field(default_factory=tuple)
    # (filename, MIME type "maintype/subtype", content): e-mail only (an operation report's file)
    attachments: tuple[tuple[str, str, bytes], ...] = ()

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of one message, so a receiver can drop a repeat."""
        return hashlib.sha256(self.dedupe_key.encode()).hexdigest()[:40]


class Notifier(Protocol):
    name: str

    async def notify(self, msg: OutgoingMessage) -> None: ...

    def secrets(self, msg: OutgoingMessage | None = None) -> list[str]: ...


def redact(text: str, secrets: list[str]) -> str:
    for s in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def _http_error(what: str, exc: Exception) -> NotifyError:
    """Only the exception's class: httpx puts the URL (and so any token in it) into its messages."""
    return NotifyError(f"{what}: {type(exc).__name__}", retryable=True)


def _status_error(what: str, status: int) -> NotifyError:
    return NotifyError(f"{what}: HTTP {status}", retryable=status in (408, 425, 429) or status >= 500)


class EmailNotifier:
    def __init__(self, name: str, cfg: EmailChannel) -> None:
        self.name, self.cfg = name, cfg

    def secrets(self, msg: OutgoingMessage | None = None) -> list[str]:
        return [self.cfg.password.get_secret_value()] if self.cfg.password else []

    async def notify(self, msg: OutgoingMessage) -> None:
        em = EmailMessage()
        em["From"] = self.cfg.from_addr
        em["To"] = msg.to
        em["Subject"] = msg.subject
        em["Message-ID"] = f"<{msg.idempotency_key}@pumpwatch>"  # a retry carries the same id
        if msg.created_at is not None:
            em["Date"] = format_datetime(msg.created_at)
        em["Auto-Submitted"] = "auto-generated"
        em.set_content(msg.body)
        for name, mime, data in msg.attachments:
            main, _, sub = mime.partition(";")[0].strip().partition("/")
            em.add_attachment(data, maintype=main, subtype=sub, filename=name)
        c = self.cfg
        try:
            await aiosmtplib.send(
                em,
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password.get_secret_value() if c.password else None,
                use_tls=c.tls,
                start_tls=c.starttls,
                timeout=c.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            raise NotifyError(
                f"e-mail: recipient refused ({codes})", retryable=all(400 <= x < 500 for x in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise NotifyError(f"e-mail: SMTP {exc.code}", retryable=exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifyError(f"e-mail: {type(exc).__name__}", retryable=True) from None


class WebhookNotifier:
    """POST a JSON body; `X-Pumpwatch-Signature: sha256=<hex HMAC of the body>` with the channel's secret,
    `Idempotency-Key` the same on every attempt."""

    def __init__(self, name: str, cfg: WebhookChannel) -> None:
        self.name, self.cfg = name, cfg

    def secrets(self, msg: OutgoingMessage | None = None) -> list[str]:
        return [self.cfg.url.get_secret_value(), self.cfg.secret.get_secret_value()]

    async def notify(self, msg: OutgoingMessage) -> None:
        body = json.dumps(
            {
                "version": 1,
                "dedupe_key": msg.dedupe_key,
                "kind": msg.kind,
                "tenant": msg.tenant,
                "person": msg.person,
                "recipient": msg.to,
                "subject": msg.subject,
                "text": msg.body,
                "short": msg.short,
                "ack_url": msg.ack_url,
                "alarms": list(msg.alarm_ids),
            },
            ensure_ascii=False,
        ).encode()
        sig = hmac.new(self.cfg.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": msg.idempotency_key,
            SIGNATURE_HEADER: f"sha256={sig}",
        }
        try:
            async with httpx.AsyncClient(timeout=self.cfg.timeout_s) as client:
                r = await client.post(self.cfg.url.get_secret_value(), content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _http_error("webhook", exc) from None
        if not r.is_success:
            raise _status_error("webhook", r.status_code)


class SmsNotifier:
    """A Twilio-shaped SMS / voice REST API (any provider with the same shape, or a gateway)."""

    def __init__(self, name: str, cfg: SmsChannel) -> None:
        self.name, self.cfg = name, cfg

    def secrets(self, msg: OutgoingMessage | None = None) -> list[str]:
        return [self.cfg.auth_token.get_secret_value()]

    async def notify(self, msg: OutgoingMessage) -> None:
        c = self.cfg
        base = f"{c.base_url.rstrip('/')}/2010-04-01/Accounts/{c.account_sid}"
        text = msg.short[:SMS_MAX]
        if c.mode == "sms":
            url, data = f"{base}/Messages.json", {"To": msg.to, "From": c.from_number, "Body": text}
        else:
            say = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            twiml = f'<Response><Say language="ja-JP">{say}</Say></Response>'
            url, data = f"{base}/Calls.json", {"To": msg.to, "From": c.from_number, "Twiml": twiml}
        try:
            async with httpx.AsyncClient(timeout=c.timeout_s) as client:
                r = await client.post(
                    url,
                    data=data,
                    auth=(c.account_sid, c.auth_token.get_secret_value()),
                    headers={"Idempotency-Key": msg.idempotency_key},
                )
        except httpx.HTTPError as exc:
            raise _http_error(c.mode, exc) from None
        if not r.is_success:
            raise _status_error(c.mode, r.status_code)


class AppriseNotifier:
    """Chat and push through Apprise (Slack, Teams, Telegram, LINE, ntfy, Pushover, ...): the person's
    contact is an Apprise URL, which carries its tokens, so it is a secret."""

    def __init__(self, name: str, cfg: AppriseChannel) -> None:
        self.name, self.cfg = name, cfg

    def secrets(self, msg: OutgoingMessage | None = None) -> list[str]:
        return [msg.to] if msg is not None else []

    async def notify(self, msg: OutgoingMessage) -> None:
        import apprise  # imported here: it loads its plugins at import

        ap = apprise.Apprise()
        if not ap.add(msg.to):
            raise NotifyError("apprise: the contact is not a valid Apprise URL", retryable=False)
        try:
            ok = await asyncio.wait_for(
                ap.async_notify(body=msg.short, title=msg.subject), timeout=self.cfg.timeout_s
            )
        except TimeoutError:
            raise NotifyError("apprise: timeout", retryable=True) from None
        except Exception as exc:
            raise NotifyError(f"apprise: {type(exc).__name__}", retryable=True) from None
        if not ok:
            raise NotifyError("apprise: the service did not accept the message", retryable=True)


class LogNotifier:
    """Appends a JSON line per message to a local file: the demo's channel, no outside service."""

    def __init__(self, name: str, cfg: LogChannel, root: Path) -> None:
        self.name, self.cfg = name, cfg
        p = Path(cfg.path)
        self.path = p if p.is_absolute() else Path.cwd() / p
        self._lock = asyncio.Lock()

    def secrets(self, msg: OutgoingMessage | None = None) -> list[str]:
        return []

    async def notify(self, msg: OutgoingMessage) -> None:
        line = json.dumps(
            {
                "dedupe_key": msg.dedupe_key,
                "idempotency_key": msg.idempotency_key,
                "person": msg.person,
                "to": msg.to,
                "subject": msg.subject,
                "text": msg.body,
                "ack_url": msg.ack_url,
            },
            ensure_ascii=False,
        )

        def write() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

        async with self._lock:
            try:
                await asyncio.to_thread(write)
            except OSError as exc:
                raise NotifyError(f"log: cannot write: {type(exc).__name__}", retryable=True) from None


def build_notifiers(oncall: Oncall) -> dict[str, Notifier]:
    out: dict[str, Notifier] = {}
    for name, c in oncall.channels.items():
        if isinstance(c, EmailChannel):
            out[name] = EmailNotifier(name, c)
        elif isinstance(c, WebhookChannel):
            out[name] = WebhookNotifier(name, c)
        elif isinstance(c, SmsChannel):
            out[name] = SmsNotifier(name, c)
        elif isinstance(c, AppriseChannel):
            out[name] = AppriseNotifier(name, c)
        elif isinstance(c, LogChannel):
            out[name] = LogNotifier(name, c, oncall.path.parent)
    return out
