"""On-call notification: every alarm that needs a person reaches an accountable one, who can acknowledge it
from a phone.

The pipeline, after Alertmanager's, with SCADA acknowledgement added (docs/alarms.md §9):

    alarm_event ──(notify_pending, same transaction)──▶ dispatcher: route → escalation (mute while shelved,
    suppressed or out of service) → notify_item per person → group window → notification (outbox)
    ──▶ sender: claim (lease) → channel (retry with backoff, fallback contact) → sent
    ack (link or API) ──▶ journal ──▶ dispatcher: stop the escalation, tell the others who took it

Errors: `NotifyError(retryable)` from a channel (channels.py). Modules: config (oncall.yaml), channels,
tokens (signed ack links), messages (texts), dispatcher (routing, escalation, grouping), outbox (claim and
send), service (the loops, the heartbeat), queries (what the API shows).
"""
