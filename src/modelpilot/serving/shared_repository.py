"""What the repository API decided, shared by the worker processes of one server.

``serve --workers N`` runs N processes behind one port, and a request to
``/v2/repository/models/{name}/unload`` (or ``load``) reaches only one of them. So that every
worker serves the same models, the worker that is asked records the decision in a small JSON
file in the workers' shared directory (``Settings.worker_dir``), and every worker reads it
again each time it looks its served references up (``alias_refresh_seconds``) and does the same.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Literal

Decision = Literal["loaded", "unloaded"]


class SharedRepository:
    """The load and unload decisions of one server's workers, by model."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / "repository.json"
        self._lock = directory / "repository.lock"

    def record(self, model: str, decision: Decision) -> None:
        """Keep ``decision`` for ``model`` (the last one for a model stands)."""
        with self._lock.open("a") as lock:
            # Read, change, replace, one worker at a time: two workers asked at once must not
            # write over each other's decision.
            fcntl.flock(lock, fcntl.LOCK_EX)
            decisions = self.decisions()
            decisions[model] = decision
            temporary = self._path.with_name(f"{self._path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(decisions, sort_keys=True))
            os.replace(temporary, self._path)

    def decisions(self) -> dict[str, Decision]:
        """Every model's last decision (none before the first)."""
        try:
            decisions: dict[str, Decision] = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        return decisions
