"""The inference engine: the one ``infer()`` path that REST, gRPC and the CLI all call."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpilot.config import Settings
from modelpilot.errors import ModelPilotError, NotFound
from modelpilot.protocol.types import InferenceRequest, InferenceResponse
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.signature import TensorSpec
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Runtime, batch_rows
from modelpilot.runtimes.flavors import load_runtime
from modelpilot.serving.acceleration import accelerate
from modelpilot.serving.batcher import (
    AdaptiveBatcher,
    BatchingPolicy,
    OnBatch,
    OnQueued,
    Predicted,
)
from modelpilot.serving.cache_entries import cache_key
from modelpilot.serving.calls import (
    ModelFailures,
    batching_policy,
    checked_predict,
    expire,
    request_timeout,
)
from modelpilot.serving.inputs import assemble_batch, requested_outputs, to_tensors
from modelpilot.serving.observers import EVENTS, InferenceObserver, handlers
from modelpilot.serving.pool import LoadedModel, ModelPool
from modelpilot.serving.repository_index import ModelIndexEntry, index_entries
from modelpilot.serving.result_cache import LOOKUP_SHARE, create_result_cache
from modelpilot.serving.served import ServedModels, blocking

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """What the protocol's model metadata call reports."""

    name: str
    version: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feature_names: tuple[str, ...] | None
    batching: BatchingPolicy
    """How the version's requests are batched (the largest batch, the longest wait)."""


