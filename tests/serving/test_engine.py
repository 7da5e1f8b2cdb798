"""The engine end to end over a real registry: resolution, loading, errors, lifecycle."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelpilot.config import Settings
from modelpilot.errors import (
    BadRequest,
    InferenceTimeout,
    InvalidInput,
    ModelFailure,
    ModelNotFound,
    VersionNotFound,
)
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.refs import ModelRef
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.observers import InferenceObserver
from modelpilot.serving.registration import register_model
from modelpilot.serving.shared_repository import SharedRepository

PYTHON_MODEL = '''
import time


class Model:
    """Sums each row; a negative first value raises, one above 100 sleeps that many ms."""

    def predict(self, x):
        if x[0, 0] < 0:
            raise RuntimeError("negative input")
        if x[0, 0] > 100:
            time.sleep(x[0, 0] / 1000)
        return x.sum(axis=1)
'''


def settings_for(registry: Registry, **overrides: object) -> Settings:
    return Settings(registry=str(registry.location), **overrides)  # type: ignore[arg-type]


@pytest.fixture
def python_model(tmp_path: Path) -> Path:
    path = tmp_path / "summer.py"
    path.write_text(PYTHON_MODEL)
    return path


@pytest.fixture
async def engine(registry: Registry, iris_version: ModelVersion) -> AsyncIterator[InferenceEngine]:
    engine = InferenceEngine(registry, settings_for(registry, alias_refresh_seconds=0))
    await engine.start()
    yield engine
    await engine.stop()


async def test_serves_every_registered_model_and_is_ready(
    engine: InferenceEngine, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    assert engine.ready
    assert engine.served_models == ["iris"]
    rows = iris_frame.to_numpy()[:5]
    response = await engine.infer("iris", request_from_rows(rows.tolist(), "req-1"))
    assert response.id == "req-1"
    assert (response.model_name, response.model_version) == ("iris", "1")
    outputs = {t.name: t.data for t in response.outputs}
    np.testing.assert_array_equal(outputs["predict"], iris_model.predict(iris_frame.iloc[:5]))
    np.testing.assert_allclose(
        outputs["predict_proba"], iris_model.predict_proba(iris_frame.iloc[:5])
    )


async def test_a_request_without_an_id_gets_one(engine: InferenceEngine) -> None:
    ids = {
        (await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))).id for _ in range(3)
    }
    assert len(ids) == 3 and all(len(i) == 24 for i in ids)


async def serving_version(engine: InferenceEngine, want: str, tries: int = 100) -> str:
    """The version answering, once it is ``want`` (alias moves land in the background)."""
    got = ""
    for _ in range(tries):
        got = (await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))).model_version
        if got == want:
            break
        await asyncio.sleep(0.01)
    return got


async def test_alias_moves_reach_the_running_engine(
    engine: InferenceEngine, registry: Registry, iris_model_path: Path
) -> None:
    second = register_model(registry, "iris", iris_model_path)
    response = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
    assert response.model_version == "1"  # production still points at 1
    registry.set_alias("iris", "production", second.version)
    assert await serving_version(engine, "2") == "2"
    pinned = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]), version="1")
    assert pinned.model_version == "1"
    # Both versions are in memory and answer: the repository index lists both, the served
    # one first (it listed the served one alone).
    index = await engine.repository_index(ready_only=True)
    assert [(e.name, e.version, e.state) for e in index] == [
        ("iris", "2", "READY"),
        ("iris", "1", "READY"),
    ]
    by_alias = await engine.infer(
        "iris", request_from_rows([5.1, 3.5, 1.4, 0.2]), version="production"
    )
    assert by_alias.model_version == "2"


async def test_an_idle_engine_follows_an_alias_before_its_next_request(
    registry: Registry, iris_version: ModelVersion, iris_model_path: Path
) -> None:
    engine = InferenceEngine(registry, settings_for(registry, alias_refresh_seconds=0.2))
    await engine.start()
    try:
        second = register_model(registry, "iris", iris_model_path)
        registry.set_alias("iris", "production", second.version)
        for _ in range(100):  # no request meanwhile: the engine looks by the clock
            if dict(engine.served.current_versions())["iris"] == second:
                break
            await asyncio.sleep(0.02)
        response = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        assert response.model_version == "2"  # the first request after the move
    finally:
        await engine.stop()


async def test_a_worker_started_late_follows_the_others_repository_decisions(
    registry: Registry, iris_version: ModelVersion, forest_version: ModelVersion, tmp_path: Path
) -> None:
    """A worker restarted after ``unload`` (``serve --workers``) does not serve the model."""
    SharedRepository(tmp_path).record("iris", "unloaded")
    settings = settings_for(registry, worker_dir=tmp_path, alias_refresh_seconds=0.1)
    engine = InferenceEngine(registry, settings)
    await engine.start()
    try:
        assert engine.served_models == ["forest"]
        with pytest.raises(ModelNotFound, match="was unloaded"):
            await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        SharedRepository(tmp_path).record("iris", "loaded")  # as another worker is asked to
        for _ in range(100):
            if "iris" in engine.served_models:
                break
            await asyncio.sleep(0.05)
        assert (await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))).model_version
    finally:
        await engine.stop()


async def test_an_unmoved_alias_is_asked_as_a_number_not_read_whole(
    registry: Registry, iris_version: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read whole (three queries, and the reference profile's JSON decoded), each lookup
    # cost 1-3 ms of the server's CPU per model every two seconds.
    engine = InferenceEngine(registry, settings_for(registry, alias_refresh_seconds=0.05))
    await engine.start()
    calls: dict[str, int] = {"resolve": 0, "resolve_number": 0}
    for name in calls:
        method = getattr(registry, name)

        def counted(ref: ModelRef, _method: object = method, _name: str = name) -> object:
            calls[_name] += 1
            return _method(ref)  # type: ignore[operator]

        monkeypatch.setattr(registry, name, counted)
    try:
        await asyncio.sleep(0.5)
        assert calls["resolve_number"] >= 3 and calls["resolve"] == 0
    finally:
        await engine.stop()


async def test_unknown_model_and_version(engine: InferenceEngine) -> None:
    with pytest.raises(ModelNotFound):
        await engine.infer("nope", request_from_rows([1, 2, 3, 4]))
    with pytest.raises(VersionNotFound):
        await engine.infer("iris", request_from_rows([1, 2, 3, 4]), version="7")


@pytest.mark.parametrize("version", ["-", "\u00a2", "abc", "7"])
async def test_a_made_up_model_is_not_found_whatever_its_version(
    engine: InferenceEngine, version: str
) -> None:
    """An alias that is not even valid ("-") was answered 400 before the 404 the model's
    name deserves, and checked before a body's errors (so that a bad body won over it)."""
    request = request_from_rows([1, 2, 3, 4])
    with pytest.raises(ModelNotFound, match="no model named 'made-up'"):
        await engine.infer("made-up", request, version=version)
    with pytest.raises(ModelNotFound, match="no model named 'made-up'"):
        await engine.check("made-up", version)


