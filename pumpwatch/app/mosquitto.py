"""A private Mosquitto broker on a loopback port: the one launcher, used by `pumpwatch demo` (a fleet with
MQTT devices and no broker running) and by the tests (`tests/mqtt_broker.py` adds their fixtures' needs).

`Mosquitto(binary).start()` writes a minimal config to a temporary folder (`listener PORT HOST`, then
`allow_anonymous true` and `persistence false` unless other settings are given), starts the binary with
its log in `broker.log` in that folder and waits until the port accepts connections; a broker that exits
or does not answer within `START_TIMEOUT_S` raises with the log's tail. `stop()` terminates it (kills it
after 5 s); `restart()` is stop + start on the same port; `cleanup()` stops and removes the folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Mosquitto", "find_mosquitto", "free_port", "private_broker", "reachable"]

START_TIMEOUT_S = 5.0
DEFAULT_SETTINGS = "allow_anonymous true\npersistence false\n"
_LOG_SETTINGS = (
    "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
    "connection_messages true\n"
)
_KNOWN_PLACES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_mosquitto() -> str | None:
    """The binary: `$PUMPWATCH_MOSQUITTO` (None if that is not executable), else `mosquitto` on PATH, else
    Debian's and a source build's places."""
    env = os.environ.get("PUMPWATCH_MOSQUITTO")
    if env:
        return env if os.access(env, os.X_OK) else None
    return shutil.which("mosquitto") or next((p for p in _KNOWN_PLACES if os.access(p, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """One mosquitto process on `host:port` (a free port when none is given)."""

    def __init__(
        self, binary: str, port: int | None = None, host: str = "127.0.0.1", settings: str | None = None
    ) -> None:
        self.binary = binary
        self.host = host
        self.settings = settings if settings is not None else DEFAULT_SETTINGS  # after the listener line
        self.port = port if port is not None else free_port(host)
        self.folder = Path(tempfile.mkdtemp(prefix="pumpwatch-mosquitto-"))
        self.conf = self.folder / "mosquitto.conf"
        self.log_path = self.folder / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        if self.running:
            return
        self.conf.write_text(f"listener {self.port} {self.host}\n" + self.settings + _LOG_SETTINGS)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._proc = None
                raise RuntimeError(
                    f"mosquitto exited with {rc} on {self.host}:{self.port}:\n{self.log_tail()}"
                )
            if reachable(self.host, self.port, 0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"mosquitto did not accept connections on {self.host}:{self.port} within {START_TIMEOUT_S} s:\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def private_broker(binary: str, host: str = "127.0.0.1") -> Iterator[int]:
    """Run mosquitto on a free loopback port for the life of the block; yields the port."""
    broker = Mosquitto(binary, host=host)
    try:
        broker.start()
        yield broker.port
    finally:
        broker.cleanup()
