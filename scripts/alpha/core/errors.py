"""Errors shared across stages."""


class RowError(ValueError):
    """One input row that cannot be read: ``reason`` (a quarantine reason, docs/quarantine.md) and a detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail
