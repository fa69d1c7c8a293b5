"""A simulated level transmitter: `LevelGauge`, healthy, biased, frozen or dead (reads 0, loop fault flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["LevelGauge"]


@dataclass
class LevelGauge:
    """A level transmitter. Modes: None (healthy), "bias" (reads + bias_m), "freeze" (stuck at the value it
    had), "dead" (loop under range: reads 0 and raises its fault flag, which the panel sees)."""

    mode: str | None = None
    bias_m: float = 0.0
    frozen_m: float = 0.0
    noise_m: float = 0.0
    last_m: float = 0.0

    MODES: ClassVar[tuple[str | None, ...]] = (None, "bias", "freeze", "dead")

    def set_fault(self, mode: str | None, bias_m: float = 0.0) -> None:
        if mode not in self.MODES:
            raise ValueError(f"gauge fault mode must be one of {self.MODES}, not {mode!r}")
        self.mode = mode
        self.bias_m = bias_m
        self.frozen_m = self.last_m

    @property
    def fault_flag(self) -> bool:
        return self.mode == "dead"

    def read(self, true_level_m: float) -> float:
        if self.mode == "dead":
            value = 0.0
        elif self.mode == "freeze":
            value = self.frozen_m
        else:
            value = true_level_m + self.noise_m + (self.bias_m if self.mode == "bias" else 0.0)
        self.last_m = value
        return value
