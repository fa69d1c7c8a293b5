"""Process settings from the environment (PUMPWATCH_*) or the command line; files hold the fleet itself."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # signs sessions and ack links; the default is refused off loopback
    secret_key: str = "pumpwatch-demo-secret-change-me"
    session_idle_min: float = 60  # a session ends after this long without a request
    session_max_h: float = 16  # …or this long after login (operator actions extend it, see api.auth.config)
    login_max_failures: int = 5  # failed logins of one name within login_lock_min lock it that long
    login_lock_min: float = 15

    def auth_config(self):
        from api.auth.config import AuthConfig

        return AuthConfig(
            secret_key=self.secret_key,
            idle_timeout_s=self.session_idle_min * 60,
            max_age_s=self.session_max_h * 3600,
            max_failures=self.login_max_failures,
            lock_s=self.login_lock_min * 60,
        )

    spool_dir: Path | None = Path("var/spool")  # store-and-forward while the database is away
    spool_capacity_mb: int = 4096  # ≈ 30 h of the reference load (200 stations × 20 points at 1 Hz)
    shard: str | None = None  # "I/N" or "ordinal/N": poll only this shard's stations
    heartbeat_interval_s: float = 5.0  # collector shards; a shard silent for 3 intervals is reported dead
    probe_port: int | None = None  # /healthz, /readyz, /metrics of a collector that serves no API

    # --- the API on the web (api.webconfig) ---
    # reverse proxies whose X-Forwarded-For/-Proto and Forwarded headers are believed ("127.0.0.1,
    # 10.0.0.0/8"); none by default: every client is who its TCP connection says
    trusted_proxies: str = ""
    api_origins: str = ""  # public origins besides the one the API is reached by (a proxy rewriting Host)
    api_docs: bool = True  # /docs, Swagger UI from local files
    metrics_token: str | None = None  # /metrics on the API port needs it as a Bearer token

    def web_config(self):
        """The API's web settings; ValueError with the reason if they do not hold together."""
        from api.webconfig import WebConfig, parse_origins, parse_proxies

        proxies = parse_proxies(self.trusted_proxies)
        if self.api_behind_tls_proxy and not proxies:
            raise ValueError(
                "PUMPWATCH_API_BEHIND_TLS_PROXY=true needs PUMPWATCH_TRUSTED_PROXIES (the proxy's address, "
                "e.g. 127.0.0.1): without it the API cannot tell the proxy's https from a forged header, so "
                "cookies would lose the Secure flag and the console's changes be refused as cross-origin"
            )
        return WebConfig(
            trusted_proxies=proxies,
            origins=parse_origins(self.api_origins),
            docs=self.api_docs,
            metrics_token=self.metrics_token or None,
        )
