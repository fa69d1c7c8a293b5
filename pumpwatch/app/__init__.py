"""The composition root: the System wiring and the command line; nothing imports it."""
