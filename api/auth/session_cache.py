"""Sessions remembered by this API process, for the one case the database cannot answer.

Sessions live in the database and every request is checked there. When the database is unreachable (the
historian spools meanwhile), an operator who was signed in a moment ago must still see the live view
this process serves from the collector's memory: that is when stations fail. So each successful check is
remembered here, and while the database is down a session checked within `trust_s` is accepted until its
own end. Nothing else is: a new login, an unknown token, one not seen for `trust_s` get 503. A revocation
made while the database is down takes effect when it is back; logout here forgets at once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from pumpwatch.api.auth.users import User


@dataclass(frozen=True)
class _Seen:
    user: User
    checked_at: datetime


class SessionCache:
    def __init__(self, trust_s: float = 900.0, max_entries: int = 10_000) -> None:
        self.trust_s = trust_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self.served = 0  # requests let in from memory while the database was down

    def remember(self, key: str, user: User, now: datetime) -> None:
        self._seen[key] = _Seen(user, now)
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def recall(self, key: str, now: datetime) -> User | None:
        seen = self._seen.get(key)
        if seen is None:
            return None
        ends = seen.user.expires_at
        if (now - seen.checked_at).total_seconds() > self.trust_s or (ends is not None and now >= ends):
            return None
        self.served += 1
        return seen.user

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    def forget_session(self, session_id: int) -> None:
        for key in [k for k, s in self._seen.items() if s.user.session_id == session_id]:
            del self._seen[key]

    def forget_user(self, username: str) -> None:
        """A grant changed: the next request reads the user's grants from the database again."""
        name = username.lower()
        for key in [k for k, s in self._seen.items() if s.user.username.lower() == name]:
            del self._seen[key]
