"""What an API process accepts from memory while its database is unreachable: only sessions it checked
within `trust_s`, until their own end; never one logged out or refused since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pumpwatch.api.auth.session_cache import SessionCache
from pumpwatch.api.auth.users import User

T0 = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def user(session_id: int, ends: datetime) -> User:
    return User(id=1, username="sato", display_name=None, locale="ja", session_id=session_id, expires_at=ends)


def test_only_recently_checked_live_sessions_are_recalled() -> None:
    cache = SessionCache(trust_s=900)
    cache.remember("a", user(1, T0 + timedelta(hours=1)), T0)
    cache.remember("b", user(2, T0 + timedelta(minutes=5)), T0)
    assert cache.recall("a", T0 + timedelta(minutes=10)).session_id == 1
    assert cache.recall("b", T0 + timedelta(minutes=10)) is None  # its own end came first
    assert cache.recall("a", T0 + timedelta(minutes=16)) is None  # not checked for longer than trust_s
    assert cache.recall("never-seen", T0) is None
    cache.remember("a", user(1, T0 + timedelta(hours=1)), T0 + timedelta(minutes=20))  # checked again
    assert cache.recall("a", T0 + timedelta(minutes=30)) is not None
    cache.forget_session(1)  # logout
    assert cache.recall("a", T0 + timedelta(minutes=30)) is None
    assert cache.served == 2


def test_the_cache_is_bounded() -> None:
    cache = SessionCache(max_entries=3)
    for i in range(5):
        cache.remember(f"k{i}", user(i, T0 + timedelta(hours=1)), T0)
    assert [cache.recall(f"k{i}", T0) is not None for i in range(5)] == [False, False, True, True, True]
