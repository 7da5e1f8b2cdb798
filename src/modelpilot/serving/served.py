"""Which version a request reaches: the served references, resolved against the registry.

The engine serves a list of references (``iris``, ``iris@production``, ``iris:3``), or every
model in the registry. A request without a version goes to its model's served reference, whose
resolution is kept and looked up again in the background every ``alias_refresh_seconds``,
so that an alias moved in the registry reaches a running server, busy or idle, without a
request ever waiting on the registry. A request with a version (a number, or an alias name)
gets exactly that one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from modelpilot.config import Settings
from modelpilot.errors import (
    ArtifactError,
    BadRequest,
    MissingExtra,
    ModelNotFound,
    ModelPilotError,
    NextCall,
    NotFound,
    RegistryUnavailable,
    quoted,
)
from modelpilot.registry.outage import Outage
from modelpilot.registry.refs import NAME_RULE, ModelRef, is_name, version_number
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.pool import ModelPool
from modelpilot.serving.shared_repository import SharedRepository
from modelpilot.serving.stalled_start import start_on_previous

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class Served:
    """A model the server answers for, and where its default reference points now."""

    ref: ModelRef
    current: ModelVersion | None = None
    refreshing: asyncio.Task[ModelVersion] | None = None


class ServedModels:
    """The models a server answers for, each resolved to the version a request reaches.

    ``models`` lists the references to serve; empty means every model in the registry (each
    at its ``production`` alias, else its latest version), including models registered after
    start-up. A version becomes current only once ``pool`` has loaded it, and stays pinned
    there while it is.
    """

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        models: Sequence[ModelRef],
        pool: ModelPool,
        executor: Executor,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.pool = pool
        self.serve_all = not models
        self._served: dict[str, Served] = {ref.name: Served(ref) for ref in models}
        self._given = {ref.name: ref for ref in models}
        """The references the server was started with: a model unloaded and loaded again
        through the repository API comes back at its own (``iris@staging``), not at the
        default reference."""
        self._unloaded: set[str] = set()
        self._pinned_refs: dict[ModelRef, tuple[ModelVersion, float]] = {}
        self._executor = executor
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._shared = (
            None if settings.worker_dir is None else SharedRepository(settings.worker_dir)
        )
        """Where the workers of ``serve --workers`` keep their load and unload decisions."""
        self._refresh_failures: dict[str, Outage] = {}
        """Each model's background lookups failing (see ``_refreshed``)."""
        self.stalled: dict[str, tuple[ModelVersion, str]] = {}
        """Models whose reference moved to a version that failed to load (with why), so
        that their requests still go to the version before: a stalled rollout. Replaced
        whole on every change, so that other threads read it as it was at one moment."""

    async def start(self) -> None:
        """Resolve and load every served model (every registered one, when serving all)."""
        if self.serve_all:
            infos = await blocking(self._executor, self.registry.list_models)
            for info in infos:
                if info.latest_version is not None:
                    self._served.setdefault(info.name, Served(ModelRef(info.name)))
            if not self._served:
                logger.warning(
                    "the registry at %s has no models yet; register one with "
                    "`modelpilot register NAME FILE`",
                    self.registry.location,
                )
        if self._shared is not None:  # a worker (re)started after a load or an unload
            for model, decision in (await self._decisions()).items():
                if decision == "unloaded" and model in self._served:
                    self._drop(model)
                elif decision == "loaded":
                    self._served.setdefault(model, Served(self.reference(model)))
        for name in list(self._served):
            try:
                await self.current(name, force=True)
            except (ArtifactError, MissingExtra) as exc:  # the version did not load
                await start_on_previous(self, name, exc)
        self._watcher = asyncio.create_task(self._watch(), name="modelpilot-aliases")

    def stop(self) -> None:
        """Start no more background lookups."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self) -> None:
        """Look every served reference up again every ``alias_refresh_seconds``.

        By the clock rather than on requests: a server that looked only when asked answered
        its first request after an alias moved with the version it left (idle, it never
        looked), and every request paid for asking."""
        interval = max(self.settings.alias_refresh_seconds, 0.1)
        while not self._stopping:
            await asyncio.sleep(interval)
            if self._shared is not None:
                try:
                    await self._follow()
                except Exception:  # the lookups below must go on whatever happened here
                    logger.exception("following the other workers' load and unload failed")
            for name, served in list(self._served.items()):
                # One lookup per model at a time: loading a new version may take a while.
                if served.current is None or served.refreshing is not None:
                    continue
                if name not in self._unloaded and not self._stopping:
                    served.refreshing = asyncio.create_task(self._refresh(name, served))
                    served.refreshing.add_done_callback(functools.partial(self._refreshed, name))

    def _refreshed(self, model: str, task: asyncio.Task[ModelVersion]) -> None:
        """Log failed background lookups of ``model`` once a minute while they fail, and once
        when one works again (every 2 s filled the log). A registry that does not answer says
        so itself (``Registry``), not once more for each model here."""
        if task.cancelled():
            return
        exc = task.exception()
        outage = self._refresh_failures.setdefault(model, Outage(logger))
        if exc is None:
            if (ended := outage.over()) is not None:
                logger.info(
                    "looking %s's reference up works again, after %.0f s (%d lookups failed)",
                    model,
                    *ended,
                )
        elif not isinstance(exc, RegistryUnavailable):
            expected = isinstance(exc, ModelPilotError)
            outage.failed(
                exc, "looking %s's reference up failed: %s", model, exc, expected=expected
            )

    @property
    def names(self) -> list[str]:
        return sorted(self._served)

    @property
    def refs(self) -> list[str]:
        """The references served, as given (``iris``, ``iris@staging``, ``iris:2``)."""
        return [str(served.ref) for served in self._served.values()]

    def all_loaded(self) -> bool:
        """Every served model that has a current version has it in memory.

        A model with none yet is one asked for since start-up (a repository load, a first
        request for a model registered since, another worker's load) whose first version is
        loading, or failed to: its own readiness says not ready, but the server serves every
        other model meanwhile, so stays ready. Were it unready, a load would take the server
        out of its load balancer for as long as the load takes (every replica at once, when
        an operator loads a model on all of them), and a load that failed would keep it out
        for good. Start-up itself loads every model before the server is ready."""
        return all(s.current.key in self.pool for s in self._served.values() if s.current)

    def serving(self, model: str) -> ModelVersion | None:
        """The version a request for ``model`` without a version goes to now, without waiting
        for one: None while it has none (its first version loading, or not served)."""
        served = self._served.get(model)
        if served is None or model in self._unloaded:
            return None
        return served.current

    def current_versions(self) -> Iterator[tuple[str, ModelVersion | None]]:
        """Each served model and the version its requests go to (None before it resolved)."""
        for name, served in self._served.items():
            yield name, served.current

    def is_served(self, model: str) -> bool:
        return model in self._served and model not in self._unloaded

    def was_unloaded(self, model: str) -> bool:
        return model in self._unloaded

    def version(self, model: str, version: str | None = None) -> Coroutine[Any, Any, ModelVersion]:
        """The version a request for ``model`` (and ``version``, if given) goes to, to await.

        ``resolve``'s or ``current``'s own coroutine, not one of its own around it: every
        request awaits this, and a coroutine more cost each of them."""
        if version:
            return self.resolve(model, version)
        return self.current(model)  # None or "": the served reference

    async def current(self, model: str, force: bool = False) -> ModelVersion:
        """The version a request without a version goes to.

        Requests never wait on the registry once a model serves: every
        ``alias_refresh_seconds`` a background task looks the alias up again (and loads a new
        target before switching to it) while requests carry on with the current version.
        """
        self._require_served(model)
        served = self._served.get(model)
        if served is None:
            # Serving everything: a model registered after start-up joins on first use.
            mv = await self._refresh(model, Served(ModelRef(model)))
            await self._joined(model)
            return mv
        if served.current is not None and not force:
            return served.current
        return await self._refresh(model, served)

    async def _joined(self, model: str) -> None:
        """The other workers load ``model``, joined on a request here, as a repository load:
        its readiness and index state flipped by worker. A standing decision (an unload)
        stays."""
        if self._shared is None:
            return
        if model not in await self._decisions():
            await blocking(self._executor, self._shared.record, model, "loaded")

    async def resolve(self, model: str, version: str) -> ModelVersion:
        """A version asked for explicitly; numbered versions are immutable, so cached."""
        self._require_served(model)
        try:
            ref = _ref(model, version)
        except BadRequest:
            if model not in self._served:
                # A made-up model is what the client hears of first, whatever the version
                # (and the body): ModelNotFound, if the registry has no such model either.
                await blocking(self._executor, self.registry.resolve_number, ModelRef(model))
            raise
        now = time.monotonic()
        cached = self._pinned_refs.get(ref)
        if cached is not None and (
            ref.version is not None or now - cached[1] < self.settings.alias_refresh_seconds
        ):
            return cached[0]
        mv = await blocking(self._executor, self.registry.resolve, ref)
        if len(self._pinned_refs) > 1024:
            self._pinned_refs.clear()
        self._pinned_refs[ref] = (mv, now)
        return mv

    async def check(self, model: str, version: str | None = None) -> None:
        """Raise the ``NotFound`` error a request for ``model`` (and ``version``) would get,
        loading nothing: for requests turned away before they reach a model."""
        if version:
            await self.resolve(model, version)
            return
        self._require_served(model)
        served = self._served.get(model)
        if served is None or served.current is None:
            ref = served.ref if served is not None else ModelRef(model)
            await blocking(self._executor, self.registry.resolve_number, ref)

    async def load(self, model: str) -> ModelVersion:
        """Serve ``model`` (again), at the reference the server was started with for it, else
        at its default reference, and load it (in every worker)."""
        mv = await self._load(model)
        if self._shared is not None:
            await blocking(self._executor, self._shared.record, model, "loaded")
        return mv

    async def unload(self, model: str) -> None:
        """Stop serving ``model`` and drop every version of it from memory (in every worker)."""
        if model not in self._served:
            raise ModelNotFound(f"model {quoted(model)} is not served, so it cannot be unloaded")
        self._drop(model)
        if self._shared is not None:
            await blocking(self._executor, self._shared.record, model, "unloaded")

    async def _load(self, model: str) -> ModelVersion:
        require_name(model)
        served = self._served.get(model)
        try:
            if served is None:
                # Served only once the registry has found it (``_refresh`` adds it then): a
                # made-up name served while the registry was asked was a request's metric
                # label for good (each request for it at that moment counted as for a
                # served model), and one load for it made the server unready until the 404.
                mv = await self._refresh(model, Served(self.reference(model)), loading=True)
            else:
                mv = await self.current(model, force=True)
            await self.pool.get(mv)
        except NotFound:
            self._served.pop(model, None)
            raise
        return mv

    def reference(self, model: str) -> ModelRef:
        """Where ``model``'s requests go: the reference it was given, else its default one
        (and where a model unloaded comes back)."""
        return self._given.get(model) or ModelRef(model)

    def _drop(self, model: str) -> None:
        del self._served[model]
        self._unloaded.add(model)
        for loaded in self.pool.loaded():
            if loaded.version.model == model:
                self.pool.unload(loaded.version.key)

    async def _decisions(self) -> dict[str, str]:
        assert self._shared is not None
        return dict(await blocking(self._executor, self._shared.decisions))

    async def _follow(self) -> None:
        """Load and unload what another worker was asked to (``serve --workers``)."""
        for model, decision in (await self._decisions()).items():
            if decision == "unloaded" and model in self._served:
                self._drop(model)
                logger.info("%s unloaded, as another worker was asked to", model)
            elif decision == "loaded" and model not in self._served:
                try:
                    await self._load(model)
                except ModelPilotError as exc:
                    logger.error("%s: loading it, as another worker did, failed: %s", model, exc)
                else:
                    logger.info("%s loaded, as another worker was asked to", model)

    def _require_served(self, model: str) -> None:
        if model in self._served:
            return
        if model in self._unloaded:
            raise ModelNotFound(
                f"model {quoted(model)} was unloaded; load it through the repository API"
            ).advising(NextCall("load", model))
        if not self.serve_all:
            raise ModelNotFound(
                f"model {quoted(model)} is not served here; served models: "
                f"{', '.join(self.names) or 'none'}"
            )
        require_name(model)

    def _resolved(self, model: str) -> None:
        """``model`` serves the version its reference points to: no rollout of it stalls."""
        if model in self.stalled:
            self.stalled = {k: v for k, v in self.stalled.items() if k != model}

    def _load_wait(
        self, mv: ModelVersion, previous: ModelVersion | None, waited: bool
    ) -> float | None:
        """Seconds a lookup waits for ``mv`` to load before it keeps serving ``previous``.

        A first version is waited for as long as it takes; a new one for
        ``rollout_stall_seconds``, after which the rollout counts as stalled while the load
        goes on, and later lookups only look whether it has finished.
        """
        if previous is None:
            return None
        if waited and self.pool.is_loading(mv.key):
            return 0.0
        return self.settings.rollout_stall_seconds

    async def _refresh(self, model: str, served: Served, loading: bool = False) -> ModelVersion:
        """Look ``served``'s reference up and switch to the version it points to once loaded;
        ``model`` joins the served models here, once the registry has found it (``loading``:
        asked to load it, so served again even if it was unloaded)."""
        try:
            previous = served.current
            if previous is None:
                mv = await blocking(self._executor, self.registry.resolve, served.ref)
            else:
                # The usual answer, every few seconds: the same version. Asked as a number,
                # and the version read whole only when the number moved.
                number = await blocking(self._executor, self.registry.resolve_number, served.ref)
                if number == previous.version:
                    self._resolved(model)  # (moved back: whatever stalled is over)
                    return previous
                name = served.ref.name
                mv = await blocking(self._executor, self.registry.get_version, name, number)
            if loading:
                self._unloaded.discard(model)
            else:
                # Unloaded while the registry was asked: it stays unloaded.
                self._require_served(model)
            self._served.setdefault(model, served)
            if previous is None or previous.key != mv.key:
                # Load before switching, so that no request waits on a cold version; a version
                # that fails to load, or takes too long, must not take down the one that
                # serves now.
                stalled = self.stalled.get(model)
                waited = stalled is not None and stalled[0].key == mv.key
                try:
                    await self.pool.get(mv, self._load_wait(mv, previous, waited))
                except ModelPilotError as exc:
                    if previous is None:
                        raise
                    # Tried again at the next lookup; said once, not at every try.
                    if not waited:
                        logger.error(
                            "keeping %s: new version %s did not load (trying again every %g s): %s",
                            previous,
                            mv,
                            self.settings.alias_refresh_seconds,
                            exc,
                        )
                        self.stalled = {**self.stalled, model: (mv, str(exc))}
                    return previous
                self._resolved(model)
                self.pool.pin(mv.key)
                if previous is not None:
                    logger.info("%s now serves version %d", model, mv.version)
                    self.pool.unpin(previous.key)
            served.current = mv
            return mv
        finally:
            served.refreshing = None


async def blocking(executor: Executor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` run on ``executor`` (registry lookups block), awaited."""
    call = functools.partial(fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


def require_name(model: str) -> None:
    """ModelNotFound for a name no registry could hold, before asking one (PostgreSQL would
    fail on a NUL in it, rather than find nothing)."""
    if not is_name(model):
        raise ModelNotFound(f"no model is named {quoted(model)}: model names are {NAME_RULE}")


def _ref(model: str, version: str) -> ModelRef:
    number = version_number(version)
    if number is not None:
        return ModelRef(model, version=number)
    return ModelRef.parse(f"{model}@{version}")
