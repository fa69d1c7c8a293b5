"""Sources read devices and hand `Sample` batches to an `Emit` callable.

A source never raises out of `run()` for a device problem: a dead, slow or garbled device turns into
sample qualities, logged once per change, and polling goes on. Input a source rejects (a message that does
not fit, a garbled or refused Modbus answer) also goes to a `Reject` callable, which counts and keeps it
(`pumpwatch.core.rejections.RejectionLog.record`).
"""

from collections.abc import Callable

from pumpwatch.core.sample import Sample

Emit = Callable[[list[Sample]], None]
# (source: the controller id, topic: where it came from, reason: a short category, detail, raw payload)
Reject = Callable[[str, str, str, str, bytes], None]

__all__ = ["Emit", "Reject"]
