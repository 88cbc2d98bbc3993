"""Redaction of secrets and PII for the clean split.

``redact(text) -> (redacted_text, n_redactions)`` replaces every credential found by the
detect-secrets plugins and every e-mail, phone number, Luhn-valid card number and SSN
(see :mod:`poisondetect.detectors.secrets_pii` for what counts and what is a placeholder)
with ``[REDACTED:<TYPE>]``.  Pure function, no IO.
"""
from __future__ import annotations

import re

from .detectors.secrets_pii import find_sensitive

__all__ = ["redact"]


def _label(kind: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", kind.upper()).strip("_")


def redact(text: str, secrets: bool = True, pii: bool = True) -> tuple[str, int]:
    """Return ``(text with secrets/PII replaced by [REDACTED:TYPE], number replaced)``."""
    hits = find_sensitive(text, secrets=secrets, pii=pii)
    if not hits:
        return text, 0
    parts = []
    pos = 0
    for a, b, kind, _v in hits:
        parts.append(text[pos:a])
        parts.append(f"[REDACTED:{_label(kind)}]")
        pos = b
    parts.append(text[pos:])
    return "".join(parts), len(hits)
