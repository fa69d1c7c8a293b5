"""Session and login-throttling policy (from `pumpwatch.settings.Settings`; defaults for tests)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SECRET = "pumpwatch-demo-secret-change-me"


@dataclass(frozen=True)
class AuthConfig:
    secret_key: str = DEFAULT_SECRET  # HMAC key of stored session tokens (and issue 5's ack links)
    # A session ends after `idle_timeout_s` without a request (sliding), or `max_age_s` after login.
    # An operator action (any successful non-GET) pushes the end to at least `action_grace_s` ahead, even
    # past `max_age_s` (up to `max_age_s + action_grace_cap_s`): a session never ends in the middle of
    # handling an alarm. The console's live stream counts as activity for the idle timeout.
    idle_timeout_s: float = 3600.0
    max_age_s: float = 16 * 3600.0  # a shift and its handover
    action_grace_s: float = 1800.0
    action_grace_cap_s: float = 4 * 3600.0
    touch_every_s: float = 30.0  # write last_seen_at at most this often (the idle timeout's resolution)
    # Lockout per username: `max_failures` failed logins within `lock_s` lock it for `lock_s` (423).
    max_failures: int = 5
    lock_s: float = 900.0
    # Backoff per source address: `ip_max_failures` within `ip_window_s` → 429 with Retry-After.
    ip_max_failures: int = 20
    ip_window_s: float = 600.0
    cookie_name: str = "pumpwatch_session"
