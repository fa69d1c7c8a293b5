"""The pysparkplug edge node's own virtualenv, built once under var/foreign/ (`make foreign`, or the first
test that needs it): pysparkplug 0.6 pins paho-mqtt < 2, which cannot share pumpwatch's venv (aiomqtt ≥ 2).

`python -m tests.foreign.venv` builds it and prints its python. `ensure()` returns that python, building it
if missing; a failed build (no network, no PyPI) skips the test with the reason, and fails it under CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pysparkplug==0.6.1", "paho-mqtt>=1.6,<2")  # pinned: the test checks this exact foreign node
VENV = REPO / "var" / "foreign" / "pysparkplug-0.6.1"
STAMP = VENV / ".installed"


def python() -> Path:
    return VENV / "bin" / "python"


def build() -> Path:
    """Create the venv and install the packages (idempotent); raises CalledProcessError on failure."""
    if STAMP.exists() and python().exists():
        return python()
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
        check=True,
        timeout=600,
    )
    STAMP.write_text("\n".join(PACKAGES) + "\n")
    return python()


def ensure() -> Path:
    from tests.services import service_missing

    try:
        return build()
    except (OSError, subprocess.SubprocessError) as exc:
        service_missing("pysparkplug's virtualenv", f"`make foreign` builds {VENV} from PyPI ({exc})")
        raise  # not reached: service_missing skips or fails


if __name__ == "__main__":
    sys.stdout.write(f"{build()}\n")
