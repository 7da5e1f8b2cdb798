"""Records the registry hands out: models and their immutable versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelpilot.registry.signature import Signature


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable version of a model, as stored."""

    model: str
    version: int
    flavor: str
    artifact_sha256: str
    artifact_name: str
    """The file name the artifact was registered from (its suffix helps runtimes)."""
    artifact_size: int
    signature: Signature
    metadata: dict[str, Any]
    created_at: datetime
    has_reference: bool = False
    aliases: tuple[str, ...] = ()
    """Aliases pointing at this version when it was read."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.model, self.version)

    def __str__(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model: its latest version and its aliases."""

    name: str
    created_at: datetime
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = field(default_factory=dict)
