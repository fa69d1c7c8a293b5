"""The reports' errors: `ReportError` (what was asked cannot be reported: unknown station or period) >
`DefinitionError` (a template file is wrong: file, key, why)."""

from __future__ import annotations


class ReportError(ValueError):
    """What was asked cannot be reported; the message says precisely why (an API answers 4xx with it)."""


class DefinitionError(ReportError):
    """A report definition file is invalid (file, key path, why)."""
