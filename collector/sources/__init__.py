"""Sources read devices and hand `Sample` batches to an `Emit` callable.

A source never raises out of `run()` for a device problem: a dead, slow or garbled device turns into
sample qualities, logged once per change, and polling goes on.
"""

from collections.abc import Callable

from collector.model import Sample

Emit = Callable[[list[Sample]], None]

__all__ = ["Emit"]
