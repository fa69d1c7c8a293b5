"""Process settings from the environment (PUMPWATCH_*) or the command line; files hold the fleet itself."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUMPWATCH_", extra="ignore")

    fleet: Path = Path("deploy/config/demo")  # folder with fleet.yaml, or the file itself
    database_url: str = "sqlite:///var/pumpwatch.db"  # or postgresql://user:pass@host/db
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
    spool_dir: Path | None = Path("var/spool")  # store-and-forward while the database is away
    spool_capacity_mb: int = 4096  # ≈ 30 h of the reference load (200 stations × 20 points at 1 Hz)
    shard: str | None = None  # "I/N" or "ordinal/N": poll only this shard's stations
    heartbeat_interval_s: float = 5.0  # collector shards; a shard silent for 3 intervals is reported dead
    probe_port: int | None = None  # /healthz, /readyz, /metrics of a collector that serves no API
