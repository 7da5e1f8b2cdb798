"""The repository index: each registered model by the version it serves, or would, and its state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelpilot.registry.refs import PRODUCTION, ModelRef
from modelpilot.registry.types import ModelInfo
from modelpilot.serving.pool import ModelPool
from modelpilot.serving.served import ServedModels


@dataclass(frozen=True, slots=True)
class ModelIndexEntry:
    """One row of the repository index."""

    name: str
    version: str
    state: str
    """``READY``, ``UNAVAILABLE`` or ``LOADING``."""
    reason: str = ""


def index_entries(
    infos: Sequence[ModelInfo],
    served: ServedModels,
    pool: ModelPool,
    ready_only: bool = False,
) -> list[ModelIndexEntry]:
    """Each model of ``infos`` at the version its requests go to, and every other version of
    it in ``pool`` (asked for by number or alias); a model not served at the version loading
    it would serve: its reference in ``served``, given or default."""
    current = dict(served.current_versions())
    others: dict[str, list[int]] = {}
    for loaded in pool.loaded():
        others.setdefault(loaded.version.model, []).append(loaded.version.version)
    entries = []
    for info in infos:
        mv = current.get(info.name)
        found = []
        if mv is not None:
            state = "READY" if mv.key in pool else "LOADING"
            found.append(ModelIndexEntry(info.name, str(mv.version), state))
        else:
            reason = (
                "unloaded"
                if served.was_unloaded(info.name)
                # Registered since start-up, serving everything: it loads when asked for.
                else "not loaded: loads on its first request"
                if served.serve_all
                else "not served"
            )
            version = referenced_version(info, served.reference(info.name))
            found.append(ModelIndexEntry(info.name, str(version or ""), "UNAVAILABLE", reason))
        for number in sorted(others.get(info.name, ())):
            if mv is None or number != mv.version:
                found.append(ModelIndexEntry(info.name, str(number), "READY"))
        entries += [e for e in found if not ready_only or e.state == "READY"]
    return entries


def referenced_version(info: ModelInfo, ref: ModelRef) -> int | None:
    """The version ``ref`` means by ``info``, as ``Registry.resolve`` would find it, without
    asking the registry again; None for an alias not set.

    An unloaded model was listed at its latest version: one never served, where ``load``
    brings back the one at its ``production`` alias, the version that went away.
    """
    if ref.version is not None:
        return ref.version
    number = info.aliases.get(ref.alias or PRODUCTION)
    if number is None and ref.alias is None:
        return info.latest_version
    return number
