"""Protocol code the collector and the simulators both use (Sparkplug B payloads, topics, sequence rules),
so neither imports the other. Above the kernel, below the parts (docs/architecture.md)."""
