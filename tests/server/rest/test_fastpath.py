"""The fast path's own behaviour: a client that hangs up has its request cancelled, and the
request counts as 499, as over gRPC."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from modelpilot.registry.store import Registry
from modelpilot.server.rest import create_app
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model
from tests.conftest import free_port, make_settings
from tests.server.conftest import LoopThread, serve_http

SLOW_MODEL = """
import time


class Model:
    \"\"\"Echoes the first column; takes a second over rows whose first value is positive.\"\"\"

    def predict(self, x):
        if x[0, 0] > 0:
            time.sleep(1.0)
        return x[:, 0]
"""
QUICK = b'{"data": [[0.0, 1.0]]}'
SLOW = b'{"data": [[1.0, 1.0]]}'


class Finished:
    """Records the outcome of every request the engine finishes."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, str, str]] = []

    def request_finished(
        self,
        model: str,
        version: str,
        transport: str,
        status: str,
        seconds: float,
        error: str | None,
    ) -> None:
        self.statuses.append((model, transport, status))


@pytest.fixture
def slow_registry(served_registry: Registry, tmp_path: Path) -> Registry:
    path = tmp_path / "slow.py"
    path.write_text(SLOW_MODEL)
    register_model(served_registry, "slow", path, flavor="python")
    return served_registry


def _scope(path: str, body: bytes) -> dict[str, object]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "headers": [(b"content-type", b"application/json")],
    }


async def _call(app: object, body: bytes, hang_up_after: float | None) -> list[Message]:
    """What the app sends for ``POST /predict/slow``, from a client that hangs up
    ``hang_up_after`` seconds after sending ``body`` (or waits for the answer)."""
    sent: list[Message] = []
    answered = asyncio.Event()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        if hang_up_after is None:
            await answered.wait()
        else:
            await asyncio.sleep(hang_up_after)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            answered.set()

    await app(_scope("/predict/slow", body), receive, send)  # type: ignore[operator]
    return sent


async def test_a_client_that_hangs_up_has_its_request_cancelled_and_counted_499(
    engine: InferenceEngine, slow_registry: Registry
) -> None:
    """The body was read, then nothing watched the connection: the model's answer was
    waited for, sent to no one, and counted as ok."""
    finished = Finished()
    engine.add_observer(finished)
    app = create_app(engine, engine.settings)
    answer = await _call(app, QUICK, None)
    assert answer[0]["status"] == 200  # loaded, and quick
    started = time.monotonic()
    assert await _call(app, SLOW, hang_up_after=0.2) == []  # no answer for no one
    assert time.monotonic() - started < 0.8  # the model takes a second
    assert finished.statuses == [("slow", "rest", "ok"), ("slow", "rest", "499")]
    assert engine.inflight.get("slow", 0) == 0
    # The next request of the same app is answered as usual.
    assert (await _call(app, QUICK, None))[0]["status"] == 200


async def test_a_request_cancelled_from_outside_stays_cancelled(
    engine: InferenceEngine, slow_registry: Registry
) -> None:
    """Only a hang-up makes the fast path return quietly: a server that stops cancels its
    requests, and that must go on up."""
    app = create_app(engine, engine.settings)
    await _call(app, QUICK, None)
    task = asyncio.create_task(_call(app, SLOW, None))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_client_that_times_out_over_http_is_counted_499(
    slow_registry: Registry, loop_thread: LoopThread
) -> None:
    """Through uvicorn: a client timeout closes the connection, and the request counts as
    499 at once, not as ok a second later."""
    port = free_port()
    settings = make_settings(slow_registry, http_port=port)
    engine = InferenceEngine(slow_registry, settings)
    finished = Finished()
    engine.add_observer(finished)
    loop_thread.run(engine.start())
    stop = serve_http(loop_thread, create_app(engine, settings), port)
    try:
        url = f"http://127.0.0.1:{port}/predict/slow"
        assert httpx.post(url, content=QUICK).status_code == 200
        with pytest.raises(httpx.TimeoutException):
            httpx.post(url, content=SLOW, timeout=0.3)
        deadline = time.monotonic() + 3
        while len(finished.statuses) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert finished.statuses == [("slow", "rest", "ok"), ("slow", "rest", "499")]
    finally:
        stop()
        loop_thread.run(engine.stop())
