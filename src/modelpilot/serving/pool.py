"""The model pool: loaded versions in memory, loaded once, evicted least-recently-used."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from modelpilot.errors import ArtifactError, ModelNotReady, ModelPilotError, NextCall
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime
from modelpilot.serving.batcher import AdaptiveBatcher

logger = logging.getLogger(__name__)

VersionKey = tuple[str, int]
Loader = Callable[[ModelVersion], Runtime]


@dataclass(slots=True)
class LoadedModel:
    """A version in memory, ready to predict."""

    version: ModelVersion
    runtime: Runtime
    memory_bytes: int
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    batcher: AdaptiveBatcher | None = None
    """Set by the engine on first use; closed with the model."""


class ModelPool:
    """Loads model versions lazily and keeps them, within a memory budget.

    ``loader`` turns a registry record into a runtime (fetch the artifact, check its sha256,
    load it); it runs on ``executor`` because loading is slow and blocking. Concurrent requests
    for a version that is still loading wait for the one load instead of starting their own.
    Pinned versions (the ones a server serves by default) are never evicted; the others are
    evicted least-recently-used once the pool holds more than ``memory_budget_bytes``.
    """

    def __init__(self, loader: Loader, executor: Executor, memory_budget_bytes: int) -> None:
        self._loader = loader
        self._executor = executor
        self._budget = memory_budget_bytes
        self._models: OrderedDict[VersionKey, LoadedModel] = OrderedDict()
        self._loading: dict[VersionKey, asyncio.Task[LoadedModel]] = {}
        self._pinned: set[VersionKey] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._models

    def __len__(self) -> int:
        return len(self._models)

    @property
    def memory_bytes(self) -> int:
        return sum(m.memory_bytes for m in self._models.values())

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    def peek(self, key: VersionKey) -> LoadedModel | None:
        """The loaded version, if it is in memory; never loads."""
        return self._models.get(key)

    async def get(self, version: ModelVersion, timeout: float | None = None) -> LoadedModel:
        """The loaded version, loading it first if needed.

        The load runs as a task of its own, which every caller for the version waits on, so
        that one caller giving up (its client gone, or past ``timeout`` seconds, after which
        it gets ``ModelNotReady``) neither cancels the load for the others nor starts another.
        """
        key = version.key
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
            return model
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._keep(version))
            task.add_done_callback(_retrieved)
            self._loading[key] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except asyncio.TimeoutError:
            raise ModelNotReady(
                f"{version} is still loading after {timeout:g} s; it answers once loaded, "
                "as its ready check will say"
            ).advising(NextCall("ready", version.model, str(version.version))) from None

    def is_loading(self, key: VersionKey) -> bool:
        return key in self._loading

    async def _keep(self, version: ModelVersion) -> LoadedModel:
        try:
            model = await self._load(version)
        finally:
            del self._loading[version.key]
        self._models[version.key] = model
        self._evict()
        return model

    async def _load(self, version: ModelVersion) -> LoadedModel:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            runtime = await loop.run_in_executor(self._executor, self._loader, version)
        except ArtifactError as exc:
            named = _naming_version(version, exc)
            if named is exc:
                raise
            raise named from exc
        except ModelPilotError:
            raise
        except Exception as exc:
            hint = (
                "its load() raised"
                if version.flavor == "python"
                else "check that the artifact was saved by a compatible library version"
            )
            raise ArtifactError(
                f"could not load {version} (flavor {version.flavor}): "
                f"{type(exc).__name__}: {exc}; {hint}"
            ) from exc
        seconds = time.perf_counter() - started
        memory = runtime.memory_bytes or version.artifact_size
        logger.info("loaded %s (%s) in %.3f s", version, version.flavor, seconds)
        return LoadedModel(version, runtime, memory, load_seconds=seconds)

    def pin(self, key: VersionKey) -> None:
        self._pinned.add(key)

    def unpin(self, key: VersionKey) -> None:
        self._pinned.discard(key)
        self._evict()

    def is_pinned(self, key: VersionKey) -> bool:
        return key in self._pinned

    def unload(self, key: VersionKey) -> bool:
        """Drop a version from memory; True if it was loaded."""
        self._pinned.discard(key)
        model = self._models.pop(key, None)
        if model is None:
            return False
        if model.batcher is not None:
            model.batcher.cancel(f"{model.version} was unloaded while this request waited for it")
        model.runtime.close()
        logger.info("unloaded %s", model.version)
        return True

    def clear(self) -> None:
        for key in list(self._models):
            self.unload(key)

    def _evict(self) -> None:
        total = self.memory_bytes
        for key in list(self._models):
            if total <= self._budget:
                return
            if key in self._pinned:
                continue
            total -= self._models[key].memory_bytes
            self.unload(key)


def _retrieved(task: asyncio.Task[LoadedModel]) -> None:
    """Mark a load's failure as seen: its callers may all have given up (asyncio would log it
    as never retrieved), and each caller that waited raised it already."""
    if not task.cancelled():
        task.exception()


def _naming_version(mv: ModelVersion, exc: ArtifactError) -> ArtifactError:
    """``exc``, raised loading ``mv``, as an error that names the version.

    The runtimes name the file that failed to load, and a stored artifact is named by its
    sha256: a server that would not start said "2e9c10d7...(64 digits): Model.load() failed"
    and left the reader to find which model that was. Such a message begins instead with the
    version and the artifact's short hash, and calls the file "the file"; one that names the
    artifact by its short hash (missing, corrupted) gets the version in front of it; one that
    names the version already (the pool's own) stays as it was.
    """
    sha, said = mv.artifact_sha256, exc.message
    if sha in said:
        said = said.removeprefix(f"{sha}: ").replace(sha, "the file")
        return ArtifactError(f"{mv} (artifact {sha[:12]}): {said}")
    if str(mv) in said:
        return exc
    return ArtifactError(f"{mv}: {said}")
