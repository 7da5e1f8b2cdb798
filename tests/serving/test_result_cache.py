"""Result caches: memory, disk and real Redis; the engine answers repeats without the model."""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modelpilot.config import Settings
from modelpilot.errors import BadRequest
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.cache_entries import cache_key, pack, unpack
from modelpilot.serving.disk_result_cache import DiskResultCache
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.redis_result_cache import RedisResultCache
from modelpilot.serving.registration import register_model
from modelpilot.serving.result_cache import MemoryResultCache, ResultCache, create_result_cache
from tests.services import require_redis, unavailable

COUNTING_MODEL = '''
import itertools


class Model:
    """Answers with how many times it was called, so that a cached answer shows."""

    def load(self):
        self.calls = itertools.count(1)

    def predict(self, x):
        return [float(next(self.calls))] * len(x)
'''

OUTPUTS = {
    "predict": np.array([b"cat", b"dog"], dtype=object),
    "proba": np.array([[0.25, 0.75], [0.5, 0.5]]),
}


@pytest.fixture(params=["memory", "disk", "redis"])
async def cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResultCache]:
    store: ResultCache
    if request.param == "memory":
        store = MemoryResultCache(ttl_seconds=0.2, max_entries=2)
    elif request.param == "disk":
        store = DiskResultCache(ttl_seconds=0.2, root=tmp_path / "cache")
    else:
        store = RedisResultCache(
            ttl_seconds=0.2, url=require_redis(), prefix=f"test:{uuid.uuid4().hex}:"
        )
    yield store
    await store.close()


def test_outputs_survive_packing() -> None:
    back = unpack(pack(OUTPUTS))
    assert back["predict"].tolist() == [b"cat", b"dog"]
    np.testing.assert_array_equal(back["proba"], OUTPUTS["proba"])


async def test_hits_misses_and_expiry(cache: ResultCache) -> None:
    assert await cache.get("k1") is None
    await cache.set("k1", OUTPUTS)
    found = await cache.get("k1")
    assert found is not None and found["predict"].tolist() == [b"cat", b"dog"]
    assert (cache.hits, cache.misses) == (1, 1)
    await asyncio.sleep(0.4)
    assert await cache.get("k1") is None
    assert cache.misses == 2


async def test_memory_cache_keeps_the_most_recent() -> None:
    cache = MemoryResultCache(ttl_seconds=60, max_entries=2)
    for key in ("a", "b", "c"):
        await cache.set(key, OUTPUTS)
    assert await cache.get("a") is None and await cache.get("c") is not None


async def test_an_unreachable_redis_misses_and_is_left_alone_for_a_while() -> None:
    cache = RedisResultCache(ttl_seconds=60, url="redis://127.0.0.1:1/0")
    cache.retry_seconds = 0.5
    assert await cache.get("k") is None
    for _ in range(20):  # neither waited on nor warned about, request after request
        await cache.set("k", OUTPUTS)
        assert await cache.get("k") is None
    assert cache.errors == 1 and cache.misses == 21
    await asyncio.sleep(0.6)
    assert await cache.get("k") is None  # asked again: still gone
    assert cache.errors == 2
    await cache.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_redis_that_comes_back_is_used_again() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server (to start a Redis of the test's own)", "not on PATH")
        return
    port = _free_port()
    command = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]

    async def started() -> asyncio.subprocess.Process:
        server = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
            else:
                writer.close()
                return server
        raise AssertionError("redis-server did not start")

    server = await started()
    cache = RedisResultCache(ttl_seconds=60, url=f"redis://127.0.0.1:{port}/0")
    cache.retry_seconds = 0.3
    try:
        await cache.set("a", OUTPUTS)
        assert await cache.get("a") is not None
        server.terminate()
        await server.wait()
        assert await cache.get("a") is None and cache.errors == 1
        server = await started()  # empty: it kept nothing
        await asyncio.sleep(0.35)
        assert await cache.get("a") is None  # asked, and answered: a miss
        await cache.set("a", OUTPUTS)
        assert await cache.get("a") is not None and cache.errors == 1
    finally:
        server.terminate()
        await server.wait()
        await cache.close()


def test_keys_depend_on_version_outputs_and_every_input_byte(iris_version: ModelVersion) -> None:
    batch = {"input-0": np.array([[1.0, 2.0]])}
    key = cache_key(iris_version, batch, ["predict"])
    assert key == cache_key(iris_version, {"input-0": np.array([[1.0, 2.0]])}, ["predict"])
    assert key != cache_key(iris_version, {"input-0": np.array([[1.0, 2.5]])}, ["predict"])
    assert key != cache_key(iris_version, batch, ["predict", "predict_proba"])
    assert key != cache_key(iris_version, {"input-0": np.array([[1, 2]])}, ["predict"])
    # Rows of text and numbers: a missing value is not the text "None", nor 1.0 "1.0".
    rows = np.array([["red", None]], dtype=object)
    texts = np.array([["red", "None"]], dtype=object)
    assert cache_key(iris_version, {"x": rows}, ["predict"]) != cache_key(
        iris_version, {"x": texts}, ["predict"]
    )
    number, text = np.array([[1.0]], dtype=object), np.array([["1.0"]], dtype=object)
    assert cache_key(iris_version, {"x": number}, ["p"]) != cache_key(
        iris_version, {"x": text}, ["p"]
    )
    # Another registry's iris:1 (sharing the Redis): another model, another key.
    other = replace(iris_version, artifact_sha256="0" * 64)
    assert key != cache_key(other, batch, ["predict"])


def test_settings_choose_the_store(tmp_path: Path) -> None:
    assert create_result_cache(Settings()) is None
    assert isinstance(create_result_cache(Settings(result_cache="memory")), MemoryResultCache)
    assert isinstance(
        create_result_cache(Settings(result_cache="disk", result_cache_dir=tmp_path)),
        DiskResultCache,
    )
    with pytest.raises(BadRequest, match="MODELPILOT_RESULT_CACHE_DIR"):
        create_result_cache(Settings(result_cache="disk"))
    with pytest.raises(BadRequest, match="MODELPILOT_REDIS_URL"):
        create_result_cache(Settings(result_cache="redis"))


async def test_the_engine_answers_repeats_from_the_cache(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "counting.py"
    path.write_text(COUNTING_MODEL)
    register_model(registry, "counting", path, flavor="python")
    engine = InferenceEngine(registry, Settings(registry=registry.location, result_cache="memory"))
    await engine.start()
    try:
        first = await engine.infer("counting", request_from_rows([[1.0, 2.0]]))
        again = await engine.infer("counting", request_from_rows([[1.0, 2.0]]))
        other = await engine.infer("counting", request_from_rows([[3.0, 4.0]]))
        assert first.outputs[0].data.tolist() == again.outputs[0].data.tolist() == [1.0]
        assert other.outputs[0].data.tolist() == [2.0]
        assert first.id != again.id
        assert engine.result_cache is not None
        assert (engine.result_cache.hits, engine.result_cache.misses) == (1, 2)
    finally:
        await engine.stop()
