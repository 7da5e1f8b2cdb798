"""Triton's extensions that its tools need, for both transports: a model's configuration, and
which versions' statistics a call asks for (with the 404 for a model or version not here)."""

from __future__ import annotations

from typing import Any

from modelpilot.errors import NotFound
from modelpilot.monitoring.process import ProcessMonitoring
from modelpilot.protocol.model_config import model_config
from modelpilot.serving.engine import InferenceEngine


async def configuration(engine: InferenceEngine, name: str, version: str | None) -> dict[str, Any]:
    """Triton's model configuration of the version a request for ``name`` would reach."""
    meta = await engine.metadata(name, version)
    return model_config(
        meta.name,
        meta.platform,
        meta.inputs,
        meta.outputs,
        meta.batching.max_batch_size,
        meta.batching.max_latency,
    )


async def statistics(
    engine: InferenceEngine,
    monitoring: ProcessMonitoring | None,
    name: str | None,
    version: str | None,
) -> list[dict[str, Any]]:
    """Triton's ``model_stats``: of every version, of one model's, or of one version."""
    if monitoring is None:
        raise NotFound("statistics are not collected by this app (it was built without metrics)")
    wanted = None
    if name is not None:
        meta = await engine.metadata(name, version)  # NotFound for a model or version not here
        wanted = (meta.name, meta.version if version is not None else None)
    served = [(e.name, e.version) for e in await engine.repository_index(ready_only=True)]
    return [
        stats.to_dict()
        for stats in monitoring.statistics(served)
        if wanted is None or (stats.name == wanted[0] and wanted[1] in (None, stats.version))
    ]
