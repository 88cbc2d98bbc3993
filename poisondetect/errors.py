"""The project's own error types.  Every bad-input path raises :class:`InputError`,
which the CLI turns into a one-line message and exit code 2 (never a traceback)."""
from __future__ import annotations


class PoisonDetectError(Exception):
    """Base class of every error poisondetect raises on purpose."""


class InputError(PoisonDetectError):
    """Bad input: names the file, the line or record, and the problem."""

    def __init__(self, problem: str, path: str | None = None, line: int | None = None,
                 record: int | None = None) -> None:
        self.problem = problem
        self.path = path
        self.line = line
        self.record = record
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = []
        if self.path:
            where.append(str(self.path))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            where.append(f"record {self.record}")
        prefix = ", ".join(where)
        msg = " ".join(str(self.problem).split())  # one line, always
        return f"{prefix}: {msg}" if prefix else msg


class ConfigError(PoisonDetectError):
    """Bad option or parameter (unknown detector, impossible value...)."""
