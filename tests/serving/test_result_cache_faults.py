"""Result caches that misbehave: answers read back as given, failing and damaged stores,
leftovers on disk, and a Redis that does not answer within a request's deadline.

Built through ``create_result_cache`` and the engine, as a server builds them."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelpilot.config import Settings
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.observers import InferenceObserver
from modelpilot.serving.registration import register_model
from modelpilot.serving.result_cache import ResultCache, create_result_cache
from tests.services import require_redis

TEXT_MODEL = '''
import numpy as np


class Model:
    """A text classifier, as scikit-learn's with string classes answers: str labels."""

    task = "classification"

    def predict(self, x):
        return np.array(["big" if row[0] > 1 else "small" for row in x], dtype=object)
'''

OUTPUTS = {
    "predict": np.array(["cat", "dog"], dtype=object),
    "proba": np.array([[0.25, 0.75], [0.5, 0.5]]),
}


class Predictions(InferenceObserver):
    """The outputs each request's prediction was watched with, as monitoring gets them."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, np.ndarray]] = []

    def predicted(
        self,
        version: ModelVersion,
        request_ids: list[str],
        rows: list[int],
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
    ) -> None:
        self.outputs.append(outputs)


def _kinds(array: np.ndarray) -> tuple[str, list[type]]:
    return array.dtype.str, [type(v) for v in array.flat]


@pytest.fixture(params=["disk", "redis"])
def shared_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of a cache shared between processes: its answers are read back from bytes."""
    if request.param == "disk":
        return Settings(result_cache="disk", result_cache_dir=tmp_path / "cache")
    return Settings(result_cache="redis", redis_url=require_redis())


async def test_a_cached_answer_is_the_models_own(
    registry: Registry, tmp_path: Path, shared_settings: Settings
) -> None:
    # Text came back as bytes where the model answered str: a monitoring round holding both
    # could not be sorted and was dropped whole (labels for its requests then 404).
    path = tmp_path / "text.py"
    path.write_text(TEXT_MODEL)
    register_model(registry, "text", path, flavor="python")
    name = "text"
    watched = Predictions()
    settings = shared_settings.model_copy(update={"registry": registry.location})
    engine = InferenceEngine(registry, settings, observers=[watched])
    await engine.start()
    try:
        row = [[float(uuid.uuid4().int % 1000) / 100 + 2.0, 1.0]]  # new to a shared Redis
        first = await engine.infer(name, request_from_rows(row))
        assert engine.result_cache is not None
        await engine.result_cache.settled()  # stored in the background
        again = await engine.infer(name, request_from_rows(row))
        assert (engine.result_cache.hits, engine.result_cache.misses) == (1, 1)
        assert first.outputs[0].data.tolist() == again.outputs[0].data.tolist()
        model_call, cache_hit = watched.outputs
        for output in model_call:
            assert _kinds(cache_hit[output]) == _kinds(model_call[output])
        assert _kinds(cache_hit["predict"]) == ("|O", [str])
    finally:
        await engine.stop()


async def test_answers_read_back_with_their_dtypes_and_element_types(
    shared_settings: Settings,
) -> None:
    cache = create_result_cache(shared_settings)
    assert cache is not None
    outputs = {
        "labels": np.array(["cat", "dog"], dtype=object),
        "text": np.array(["ab", "c"]),  # <U2
        "mixed": np.array([None, True, 3, 2.5, b"raw", "x", np.float32(1.5), 10**30], object),
        "big_endian": np.array([[1.5, 2.0]], dtype=">f4"),
        "empty": np.zeros((0, 3), dtype=np.int16),
    }
    key = uuid.uuid4().hex
    try:
        await cache.set(key, outputs)
        back = await cache.get(key)
        assert back is not None
        for name, array in outputs.items():
            assert _kinds(back[name]) == _kinds(array), name
            assert back[name].shape == array.shape
            assert back[name].tolist() == array.tolist()
        # Something that would not come back as it is is not cached (and no outage).
        await cache.set("other" + key, {"p": np.array([{"a": 1}], dtype=object)})
        assert await cache.get("other" + key) is None and cache.errors == 0
    finally:
        await cache.close()


async def test_a_disk_that_takes_no_writes_is_warned_of_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # /proc reads (a lookup finds nothing) and takes no files, even from root: as a full or
    # read-only disk. A lookup that found nothing said "answers again", and the next store
    # warned again, every 5 s.
    cache = create_result_cache(Settings(result_cache="disk", result_cache_dir=Path("/proc")))
    assert cache is not None
    cache.retry_seconds = 0.1
    caplog.set_level(logging.DEBUG, "modelpilot.serving")
    for round_ in range(4):
        assert await cache.get(f"zz{round_}") is None
        await cache.set(f"zz{round_}", OUTPUTS)
        await asyncio.sleep(0.15)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "store failed" in warnings[0], warnings
    assert cache.errors == 4


async def test_a_failed_store_leaves_no_file_behind(tmp_path: Path) -> None:
    cache = create_result_cache(Settings(result_cache="disk", result_cache_dir=tmp_path))
    assert cache is not None
    key = "ab" + "0" * 62
    # The entry's name taken by a directory that is not empty: the rename fails.
    (tmp_path / "ab" / key / "in-the-way").mkdir(parents=True)
    await cache.set(key, OUTPUTS)
    assert cache.errors == 1
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == [key]


async def test_one_damaged_entry_is_a_miss_for_its_key_alone(
    shared_settings: Settings,
) -> None:
    cache = create_result_cache(shared_settings)
    assert cache is not None
    damaged, sound = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        await cache.set(damaged, OUTPUTS)
        await cache.set(sound, OUTPUTS)
        await _cut(cache, shared_settings, damaged)
        assert await cache.get(damaged) is None
        assert await cache.get(sound) is not None  # the cache still answers
        assert await _held(cache, shared_settings, damaged) is False  # deleted
        await cache.set(damaged, OUTPUTS)  # and stored again
        assert await cache.get(damaged) is not None
    finally:
        await cache.close()


async def _cut(cache: ResultCache, settings: Settings, key: str) -> None:
    """Cut ``key``'s entry to 10 bytes, as a crash or a disk error would."""
    if settings.result_cache == "disk":
        assert settings.result_cache_dir is not None
        path = settings.result_cache_dir / key[:2] / key
        path.write_bytes(path.read_bytes()[:10])
        return
    client: Any = cache._client  # type: ignore[attr-defined]
    prefix = cache.prefix  # type: ignore[attr-defined]
    await client.set(prefix + key, (await client.get(prefix + key))[:10])


async def _held(cache: ResultCache, settings: Settings, key: str) -> bool:
    if settings.result_cache == "disk":
        assert settings.result_cache_dir is not None
        return (settings.result_cache_dir / key[:2] / key).exists()
    client: Any = cache._client  # type: ignore[attr-defined]
    return bool(await client.exists(cache.prefix + key))  # type: ignore[attr-defined]


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A Redis URL whose host takes connections and never answers (a Redis stopped, or a
    network that drops its replies)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_silent_redis_does_not_hold_a_request_past_its_deadline(
    registry: Registry, tmp_path: Path, silent_redis: str
) -> None:
    path = tmp_path / "text.py"
    path.write_text(TEXT_MODEL)
    register_model(registry, "text", path, flavor="python")
    settings = Settings(registry=registry.location, result_cache="redis", redis_url=silent_redis)
    engine = InferenceEngine(registry, settings)
    await engine.start()
    try:
        request = request_from_rows([[3.0, 1.0]])
        request.parameters = {"timeout": 500_000}  # 500 ms, in microseconds as Triton's
        started = time.monotonic()
        answer = await engine.infer("text", request)
        took = time.monotonic() - started
        # The lookup gets half the deadline, then the model answers in the rest: before,
        # the lookup waited the socket's 1 s, then the model had 500 ms of its own, then the
        # store waited 1 s more. (A bound the deadline sets, not a speed: the request is
        # answered within its 500 ms, well before the socket's 1 s.)
        assert answer.outputs[0].data.tolist() == [b"big"]
        assert took < 0.95, took
    finally:
        await engine.stop()


async def test_the_disk_cache_sweeps_expired_entries_and_keeps_its_share(
    tmp_path: Path,
) -> None:
    from modelpilot.serving.disk_result_cache import (
        STALE_TEMPORARY_SECONDS,
        SUBDIRECTORIES,
        SWEEP_EVERY,
        DiskResultCache,
    )

    cache = DiskResultCache(ttl_seconds=0.3, root=tmp_path, max_entries=SUBDIRECTORIES * 2)
    for number in range(3):
        await cache.set(f"ab{number}", OUTPUTS)
    stale = tmp_path / "ab" / ".entry-left-by-a-killed-worker"
    stale.write_bytes(b"half")
    old = time.time() - STALE_TEMPORARY_SECONDS - 1
    os.utime(stale, (old, old))
    # Two entries a subdirectory: the oldest of three goes, and the stale temporary file.
    os.utime(tmp_path / "ab" / "ab0", (old, old))
    assert cache.sweep(0xAB) == 2
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["ab1", "ab2"]
    # Traffic that never repeats: what expired goes within a round of sweeps, although no
    # lookup of its key ever comes.
    for number in range(40):
        await cache.set(f"{number % 16:x}{number:x}-{uuid.uuid4().hex}", OUTPUTS)
    await asyncio.sleep(0.4)
    for _ in range(SWEEP_EVERY * SUBDIRECTORIES):
        cache._write("ff-kept", b"x")  # the stores' own path, without the thread per store
    left = [name for _, _, files in os.walk(tmp_path) for name in files]
    assert left == ["ff-kept"]
