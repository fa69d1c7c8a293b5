"""Protocol code the collector and the simulators share (Sparkplug B)."""