async def test_an_invalid_alias_of_a_model_that_exists_is_a_bad_request(
    engine: InferenceEngine,
) -> None:
    with pytest.raises(BadRequest, match="invalid alias '-'"):
        await engine.infer("iris", request_from_rows([1, 2, 3, 4]), version="-")


async def test_a_request_for_a_made_up_model_is_in_flight_under_the_shared_label(
    engine: InferenceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In flight by the name asked for, each made-up name was a series of the in-flight gauge
    while its request waited on the registry."""
    asked, release = threading.Event(), threading.Event()
    resolve = engine.registry.resolve

    def held(ref: ModelRef) -> ModelVersion:
        asked.set()
        release.wait(10)
        return resolve(ref)

    monkeypatch.setattr(engine.registry, "resolve", held)
    task = asyncio.create_task(engine.infer("made-up", request_from_rows([1, 2, 3, 4]), "abc"))
    try:
        assert await asyncio.to_thread(asked.wait, 10)
        assert engine.inflight == {"(unknown)": 1}
    finally:
        release.set()
    with pytest.raises(ModelNotFound):
        await task
    assert engine.inflight == {}


async def test_unload_then_load(engine: InferenceEngine) -> None:
    await engine.unload_model("iris")
    assert not await engine.model_ready("iris")
    assert ("iris", 1) not in engine.pool
    with pytest.raises(ModelNotFound, match="was unloaded"):
        await engine.infer("iris", request_from_rows([1, 2, 3, 4]))
    await engine.load_model("iris")
    assert await engine.model_ready("iris")
    index = await engine.repository_index()
    assert [(e.name, e.version, e.state) for e in index] == [("iris", "1", "READY")]


async def test_a_model_registered_since_start_up_is_listed_as_loading_on_first_use(
    registry: Registry, iris_version: ModelVersion, iris_model_path: Path
) -> None:
    """It was UNAVAILABLE, "not served", though the next request for it loaded and served it."""
    engine = InferenceEngine(registry, settings_for(registry))
    await engine.start()
    try:
        register_model(registry, "later", iris_model_path)
        index = {e.name: e for e in await engine.repository_index()}
        assert (index["later"].state, index["later"].reason) == (
            "UNAVAILABLE",
            "not loaded: loads on its first request",
        )
        response = await engine.infer("later", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        assert response.model_name == "later"
    finally:
        await engine.stop()


async def test_a_model_loaded_again_comes_back_at_the_reference_it_was_served_at(
    registry: Registry, iris_version: ModelVersion, iris_model_path: Path
) -> None:
    """A server started with iris@staging (version 1) served production's version 2 after
    an unload and a load through the repository API."""
    register_model(registry, "iris", iris_model_path, aliases=["production"])  # version 2
    registry.set_alias("iris", "staging", 1)
    engine = InferenceEngine(
        registry, settings_for(registry), models=[ModelRef.parse("iris@staging")]
    )
    await engine.start()
    try:
        await engine.unload_model("iris")
        await engine.load_model("iris")
        response = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        assert response.model_version == "1"
    finally:
        await engine.stop()


async def test_only_listed_models_are_served(
    registry: Registry, iris_version: ModelVersion, forest_version: ModelVersion
) -> None:
    engine = InferenceEngine(registry, settings_for(registry), models=[ModelRef.parse("forest")])
    await engine.start()
    try:
        assert engine.served_models == ["forest"]
        with pytest.raises(ModelNotFound, match="not served here; served models: forest"):
            await engine.infer("iris", request_from_rows([1, 2, 3, 4]))
        assert not await engine.model_ready("iris")
    finally:
        await engine.stop()


async def test_model_failure_is_contained(registry: Registry, python_model: Path) -> None:
    register_model(registry, "summer", python_model, flavor="python")
    engine = InferenceEngine(registry, settings_for(registry))
    await engine.start()
    try:
        with pytest.raises(ModelFailure, match="negative input"):
            await engine.infer("summer", request_from_rows([[-1.0, 2.0]]))
        ok = await engine.infer("summer", request_from_rows([[1.0, 2.0]]))
        assert ok.outputs[0].data.tolist() == [3.0]
    finally:
        await engine.stop()


async def test_slow_inference_times_out(registry: Registry, python_model: Path) -> None:
    register_model(registry, "summer", python_model, flavor="python")
    engine = InferenceEngine(registry, settings_for(registry, request_timeout_seconds=0.05))
    await engine.start()
    try:
        with pytest.raises(InferenceTimeout, match=r"did not answer within 0\.05 s"):
            await engine.infer("summer", request_from_rows([[300.0, 1.0]]))
    finally:
        await engine.stop()


async def test_a_requests_own_timeout_parameter_is_honoured_within_the_servers(
    registry: Registry, python_model: Path
) -> None:
    """Triton's clients send ``timeout`` (microseconds) as a request parameter (tritonclient's
    ``infer(timeout=...)``): it was ignored, and a 100 ms request answered after 2 s."""
    register_model(registry, "summer", python_model, flavor="python")
    engine = InferenceEngine(registry, settings_for(registry, request_timeout_seconds=30))
    await engine.start()
    try:
        slow = request_from_rows([[300.0, 1.0]])
        slow.parameters["timeout"] = 50_000
        with pytest.raises(InferenceTimeout, match=r"within 0\.05 s \(the request's timeout"):
            await engine.infer("summer", slow)
        quick = request_from_rows([[1.0, 2.0]])
        quick.parameters["timeout"] = 5_000_000
        assert (await engine.infer("summer", quick)).outputs[0].data.tolist() == [3.0]
        for wrong in (0, -5, "soon", True):
            bad = request_from_rows([[1.0, 2.0]])
            bad.parameters["timeout"] = wrong
            with pytest.raises(BadRequest, match='"timeout" parameter is microseconds'):
                await engine.infer("summer", bad)
    finally:
        await engine.stop()


async def test_bad_requests_do_not_disturb_concurrent_good_ones(engine: InferenceEngine) -> None:
    good = request_from_rows([5.1, 3.5, 1.4, 0.2])
    bad = request_from_rows([[1.0, 2.0]])
    results = await asyncio.gather(
        *(engine.infer("iris", bad if i % 2 else good) for i in range(20)),
        return_exceptions=True,
    )
    assert all(isinstance(r, InvalidInput) for r in results[1::2])
    assert all(r.outputs[0].data.tolist() == [0] for r in results[::2])  # type: ignore[union-attr]


async def test_a_broken_new_version_keeps_the_old_one_serving(
    engine: InferenceEngine, registry: Registry, iris_model_path: Path
) -> None:
    second = register_model(registry, "iris", iris_model_path)
    registry.artifacts.path_for(second.artifact_sha256).write_bytes(b"corrupted")
    registry.set_alias("iris", "production", second.version)
    for _ in range(20):  # several refreshes come and go; version 1 answers throughout
        response = await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))
        assert response.model_version == "1"
        await asyncio.sleep(0.01)


async def test_metadata(engine: InferenceEngine) -> None:
    meta = await engine.metadata("iris")
    assert (meta.name, meta.version, meta.versions, meta.platform) == (
        "iris",
        "1",
        ("1",),
        "sklearn",
    )
    assert meta.inputs[0].shape == (-1, 4)
    assert meta.feature_names == ("sepal_length", "sepal_width", "petal_length", "petal_width")


class Recorder(InferenceObserver):
    """Keeps what the engine tells of each model call, and each request's outcome."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[int], int, int]] = []
        self.finished: list[tuple[str, str | None]] = []

    def predicted(
        self,
        version: ModelVersion,
        request_ids: Sequence[str],
        rows: Sequence[int],
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> None:
        first_in, first_out = next(iter(inputs.values())), next(iter(outputs.values()))
        self.calls.append((list(request_ids), list(rows), len(first_in), len(first_out)))

    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        self.finished.append((status, error))


async def test_observers_hear_each_model_call_with_its_requests(engine: InferenceEngine) -> None:
    recorder = Recorder()
    engine.add_observer(recorder)
    one, two = [5.1, 3.5, 1.4, 0.2], [[6.2, 3.4, 5.4, 2.3], [5.9, 3.0, 5.1, 1.8]]
    requests = [request_from_rows(two if i % 3 == 0 else one) for i in range(30)]
    requests[1].id = "chosen-by-the-client"
    responses = await asyncio.gather(*(engine.infer("iris", r) for r in requests))
    told = [rid for ids, _, _, _ in recorder.calls for rid in ids]
    assert sorted(told) == sorted(r.id for r in responses)
    assert "chosen-by-the-client" in told
    sizes = {rid: n for ids, rows, _, _ in recorder.calls for rid, n in zip(ids, rows, strict=True)}
    assert [sizes[r.id] for r in responses] == [2 if i % 3 == 0 else 1 for i in range(30)]
    for _, rows, inputs, outputs in recorder.calls:
        assert sum(rows) == inputs == outputs
    assert max(len(ids) for ids, _, _, _ in recorder.calls) > 1  # the queued ones ran together


async def test_an_observer_added_after_a_model_answered_hears_its_next_calls(
    engine: InferenceEngine,
) -> None:
    await engine.infer("iris", request_from_rows([5.1, 3.5, 1.4, 0.2]))  # no one listening
    recorder = Recorder()
    engine.add_observer(recorder)
    response = await engine.infer("iris", request_from_rows([6.2, 3.4, 5.4, 2.3]))
    assert recorder.calls == [([response.id], [1], 1, 1)]
    assert recorder.finished == [("ok", None)]


async def test_a_request_its_caller_gave_up_on_is_499_not_a_server_error(
    engine: InferenceEngine,
) -> None:
    recorder = Recorder()
    engine.add_observer(recorder)
    await engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]]))
    task = asyncio.create_task(engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]])))
    await asyncio.sleep(0)  # the request is in the engine, waiting for its batch
    assert engine.inflight["iris"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.finished == [("ok", None), ("499", None)]

    # Not ready, draining: the server serves on as before, and a client that leaves, leaves.
    engine.mark_stopping()
    task = asyncio.create_task(engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]])))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.finished[-1] == ("499", None)

    # Cut off at the end of the shutdown grace (and answered 503): not the client's doing.
    task = asyncio.create_task(engine.infer("iris", request_from_rows([[5.1, 3.5, 1.4, 0.2]])))
    await asyncio.sleep(0)
    engine.mark_closed()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.finished[-1] == ("503", "Unavailable")


@pytest.mark.parametrize("name", ["a\x00b", "iris\n", "-iris", "x" * 129])
async def test_a_name_no_registry_could_hold_is_an_unknown_model_on_postgres(
    postgres_location: str, tmp_path: Path, iris_model_path: Path, name: str
) -> None:
    """(PostgreSQL refuses a NUL in a query outright: asked, it answered 500.)"""
    registry = Registry.open(postgres_location, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path)
    engine = InferenceEngine(registry, Settings(registry=postgres_location))
    await engine.start()
    try:
        with pytest.raises(ModelNotFound, match="model names are 1-128 letters"):
            await engine.check(name)
        with pytest.raises(ModelNotFound, match="model names are 1-128 letters"):
            await engine.metadata(name)
        with pytest.raises(ModelNotFound, match="model names are 1-128 letters"):
            await engine.load_model(name)
        with pytest.raises(ModelNotFound):
            await engine.infer(name, request_from_rows([[1.0, 2.0, 3.0, 4.0]]))
        assert await engine.model_ready(name) is False
        assert await engine.model_ready("iris") is True  # the engine is as it was
    finally:
        await engine.stop()
        registry.close()
