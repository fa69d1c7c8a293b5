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
    # signs sessions and ack links; default refused off loopback
    secret_key: str = "pumpwatch-demo-secret-change-me"
