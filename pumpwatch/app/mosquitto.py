"""A private Mosquitto for `pumpwatch demo` on a fleet with MQTT devices, when no broker is running."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


@contextlib.contextmanager
def private_broker(binary: str, host: str = "127.0.0.1"):
    """Run mosquitto on a free loopback port for the life of the block; yields the port."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="pumpwatch-mosquitto-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} {host}\nallow_anonymous true\npersistence false\nlog_dest none\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 5
            while not reachable(host, port, 0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"mosquitto did not start on {host}:{port}: {err.strip()[:300]}")
                time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
