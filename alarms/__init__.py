"""Alarms: rules as data, evaluated per station on every sample batch; raises and clears are journaled.

This is the foundation's small engine (state, limit and comm-loss rules with on/off delays and deadband);
the full ISA-18.2 lifecycle builds on the same rule file and evaluator.

Errors: a rule, safety or on-call file that does not validate raises the kernel's
`pumpwatch.core.config.ConfigError` with every problem, each naming file, line and key (`rules.py`,
`safety.py`, `notify/config.py`; `coverage.CoverageError` is one), so `pumpwatch check-config` and the
start-up report them the same way as the fleet's. At run time: `store.AlarmActionError` (an operator's
action that does not apply: the API answers with its `status` and message), `notify.channels.NotifyError`
(a channel failed; `retryable` says whether the outbox tries again), `notify.tokens.TokenError` (a
signed acknowledgement link that is wrong, expired or spent).
"""
