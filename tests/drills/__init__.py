"""Drills: scenario files, the drill engine, drill marking and reports (issue 18 part 2)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FULL_DEMO = ROOT / "deploy" / "config" / "demo" / "full"
SCENARIOS = ROOT / "deploy" / "config" / "scenarios"
