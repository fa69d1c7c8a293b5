"""A loopback TCP proxy a test can cut: the database behind it becomes unreachable, for real.

`cut()` resets every open connection and refuses new ones (accepted and closed at once) until `restore()`.
The fault proxy (tests/fault_proxy.py) with only its reset and refusal used.
"""

from __future__ import annotations

from tests.fault_proxy import FaultProxy


class TcpProxy(FaultProxy):
    def cut(self) -> None:
        self.refuse = True
        self.reset()  # RST: the client sees the connection die, as when a link or server goes

    def restore(self) -> None:
        self.refuse = False