class InferenceEngine:
    """Serves models from a registry.

    ``models`` lists the references to serve; empty means every model in the registry (each at
    its ``production`` alias, else its latest version), including models registered after
    start-up. A request without a version goes to the served reference, re-resolved at most
    every ``alias_refresh_seconds`` so that an alias move reaches a running server; a request
    with a version (a number, or an alias name) gets exactly that one, loaded on demand.
    """

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        models: Sequence[ModelRef] = (),
        observers: Sequence[InferenceObserver] = (),
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.inflight: dict[str, int] = {}
        """Requests being answered right now, by model."""
        self._executor = ThreadPoolExecutor(
            max_workers=settings.inference_threads, thread_name_prefix="modelpilot-infer"
        )
        self._load_executor = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="modelpilot-load"
        )
        self.pool = ModelPool(self._load, self._load_executor, settings.model_memory_budget_bytes)
        self.served = ServedModels(registry, settings, models, self.pool, self._load_executor)
        """The models answered for, and the version each request reaches."""
        self._observers: tuple[InferenceObserver, ...] = ()
        self._failures: dict[tuple[str, int], ModelFailures] = {}
        """Each version's failures in the log, by version (flushed on ``stop``)."""
        self._handlers: dict[str, tuple[Any, ...]] = {event: () for event in EVENTS}
        for observer in observers:  # once the pool is there: add_observer looks in it
            self.add_observer(observer)
        self.result_cache = create_result_cache(settings)
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = 0
        self._started = False
        self._draining = False
        self._closed = False
        self._stopping = False
        self.started_at = time.time()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve and load every served model; the server is ready once this returns."""
        await self.served.start()
        self._started = True

    def mark_stopping(self) -> None:
        """Answer not-ready from now on (live stays true) so that traffic drains away."""
        self._draining = True

    def mark_closed(self) -> None:
        """The server's ports are closed: a request cancelled from now on is cut off by the
        shutdown (counted 503), not left by its client (499), as during the drain before."""
        self._closed = True

    async def stop(self) -> None:
        self._stopping = True
        self.served.stop()
        self.pool.clear()
        for failures in self._failures.values():
            failures.flush()
        if self.result_cache is not None:
            await self.result_cache.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._load_executor.shutdown(wait=False, cancel_futures=True)

    @property
    def live(self) -> bool:
        return not self._stopping

    @property
    def ready(self) -> bool:
        """Started, not stopping, and every served model's current version in memory (a
        model loading since start-up, through the repository API, counts only once loaded:
        ``ServedModels.all_loaded``)."""
        if not self._started or self._draining or self._stopping:
            return False
        return self.served.all_loaded()

    @property
    def served_models(self) -> list[str]:
        return self.served.names

    # -- the hot path ----------------------------------------------------------------------

    async def infer(
        self,
        model: str,
        request: InferenceRequest,
        version: str | None = None,
        transport: str = "python",
    ) -> InferenceResponse:
        """Run one inference request end to end, or raise a ``ModelPilotError``.

        ``transport`` (``rest``, ``grpc``, ``cli``...) only labels what observers see.
        """
        # Counted under the model's label, not the name asked for: a request for a made-up
        # name must leave no gauge series behind it, even while it waits on the registry.
        label = self._label(model)
        inflight = self.inflight
        inflight[label] = inflight.get(label, 0) + 1
        if not self._handlers["request_finished"]:
            try:
                return await self._infer(model, request, version)
            finally:
                _leave(inflight, label)
        started = time.perf_counter()
        status, error, answered, named = "ok", None, "unknown", label
        try:
            chosen = await self.served.version(model, version)
            # From here on, a failure is the chosen version's (a canary's errors are its own),
            # of a model that exists (one registered after start-up may not be served yet):
            # also its load's, so that a version asked for by number that does not load has
            # its failures counted, and alerted on, as its own, not as nobody's.
            answered, named = str(chosen.version), chosen.model
            loaded = await self.pool.get(chosen, self.settings.request_timeout_seconds)
            return await self._answer(loaded, request)
        except ModelPilotError as exc:
            status, error = str(exc.http_status), type(exc).__name__
            raise
        except asyncio.CancelledError:
            if self._closed:
                # Shutting down: cut off at the end of the grace, and answered 503 for it
                # (a client that hangs up in the grace counts the same).
                status, error = "503", "Unavailable"
            else:
                # The caller went away (a closed connection, a gRPC deadline): not a server
                # error. 499 as in nginx, "client closed request".
                status = "499"
            raise
        except BaseException as exc:
            status, error = "500", type(exc).__name__
            raise
        finally:
            _leave(inflight, label)
            self._notify(
                "request_finished",
                named,
                answered,
                transport,
                status,
                time.perf_counter() - started,
                error,
            )

    async def refused(
        self,
        model: str | None,
        version: str | None,
        transport: str,
        error: ModelPilotError,
        seconds: float,
    ) -> ModelPilotError:
        """A request for ``model`` that a transport turned away before it reached ``infer``
        (its body could not be decoded): observers count it as failed, and the error to
        answer with is returned. That is ``error``, unless the model (or the version) does not
        exist: then the request gets the ``NotFound`` that a good body would have got, as a
        client that mistyped a name should hear first. ``model`` is None when the request
        names its model in the body that could not be read (gRPC): it is counted under
        ``UNKNOWN_MODEL``."""
        if model is not None:
            try:
                await self.check(model, version)
            except NotFound as missing:
                error = missing
            except ModelPilotError:
                # The registry did not answer, or the version of a model that exists is not
                # even valid (an alias "-"): the body's own error stands.
                pass
        status, kind = str(error.http_status), type(error).__name__
        label = UNKNOWN_MODEL if model is None else self._label(model)
        self._notify("request_finished", label, "unknown", transport, status, seconds, kind)
        return error

    def failed(self, model: str, transport: str, error: BaseException, seconds: float) -> None:
        """A request for ``model`` that a transport failed on before it reached ``infer``,
        with an error nobody expected (a bug; the transport logs it and answers 500):
        observers count it as a 500, as ``infer`` counts one of its own, so that the error
        rate and its alert see it."""
        kind = type(error).__name__
        label = self._label(model)
        self._notify("request_finished", label, "unknown", transport, "500", seconds, kind)

    def _label(self, model: str) -> str:
        """``model`` as observers are told of it before a version was chosen: names of
        models not served here (made up in requests, as like as not) share one label,
        whatever the error (a 404, or a version or alias that is not even valid), so that
        metrics stay bounded."""
        served = self.served
        return model if served.is_served(model) or served.was_unloaded(model) else UNKNOWN_MODEL

    @property
    def observers(self) -> tuple[InferenceObserver, ...]:
        return self._observers

    def add_observer(self, observer: InferenceObserver) -> None:
        """Tell ``observer`` the events it overrides from now on (also of models that have
        answered already)."""
        self._observers = (*self._observers, observer)
        self._handlers = {event: handlers(self._observers, event) for event in EVENTS}
        for loaded in self.pool.loaded():
            if loaded.batcher is not None:
                loaded.batcher.listen(*self._hooks(loaded.version))

    def _notify(self, event: str, *args: Any) -> None:
        for handler in self._handlers[event]:
            try:
                handler(*args)
            except Exception:
                logger.exception("observer %r failed on %s", handler, event)

    async def _infer(
        self, model: str, request: InferenceRequest, version: str | None
    ) -> InferenceResponse:
        return await self._answer(await self.get_model(model, version), request)

    async def _answer(self, loaded: LoadedModel, request: InferenceRequest) -> InferenceResponse:
        signature = loaded.version.signature
        batch = assemble_batch(signature, request.inputs)
        names = requested_outputs(signature, request.outputs)
        computed = names
        if self._handlers["predicted"] and request.outputs:
            # Whoever watches the predictions sees "the prediction" of every request, also
            # of one that asked for other outputs alone (probabilities, say), and a
            # classifier's probabilities, also of one that asked for its label alone: AUC is
            # measured on every labelled row's, and one such request among a thousand had
            # left the whole window without it.
            watched = (signature.main_output, signature.probabilities)
            missing = [s.name for s in watched if s is not None and s.name not in names]
            if missing:
                computed = [*names, *dict.fromkeys(missing)]
        request_id = request.id or self._next_id()
        timeout = self.settings.request_timeout_seconds, False
        if request.parameters:
            timeout = request_timeout(request.parameters, timeout[0])
        cache = self.result_cache
        if cache is None:
            arrays = await self._run(loaded, batch, computed, request_id, timeout)
            return self._response(loaded, request_id, arrays, names)
        key = cache_key(loaded.version, batch, computed)
        started = time.perf_counter()
        # The request's deadline covers the lookup too: a Redis that does not answer held a
        # 50 ms request for its 1 s socket timeout, and the model then got 50 ms of its own.
        cached = await cache.get(key, timeout[0] * LOOKUP_SHARE)
        looked_up = time.perf_counter() - started
        version = loaded.version
        if cached is not None:
            self._notify("cache_looked_up", version.model, str(version.version), True, looked_up)
            if self._handlers["predicted"]:
                rows = [batch_rows(batch)]
                self._notify("predicted", version, [request_id], rows, batch, cached)
            return self._response(loaded, request_id, cached, names)
        arrays = await self._run(loaded, batch, computed, request_id, timeout, looked_up)
        await cache.save(key, arrays)  # in the background: the answer does not wait on it
        self._notify("cache_looked_up", version.model, str(version.version), False, looked_up)
        return self._response(loaded, request_id, arrays, names)

    def _response(
        self,
        loaded: LoadedModel,
        request_id: str,
        arrays: dict[str, np.ndarray],
        names: list[str],
    ) -> InferenceResponse:
        return InferenceResponse(
            model_name=loaded.version.model,
            model_version=str(loaded.version.version),
            id=request_id,
            outputs=to_tensors(arrays, names),
        )

    async def _run(
        self,
        loaded: LoadedModel,
        batch: dict[str, np.ndarray],
        names: list[str],
        request_id: str,
        timeout: tuple[float, bool],
        spent: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """``timeout``: the seconds the request may take, and whether they are its own;
        ``spent``: how many of them went before (on the result cache)."""
        batcher = loaded.batcher or self._batcher_for(loaded)
        queued = batcher.enqueue(batch, names, request_id)
        # A timer on the future rather than asyncio.wait_for, which costs a task per request.
        timer = asyncio.get_running_loop().call_later(
            timeout[0] - spent, expire, queued.future, loaded.version, *timeout
        )
        try:
            return await queued.future
        except BaseException:
            batcher.left(queued)  # (timed out or cancelled in the queue: its wait is observed)
            raise
        finally:
            timer.cancel()

    def _next_id(self) -> str:
        # A random per-process prefix and a counter: unique across workers and restarts, and
        # far cheaper than reading the OS's random source for every request.
        self._id_counter += 1
        return f"{self._id_prefix}{self._id_counter:08x}"

    def _batcher_for(self, loaded: LoadedModel) -> AdaptiveBatcher:
        runtime, failures = loaded.runtime, ModelFailures(loaded.version)
        self._failures[loaded.version.key] = failures

        def predict(batch: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
            return checked_predict(runtime, batch, names, failures)

        name = loaded.version.model
        loaded.batcher = AdaptiveBatcher(
            predict,
            self._executor,
            batching_policy(self.settings, loaded.version),
            *self._hooks(loaded.version),
            lambda: self.inflight.get(name, 0),
        )
        return loaded.batcher

    def _hooks(
        self, version: ModelVersion
    ) -> tuple[OnBatch | None, Predicted | None, OnQueued | None]:
        """Whom ``version``'s batcher tells of each model call and queue wait: None for an
        event no observer listens to, so that a call pays for none."""
        name, number = version.model, str(version.version)

        def on_batch(rows: int, requests: int, seconds: float) -> None:
            self._notify("batch_finished", name, number, rows, requests, seconds)

        def on_queued(waits: list[float]) -> None:
            self._notify("queue_left", name, number, waits)

        def on_predicted(
            ids: list[str],
            rows: list[int],
            inputs: dict[str, np.ndarray],
            outputs: dict[str, np.ndarray],
        ) -> None:
            # _notify's loop, written out: this runs for every model call.
            for handler in self._handlers["predicted"]:
                try:
                    handler(version, ids, rows, inputs, outputs)
                except Exception:
                    logger.exception("observer %r failed on predicted", handler)

        return (
            on_batch if self._handlers["batch_finished"] else None,
            on_predicted if self._handlers["predicted"] else None,
            on_queued if self._handlers["queue_left"] else None,
        )

    async def get_model(self, model: str, version: str | None = None) -> LoadedModel:
        """The loaded version a request for ``model`` (and ``version``) goes to."""
        current = await self.served.version(model, version)
        return await self.pool.get(current, self.settings.request_timeout_seconds)

    # -- metadata and repository -------------------------------------------------------------

    async def metadata(self, model: str, version: str | None = None) -> ModelMetadata:
        mv = await self.served.version(model, version)
        versions = await blocking(self._load_executor, self.registry.list_versions, model)
        return ModelMetadata(
            name=mv.model,
            version=str(mv.version),
            versions=tuple(str(v.version) for v in versions),
            platform=mv.flavor,
            inputs=mv.signature.served_inputs,
            outputs=mv.signature.outputs,
            feature_names=mv.signature.feature_names,
            batching=batching_policy(self.settings, mv),
        )

    async def check(self, model: str, version: str | None = None) -> None:
        """Raise the ``NotFound`` error that a request for ``model`` (and ``version``) would
        get, if any; loads nothing."""
        await self.served.check(model, version)

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        """True when the version a request would reach is loaded; never loads, and never
        waits for a load: a probe must answer at once, and a model whose first version is
        still loading is not ready (awaiting ``served.version`` would wait for that load)."""
        if version in (None, ""):
            current = self.served.serving(model)
            return current is not None and current.key in self.pool
        try:
            mv = await self.served.version(model, version)
        except NotFound:
            return False
        return mv.key in self.pool

    async def repository_index(self, ready_only: bool = False) -> list[ModelIndexEntry]:
        """Each model at the version its requests go to, and every other version of it in
        memory (asked for by number or alias), by name and version; one not served at the
        version ``load_model`` would serve."""
        infos = await blocking(self._load_executor, self.registry.list_models)
        return index_entries(infos, self.served, self.pool, ready_only)

    async def load_model(self, model: str) -> ModelVersion:
        """Serve ``model`` (again) at the reference it was given, else its default one, and
        load it."""
        return await self.served.load(model)

    async def unload_model(self, model: str) -> None:
        """Stop serving ``model`` and drop every version of it from memory."""
        await self.served.unload(model)

    # -- internals ---------------------------------------------------------------------------

    def _load(self, mv: ModelVersion) -> Runtime:
        path = self.registry.fetch_artifact(mv)
        runtime = load_runtime(mv.flavor, path, mv.signature)
        if self.settings.onnx:
            runtime = accelerate(self.registry, mv, runtime)
        return runtime


UNKNOWN_MODEL = "(unknown)"
"""The model observers are told of for a request whose model does not exist (no model name
can be this: names are letters, digits, '_', '-' and '.')."""


def _leave(inflight: dict[str, int], model: str) -> None:
    """One request fewer in flight for ``model``; a model with none has no entry (so that
    requests for models that do not exist leave nothing behind)."""
    left = inflight[model] - 1
    if left:
        inflight[model] = left
    else:
        del inflight[model]
