"""Process settings from the environment (PUMPWATCH_*) or the command line; files hold the fleet itself.

The safety policy lives here, not in the bind address: outside `pumpwatch demo`, every command that signs or
checks something with `secret_key` (`run` with the API or the notifier, `notify run`) refuses a secret that
is public or guessable, and `run` refuses to serve the API while a demo user is enabled, whatever the host
(a proxy in front of 127.0.0.1 exposes it as surely as 0.0.0.0). `unsafe_problems` says why, and what to set.

The API builds its own policies from these values (`pumpwatch.api.auth.config.auth_config(settings)`,
`pumpwatch.api.webconfig.web_config(settings)`): the kernel knows nothing of the API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "pumpwatch-demo-secret-change-me"  # public: `pumpwatch demo` only
SECRET_MIN_LENGTH = 32
# zxcvbn's estimate of the guesses needed (log10): 28 ≈ 93 bits. `openssl rand -hex 32` scores 64; the
# placeholder "change-me-to-a-long-random-string" 25.
SECRET_MIN_GUESSES_LOG10 = 28.0
HOW_TO_SET = "set PUMPWATCH_SECRET_KEY to a long random string, e.g. the output of `openssl rand -hex 32`"


@cache
def _placeholders() -> tuple[frozenset[str], tuple[str, ...]]:
    doc = yaml.safe_load(
        resources.files("pumpwatch.core").joinpath("placeholder_secrets.yaml").read_text("utf-8")
    )
    return frozenset(doc["exact"]), tuple(doc["fragments"])


def _squash(s: str) -> str:
    return re.sub(r"[\s_\-.]+", "", s).lower()


def secret_problem(secret: str) -> str | None:
    """Why `secret` must not sign sessions and ack links (None: it may)."""
    from zxcvbn import zxcvbn

    exact, fragments = _placeholders()
    if secret == DEFAULT_SECRET:
        return f"PUMPWATCH_SECRET_KEY is the public default: {HOW_TO_SET}"
    if secret in exact or any(f in _squash(secret) for f in fragments):
        return f"PUMPWATCH_SECRET_KEY is a known placeholder, not a secret: {HOW_TO_SET}"
    if len(secret) < SECRET_MIN_LENGTH:
        return f"PUMPWATCH_SECRET_KEY is shorter than {SECRET_MIN_LENGTH} characters: {HOW_TO_SET}"
    # zxcvbn is slow on very long input and a secret's first 100 characters decide this anyway
    if zxcvbn(secret[:100])["guesses_log10"] < SECRET_MIN_GUESSES_LOG10:
        return f"PUMPWATCH_SECRET_KEY is too easy to guess (words, repeats, sequences): {HOW_TO_SET}"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUMPWATCH_", extra="ignore")

    fleet: Path = Path("deploy/config/demo")  # folder with fleet.yaml, or the file itself
    database_url: str = "sqlite:///var/pumpwatch.db"  # or postgresql://u:p@host/db?sslmode=verify-full
    # The API's own connection, as a member of the `pumpwatch_app` role (row-level security holds it to
    # the request's tenants). Unset: the API shares `database_url` (the owner; RLS then rests on the API)
    api_database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_ssl_certfile: Path | None = None  # TLS for the API (uvicorn); required off loopback unless…
    api_ssl_keyfile: Path | None = None
    api_behind_tls_proxy: bool = False  # …a reverse proxy on this host terminates TLS
    log_level: str = "INFO"
    # signs sessions, trusted-device cookies and ack links; the default is for `pumpwatch demo` only
    secret_key: str = DEFAULT_SECRET
    session_idle_min: float = 60  # a session ends after this long without a request
    session_max_h: float = 16  # …or this long after login (operator actions extend it, see api.auth.config)
    login_max_failures: int = 5  # failed logins of one name (from untrusted clients) before backoff starts
    login_lock_min: float = 15  # the longest one backoff step may last
    # roles that must give a second factor (TOTP) at login, in every tenant; a tenant may ask it of every
    # role (tenants.yaml `require_mfa: true`)
    mfa_roles: str = "engineer,admin"

    def secret_problems(self, *, demo: bool = False) -> list[str]:
        """Why this process must not sign anything with `secret_key` (empty: it may)."""
        if demo:
            return []
        problem = secret_problem(self.secret_key)
        return [problem] if problem else []

    def unsafe_problems(self, *, demo: bool = False, demo_users: Sequence[str] = ()) -> list[str]:
        """Everything that refuses to start an API process outside the demo: the secret and demo users."""
        problems = self.secret_problems(demo=demo)
        if demo_users and not demo:
            problems.append(
                f"demo users with the public password are enabled ({', '.join(sorted(demo_users))}): "
                "`pumpwatch user disable NAME` each (or give one a password of its own: `pumpwatch user "
                "passwd NAME`)"
            )
        return problems

    spool_dir: Path | None = Path("var/spool")  # store-and-forward while the database is away
    spool_capacity_mb: int = 4096  # ≈ 30 h of the reference load (200 stations × 20 points at 1 Hz)
    shard: str | None = None  # "I/N" or "ordinal/N": poll only this shard's stations
    heartbeat_interval_s: float = 5.0  # collector shards; a shard silent for 3 intervals is reported dead
    probe_port: int | None = None  # /healthz, /readyz, /metrics of a collector that serves no API
    dead_letter_keep: int = Field(default=1000, ge=1, le=1_000_000)  # dead letters kept per source (newest)

    # --- the API on the web (api.webconfig.web_config) ---
    # reverse proxies whose X-Forwarded-For/-Proto and Forwarded headers are believed ("127.0.0.1,
    # 10.0.0.0/8"); none by default: every client is who its TCP connection says
    trusted_proxies: str = ""
    api_origins: str = ""  # public origins besides the one the API is reached by (a proxy rewriting Host)
    api_docs: bool = True  # /docs, Swagger UI from local files
    metrics_token: str | None = None  # /metrics on the API port needs it as a Bearer token
    # The console's network map: a tile server's URL template (a municipality's own, e.g.
    # https://tiles.city.example/{z}/{x}/{y}.png) and the attribution its licence asks for; unset: a
    # schematic without tiles (the centre may have no internet)
    map_tiles_url: str | None = None
    map_tiles_attribution: str = ""
