"""What can still be read of an alert book that cannot be decoded: its alerts' ids."""

from __future__ import annotations

import json
import re

ALERT = re.compile(r"\{([^{}]*)(?:\}|$)")
"""An alert's fields as ``alert_book_store._alert`` wrote them (no object inside), up to its
closing brace or the end of a cut file."""


def _field(key: str, fields: str) -> str | None:
    """The string value of ``key`` among ``fields`` ("null" for JSON's null), if whole."""
    found = re.search(rf'"{key}":\s*("(?:[^"\\]|\\.)*"|null|-?[0-9][0-9.eE+-]*)', fields)
    if found is None:
        return None
    value = found.group(1)
    if value.startswith('"'):
        try:
            return str(json.loads(value))
        except ValueError:
            return None
    return value


def open_alerts(text: str) -> list[str]:
    """The alerts of a damaged book ``text`` that may still be open at the webhook's
    receiver (not read as resolved), as "ID (RULE, MODEL)", or the bare id where the rest
    was cut off; each once, in the book's order."""
    said: dict[str, str] = {}
    for match in ALERT.finditer(text):
        fields = match.group(1)
        alert_id = _field("id", fields)
        if not alert_id or alert_id in said or _field("resolved_at", fields) not in (None, "null"):
            continue
        rule, model = _field("rule", fields), _field("model", fields)
        about = ", ".join(part for part in (rule, model) if part)
        said[alert_id] = f"{alert_id} ({about})" if about else alert_id
    return list(said.values())
