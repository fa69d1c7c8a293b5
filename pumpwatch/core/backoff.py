"""Backoff: how long to wait before the next try. The one home of the rule (issue 14: it had copies in the
Modbus and MQTT sources, the simulators' MQTT link, the historian writer, the alarm journal, the dead
letters and the notification outbox).

Two shapes, both capped:

- `jittered(attempt, cap_s)`: reconnecting to a device or a broker. Full jitter, `uniform(0, 1.5 ** n)`
  (n = the attempt, at most 10), then at most `cap_s`: after a broker restart or a gateway reboot a whole
  fleet of clients does not come back in the same second.
- `exponential(attempt, first_s, cap_s)`: retrying our own store (the database) or a notification
  channel: `first_s`, twice that, four times …, at most `cap_s`. No jitter: one writer per process, and the
  times are stated to operators (a notification's next attempt).

`Backoff` keeps the count of one retry loop: `failed()` gives the next wait, `reset()` after a success.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "exponential", "jittered"]

JITTER_BASE = 1.5
JITTER_MAX_EXPONENT = 10  # 1.5 ** 10 ≈ 58 s: the ceiling before the cap


def jittered(attempt: int, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds before reconnect `attempt` (1: the first retry): `min(cap_s, uniform(0, 1.5 ** n))`."""
    draw = (rng or random).uniform(0, JITTER_BASE ** min(JITTER_MAX_EXPONENT, max(0, attempt)))
    return min(cap_s, draw)


def exponential(attempt: int, first_s: float, cap_s: float) -> float:
    """Seconds after failure `attempt` (1: the first): `first_s × 2^(attempt - 1)`, at most `cap_s`."""
    return min(first_s * 2.0 ** min(max(0, attempt - 1), 64), cap_s)


class Backoff:
    """The waits of one retry loop: `failed()` counts a failure and returns the wait before the next try;
    `reset()` after a success. `jitter=True` draws `jittered` waits (then `first_s` is not used)."""

    def __init__(
        self, first_s: float, cap_s: float, *, jitter: bool = False, rng: random.Random | None = None
    ) -> None:
        if first_s <= 0 or cap_s <= 0:
            raise ValueError(f"backoff times must be positive (first {first_s} s, cap {cap_s} s)")
        self.first_s = first_s
        self.cap_s = cap_s
        self.jitter = jitter
        self._rng = rng
        self.attempts = 0  # failures since the last success
        self.current_s = 0.0  # the wait `failed()` returned last (0 after a success)

    def failed(self) -> float:
        self.attempts += 1
        if self.jitter:
            self.current_s = jittered(self.attempts, self.cap_s, self._rng)
        else:
            self.current_s = exponential(self.attempts, self.first_s, self.cap_s)
        return self.current_s

    def reset(self) -> None:
        self.attempts = 0
        self.current_s = 0.0
