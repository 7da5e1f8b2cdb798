"""A started engine over a registry holding the iris classifier and the diabetes forest."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import make_settings

NAN_MODEL = '''
class Model:
    """Echoes the first column; its signature says it copes with missing values."""

    signature = {
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}],
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
        "allow_nan": True,
    }

    def predict(self, x):
        return x[:, 0]
'''


@pytest.fixture
async def engine(served_registry: Registry) -> AsyncIterator[InferenceEngine]:
    engine = InferenceEngine(served_registry, make_settings(served_registry))
    await engine.start()
    yield engine
    await engine.stop()


class LoopThread:
    """An event loop in a background thread, for servers that sync clients talk to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def serve_http(loop_thread: LoopThread, app: Any, port: int, **options: Any) -> Callable[[], None]:
    """Serve ``app`` with uvicorn (and its ``options``) on loopback ``port``, in
    ``loop_thread``, once it listens; returns what stops it."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.run_coroutine_threadsafe(server.serve(), loop_thread.loop)
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        task.result(10)

    return stop


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def nan_model(tmp_path: Path) -> Path:
    path = tmp_path / "echo.py"
    path.write_text(NAN_MODEL)
    return path


EngineFactory = Callable[..., InferenceEngine]


SLOW_MODEL = '''
import os
import time


class Model:
    """Sleeps for the first value (seconds), then answers with its process id."""

    def predict(self, x):
        if x[0, 0] > 0:
            time.sleep(float(x[0, 0]))
        return [float(os.getpid())] * len(x)
'''


@pytest.fixture
def slow_version(registry: Registry, tmp_path: Path) -> ModelVersion:
    path = tmp_path / "slow.py"
    path.write_text(SLOW_MODEL)
    return register_model(registry, "slow", path, flavor="python")
