"""Each channel against a real receiver on loopback, and none of them leaks a secret (URL token, HMAC
key, auth token, password, Apprise URL) into its errors or the log (Alertmanager's
AssertNotifyLeaksNoSecret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from urllib.parse import parse_qs

import pytest

from pumpwatch.alarms.notify.channels import (
    AppriseNotifier,
    EmailNotifier,
    NotifyError,
    OutgoingMessage,
    SmsNotifier,
    WebhookNotifier,
)
from pumpwatch.alarms.notify.config import AppriseChannel, EmailChannel, SmsChannel, WebhookChannel
from tests.notify.receivers import HttpReceiver, SmtpServer
from tests.services import free_port

TOKEN = "T0KEN-in-the-url-7731"
HMAC_KEY = "hmac-key-5521"
AUTH = "auth-token-9931"
PASSWORD = "smtp-pass-4410"
APPRISE_PASS = "apprise-pass-8812"
SECRETS = [TOKEN, HMAC_KEY, AUTH, PASSWORD, APPRISE_PASS]


def msg(to: str = "duty1@kita.example.jp") -> OutgoingMessage:
    return OutgoingMessage(
        dedupe_key="msg:duty1:17", to=to, subject="[CRITICAL] KITA-MP-01: power failure",
        body="Mains lost\nAcknowledge this alarm: http://127.0.0.1:8000/api/v1/notify/ack/x.y",
        short="[CRITICAL] KITA-MP-01: power failure Ack: http://127.0.0.1:8000/api/v1/notify/ack/x.y",
        person="duty1", person_name="Duty One", tenant="kita", kind="alarm", alarm_ids=(17,),
        ack_url="http://127.0.0.1:8000/api/v1/notify/ack/x.y",
    )  # fmt: skip


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = HttpReceiver().start()
    yield r
    r.stop()


async def test_email_carries_a_message_id_derived_from_the_dedupe_key(smtp: SmtpServer) -> None:
    n = EmailNotifier(
        "mail", EmailChannel(type="email", host="127.0.0.1", port=smtp.port, **{"from": "pw@x.jp"})
    )
    await n.notify(msg())
    await n.notify(msg())  # a retry
    [(mid, count)] = smtp.unique_ids().items()
    assert count == 2 and mid == f"<{msg().idempotency_key}@pumpwatch>"
    assert "Acknowledge this alarm" in smtp.messages[0].get_content()


async def test_webhook_is_signed_over_its_body(receiver: HttpReceiver) -> None:
    url = f"{receiver.url}/hooks/{TOKEN}"
    n = WebhookNotifier("hook", WebhookChannel(type="webhook", url=url, secret=HMAC_KEY))
    await n.notify(msg())
    [req] = receiver.requests
    assert req.path == f"/hooks/{TOKEN}"
    want = hmac.new(HMAC_KEY.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-pumpwatch-signature"] == f"sha256={want}"
    assert req.headers["idempotency-key"] == msg().idempotency_key
    assert json.loads(req.body)["alarms"] == [17]


@pytest.mark.parametrize("mode", ["sms", "voice"])
async def test_sms_and_voice_in_the_shape_of_twilio(receiver: HttpReceiver, mode: str) -> None:
    cfg = SmsChannel(
        type="sms",
        base_url=receiver.url,
        account_sid="AC0001",
        auth_token=AUTH,
        mode=mode,
        **{"from": "+815000"},
    )
    await SmsNotifier("sms", cfg).notify(msg(to="+819012345678"))
    [req] = receiver.requests
    assert req.path == f"/2010-04-01/Accounts/AC0001/{'Messages' if mode == 'sms' else 'Calls'}.json"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(f"AC0001:{AUTH}".encode()).decode()
    form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
    assert form["To"] == "+819012345678" and form["From"] == "+815000"
    if mode == "sms":
        assert form["Body"].startswith("[CRITICAL] KITA-MP-01") and "/notify/ack/" in form["Body"]
    else:
        assert form["Twiml"].startswith("<Response><Say") and "KITA-MP-01" in form["Twiml"]


async def test_apprise_delivers_to_a_real_local_json_endpoint(receiver: HttpReceiver) -> None:
    url = f"json://duty:{APPRISE_PASS}@127.0.0.1:{receiver.port}/push"
    await AppriseNotifier("chat", AppriseChannel(type="apprise")).notify(msg(to=url))
    [req] = receiver.requests
    body = json.loads(req.body)
    assert body["title"].startswith("[CRITICAL] KITA-MP-01") and "/notify/ack/" in body["message"]
    assert (
        req.headers["authorization"] == "Basic " + base64.b64encode(f"duty:{APPRISE_PASS}".encode()).decode()
    )


async def test_http_status_decides_whether_to_retry(receiver: HttpReceiver) -> None:
    n = WebhookNotifier("hook", WebhookChannel(type="webhook", url=receiver.url, secret=HMAC_KEY))
    for status, retryable in ((500, True), (429, True), (404, False), (401, False)):
        receiver.status = status
        with pytest.raises(NotifyError) as ei:
            await n.notify(msg())
        assert ei.value.retryable is retryable, status


async def test_no_channel_leaks_a_secret(receiver: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dead = free_port()  # nothing listens here: connection refused
    receiver.status = 500
    closed = f"http://127.0.0.1:{dead}"

    def hook(base: str) -> WebhookNotifier:
        return WebhookNotifier("h", WebhookChannel(type="webhook", url=f"{base}/h/{TOKEN}", secret=HMAC_KEY))

    def sms(base: str) -> SmsNotifier:
        cfg = SmsChannel(type="sms", base_url=base, account_sid="AC1", auth_token=AUTH, **{"from": "+81"})
        return SmsNotifier("s", cfg)

    mail = EmailChannel(
        type="email", host="127.0.0.1", port=dead, username="u", password=PASSWORD, **{"from": "a@b"}
    )
    failing = [hook(closed), hook(receiver.url), sms(closed), sms(receiver.url), EmailNotifier("m", mail)]
    errors = []
    for n in failing:
        with pytest.raises(NotifyError) as ei:
            await n.notify(msg())
        errors.append(str(ei.value))
        assert ei.value.__cause__ is None  # the chain is cut: no httpx/aiosmtplib text rides along
        assert ei.value.__context__ is None or ei.value.__suppress_context__
    ap = AppriseNotifier("a", AppriseChannel(type="apprise", timeout_s=5))
    for url in (
        f"json://u:{APPRISE_PASS}@127.0.0.1:{dead}/x",
        f"json://u:{APPRISE_PASS}@127.0.0.1:{receiver.port}/x",
    ):
        with pytest.raises(NotifyError) as ei:
            await ap.notify(msg(to=url))
        errors.append(str(ei.value))
    text = "\n".join(errors) + "\n" + caplog.text
    for s in SECRETS:
        assert s not in text, f"secret {s!r} leaked: {text}"
    assert all(e for e in errors)  # and the errors still say something
