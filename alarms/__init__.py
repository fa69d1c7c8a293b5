"""Alarms: rules as data, evaluated per station on every sample batch; raises and clears are journaled.

This is the foundation's small engine (state, limit and comm-loss rules with on/off delays and deadband);
the full ISA-18.2 lifecycle builds on the same rule file and evaluator.

Exceptions::

    AlarmsError
    └── RuleError      a rule file is invalid (the message names file, line and key)
"""
