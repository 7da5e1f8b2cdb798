"""A call larger than the monitoring process's buffer is monitored, not dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from modelpilot.monitoring import tap_process
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap_batches import Answered, merge
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.monitoring.tap_wire import RoundEncoder
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import Served

BIG_ROWS = 50_000


@pytest.fixture
def tap(labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch) -> Iterator[TapProcess]:
    # 1 MiB, as 64 MiB to a request of 60 MiB (the largest the server takes is 64 MiB).
    monkeypatch.setattr(tap_process, "MAX_PENDING", 1 << 20)
    process = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig(window_rows=BIG_ROWS)))
    yield process
    process.close()


def big_call(registry: Registry, request_id: str) -> Answered:
    rng = np.random.default_rng(7)
    rows = rng.normal([5.8, 3.0, 3.8, 1.2], 0.3, (BIG_ROWS, 4))
    predicted = rng.integers(0, 3, BIG_ROWS)
    version = registry.get_version("iris", 1)
    return Answered(
        time.time(), version, [request_id], [BIG_ROWS], {"input-0": rows}, {"predict": predicted}
    )


def test_one_call_larger_than_the_buffer_is_monitored_and_takes_labels(
    tap: TapProcess, labelled_iris: Registry
) -> None:
    """A gRPC request of 1,966,080 rows (60 MiB, under the 64 MiB request limit) was answered
    but dropped by the monitor as "fallen behind": its rows never reached the drift window,
    and its labels were refused with 404."""
    round_ = merge([big_call(labelled_iris, "big")])
    assert len(RoundEncoder().encode(round_)[0]) > tap_process.MAX_PENDING
    tap.take(round_)
    assert tap.dropped == 0
    (state,) = tap.states(time.time())
    assert (state.requests, state.rows, state.window_rows) == (1, BIG_ROWS, BIG_ROWS)
    found = tap.lookup("iris", ["big"])
    assert len(found["big"].outputs["predict"]) == BIG_ROWS
    tap.set_labels("iris", {"big": [0] * BIG_ROWS})
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.find("iris", ["big"])["big"].label == [0] * BIG_ROWS


async def test_a_label_refused_after_requests_were_dropped_says_so(served: Served) -> None:
    """The 404 blamed MODELPILOT_INFERENCE_LOG_MAX_ROWS alone, for a request the monitor had
    dropped (and so never logged)."""
    served.monitor._dropped = 3  # as a full queue counts them
    reply = await served.client.post("/api/feedback/iris", json={"request_id": "x", "label": 1})
    assert reply.status_code == 404
    assert "3 answered request(s) were left unmonitored" in reply.json()["error"]
