"""The kernel: configuration, clock, storage, the sample type; it imports nothing above it."""
