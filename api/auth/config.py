"""Session, throttling and second-factor policy (`auth_config(Settings())`; the defaults are for tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pumpwatch.api.auth.roles import rank
from pumpwatch.core.settings import DEFAULT_SECRET, Settings

__all__ = ["DEFAULT_SECRET", "AuthConfig", "auth_config"]


@dataclass(frozen=True)
class AuthConfig:
    secret_key: str = DEFAULT_SECRET  # HMAC key of stored session tokens, device cookies (and ack links)
    # A session ends after `idle_timeout_s` without a request (sliding), or `max_age_s` after login.
    # An operator action (any successful non-GET) pushes the end to at least `action_grace_s` ahead, even
    # past `max_age_s` (up to `max_age_s + action_grace_cap_s`): a session never ends in the middle of
    # handling an alarm. The console's live stream counts as activity for the idle timeout.
    idle_timeout_s: float = 3600.0
    max_age_s: float = 16 * 3600.0  # a shift and its handover
    action_grace_s: float = 1800.0
    action_grace_cap_s: float = 4 * 3600.0
    touch_every_s: float = 30.0  # write last_seen_at at most this often (the idle timeout's resolution)
    # Backoff per account (api.auth.throttle): after `max_failures` failures within `window_s`, each
    # further one waits `backoff_base_s × 2^(n - max_failures)`, at most `lock_s` (423 meanwhile). Failures
    # from a trusted device (a browser that signed in as this user before) count for that device alone,
    # so an attacker elsewhere cannot lock the operator out of the control-room console.
    max_failures: int = 5
    backoff_base_s: float = 30.0
    lock_s: float = 900.0  # the cap of one backoff step
    window_s: float = 86400.0  # failures older than this are forgotten
    # Per client address: `ip_max_failures` within `ip_window_s` → 429 with Retry-After.
    ip_max_failures: int = 20
    ip_window_s: float = 600.0
    cookie_name: str = "pumpwatch_session"
    device_cookie_name: str = "pumpwatch_device"
    device_cookie_days: float = 180.0
    # Second factor: roles that need it in every tenant, tenants that ask it of every role
    mfa_roles: frozenset[str] = frozenset({"engineer", "admin"})
    mfa_tenants: frozenset[str] = field(default_factory=frozenset)
    mfa_step_s: float = 300.0  # a session waiting for its second factor ends after this
    demo: bool = False  # `pumpwatch demo`: demo users sign in without a second factor (said on screen)

    def needs_mfa(self, tenant: str, role: str) -> bool:
        return role in self.mfa_roles or tenant in self.mfa_tenants


def auth_config(settings: Settings, *, demo: bool = False) -> AuthConfig:
    """The policy of `settings` (PUMPWATCH_SESSION_*, PUMPWATCH_LOGIN_*, PUMPWATCH_MFA_ROLES); ValueError
    for an unknown role name in PUMPWATCH_MFA_ROLES (a configuration error, said at start)."""
    roles = frozenset(r.strip() for r in settings.mfa_roles.split(",") if r.strip())
    for r in roles:
        rank(r)
    return AuthConfig(
        secret_key=settings.secret_key,
        idle_timeout_s=settings.session_idle_min * 60,
        max_age_s=settings.session_max_h * 3600,
        max_failures=settings.login_max_failures,
        lock_s=settings.login_lock_min * 60,
        mfa_roles=roles,
        demo=demo,
    )
