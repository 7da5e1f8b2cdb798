"""The model pool: one load per version however many ask, LRU eviction, pinning."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from modelpilot.errors import ArtifactError, ModelNotReady
from modelpilot.registry.signature import Signature
from modelpilot.registry.types import ModelVersion
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.serving.pool import ModelPool

SIGNATURE = Signature(inputs=(), outputs=())


class SizedRuntime(Runtime):
    """A runtime of a known size that counts its loads and closes."""

    flavor = "test"

    def __init__(self, size: int) -> None:
        self.signature = SIGNATURE
        self.size = size
        self.closed = False

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None) -> Runtime:
        raise NotImplementedError

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        return {}

    @property
    def memory_bytes(self) -> int:
        return self.size

    def close(self) -> None:
        self.closed = True


def version(n: int) -> ModelVersion:
    return ModelVersion(
        "m", n, "test", "0" * 64, "m.bin", 1, SIGNATURE, {}, datetime.now(timezone.utc)
    )


class Loader:
    def __init__(self, size: int = 100, delay: float = 0.0, fail: bool = False) -> None:
        self.size, self.delay, self.fail = size, delay, fail
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, mv: ModelVersion) -> Runtime:
        with self.lock:
            self.calls.append(mv.version)
        if self.delay:
            threading.Event().wait(self.delay)
        if self.fail:
            raise OSError("disk on fire")
        return SizedRuntime(self.size)


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    pool = ThreadPoolExecutor(2)
    yield pool
    pool.shutdown()


async def test_concurrent_requests_share_one_load(executor: ThreadPoolExecutor) -> None:
    loader = Loader(delay=0.05)
    pool = ModelPool(loader, executor, memory_budget_bytes=10_000)
    models = await asyncio.gather(*(pool.get(version(1)) for _ in range(10)))
    assert loader.calls == [1]
    assert all(m is models[0] for m in models)


async def test_least_recently_used_is_evicted_but_pinned_stays(
    executor: ThreadPoolExecutor,
) -> None:
    loader = Loader(size=100)
    pool = ModelPool(loader, executor, memory_budget_bytes=250)
    first = await pool.get(version(1))
    pool.pin(("m", 1))
    await pool.get(version(2))
    await pool.get(version(3))  # over budget: 2 is the oldest unpinned
    assert ("m", 1) in pool and ("m", 3) in pool and ("m", 2) not in pool
    assert not first.runtime.closed  # type: ignore[attr-defined]
    await pool.get(version(2))
    assert loader.calls == [1, 2, 3, 2]
    assert ("m", 3) not in pool


async def test_a_failed_load_is_reported_and_retried(executor: ThreadPoolExecutor) -> None:
    loader = Loader(fail=True)
    pool = ModelPool(loader, executor, memory_budget_bytes=1000)
    with pytest.raises(ArtifactError, match=r"could not load m:1 .* disk on fire"):
        await pool.get(version(1))
    loader.fail = False
    assert (await pool.get(version(1))).runtime.memory_bytes == 100
    assert loader.calls == [1, 1]


async def test_unload_closes_the_runtime(executor: ThreadPoolExecutor) -> None:
    pool = ModelPool(Loader(), executor, memory_budget_bytes=1000)
    model = await pool.get(version(1))
    assert pool.unload(("m", 1))
    assert model.runtime.closed  # type: ignore[attr-defined]
    assert not pool.unload(("m", 1))


class HeldLoader(Loader):
    """A loader that does not return until ``release`` is set: a load that hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def __call__(self, mv: ModelVersion) -> Runtime:
        self.release.wait(10)
        return super().__call__(mv)


async def test_a_caller_that_gives_up_leaves_the_load_to_the_others(
    executor: ThreadPoolExecutor,
) -> None:
    loader = HeldLoader()
    pool = ModelPool(loader, executor, memory_budget_bytes=1000)
    try:
        with pytest.raises(ModelNotReady, match=r"m:1 is still loading after 0.05 s"):
            await pool.get(version(1), timeout=0.05)
        cancelled = asyncio.ensure_future(pool.get(version(1)))
        waiting = asyncio.ensure_future(pool.get(version(1)))
        await asyncio.sleep(0.05)
        cancelled.cancel()  # its client hung up
        await asyncio.sleep(0.05)
        assert pool.is_loading(("m", 1)) and not waiting.done()
    finally:
        loader.release.set()
    model = await waiting
    assert ("m", 1) in pool and not pool.is_loading(("m", 1))
    assert await pool.get(version(1)) is model
    assert loader.calls == [1]  # one load, however many gave up on it
