"""Monitoring's work in a process of its own: in order, nothing lost, never blocking serving."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest

from modelpilot.monitoring import tap_child, tap_process, tap_restarts
from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_metrics import MonitorCollector
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.monitor import Monitor
from modelpilot.monitoring.tap import TapFailed
from modelpilot.monitoring.tap_batches import Answered, Merged, merge
from modelpilot.monitoring.tap_process import TapProcess, TapSpec
from modelpilot.monitoring.tap_wire import RoundEncoder
from modelpilot.registry.store import Registry
from tests.monitoring.conftest import metric, monitored, send

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3], [5.9, 3.0, 5.1, 1.8]])


def batches(registry: Registry, first: int, count: int) -> list[Merged]:
    """``count`` one-row requests named r<first>..., as one round."""
    version = registry.get_version("iris", 1)
    calls = [
        Answered(
            time.time(),
            version,
            [f"r{i}"],
            [1],
            {"input-0": ROWS[i % 3 : i % 3 + 1]},
            {"predict": np.array([i % 3])},
        )
        for i in range(first, first + count)
    ]
    return merge(calls)


def requests(tap: TapProcess) -> int:
    return sum(state.requests for state in tap.states(time.time()))


@pytest.fixture
def tap(labelled_iris: Registry) -> Iterator[TapProcess]:
    process = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    yield process
    process.close()


def test_answers_include_every_round_handed_over_before(
    tap: TapProcess, labelled_iris: Registry
) -> None:
    for start in range(0, 500, 50):
        tap.take(batches(labelled_iris, start, 50))
    # No waiting in between: the question itself waits for the 10 rounds before it.
    assert requests(tap) == 500
    found = tap.lookup("iris", ["r7", "r499", "nope"])
    assert sorted(found) == ["r499", "r7"]
    assert found["r7"].version == 1 and list(found["r7"].outputs["predict"]) == [1]
    tap.set_labels("iris", {"r7": 1})
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.find("iris", ["r7"])["r7"].label == 1


def test_rounds_larger_than_the_pipe_arrive_whole(tap: TapProcess, labelled_iris: Registry) -> None:
    # A round of 40,000 requests is some 3 MB: more than the pipe holds, read in pieces.
    sizes = [40_000, 3, 40_000, 7]
    first = 0
    for size in sizes:
        round_ = batches(labelled_iris, first, size)
        assert len(RoundEncoder().encode(round_)[0]) > tap_child.PIPE_BYTES or size < 10
        tap.take(round_)
        first += size
    assert requests(tap) == sum(sizes)
    last = f"r{first - 1}"
    found = tap.lookup("iris", ["r0", "r40001", last])
    assert sorted(found) == sorted(["r0", "r40001", last])
    assert [int(found[r].outputs["predict"][0]) for r in ("r0", "r40001", last)] == [
        0,
        40_001 % 3,
        (first - 1) % 3,
    ]


def test_close_writes_every_round_even_after_sigterm(
    tap: TapProcess, labelled_iris: Registry
) -> None:
    tap.take(batches(labelled_iris, 0, 300))
    assert requests(tap) == 300 and tap.pid is not None  # up and past its start
    os.kill(tap.pid, signal.SIGTERM)  # as a signal to the server's process group would
    tap.take(batches(labelled_iris, 300, 200))
    tap.close()
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 500


def test_a_child_handed_nothing_is_not_waited_for(labelled_iris: Registry) -> None:
    """Closing waited for the child to start up (imports, the registry) only to write
    nothing: a server stopped soon after its start took seconds more to exit."""
    idle = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    idle.close()
    assert idle._process.exitcode == -signal.SIGKILL  # stopped, not asked and waited for
    busy = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    busy.take(batches(labelled_iris, 0, 3))
    busy.close()
    assert busy._process.exitcode == 0  # it had rounds to write: asked, and waited for
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 3


def test_a_server_that_dies_leaves_what_it_handed_over_logged(
    tap: TapProcess, labelled_iris: Registry
) -> None:
    tap.take(batches(labelled_iris, 0, 200))
    # What a crash of the server does to the pipes: they close, no goodbye.
    tap._data.close()
    tap._control.close()
    tap._process.join(30)
    assert tap._process.exitcode == 0
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 200


def test_a_stalled_child_never_blocks_the_caller(
    tap: TapProcess, labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tap_process, "MAX_PENDING", 1 << 20)
    assert tap.pid is not None
    os.kill(tap.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        for start in range(0, 60_000, 1000):  # more than the pipe and the buffer hold
            tap.take(batches(labelled_iris, start, 1000))
        assert time.perf_counter() - started < 10
        assert 0 < tap.dropped < 60_000
    finally:
        os.kill(tap.pid, signal.SIGCONT)
    assert requests(tap) == 60_000 - tap.dropped


def test_a_dead_child_fails_questions_not_the_caller(
    tap: TapProcess, labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 60.0)  # it died young: not replaced yet
    assert tap.pid is not None
    os.kill(tap.pid, signal.SIGKILL)
    tap._process.join(10)
    with pytest.raises(TapFailed, match="gone"):
        tap.states(time.time())
    monitor = Monitor(labelled_iris, tap=tap)
    version = labelled_iris.get_version("iris", 1)
    monitor.predicted(version, ["a"], [1], {"input-0": ROWS[:1]}, {"predict": np.array([0])})
    monitor.flush()  # the round is dropped and counted; nothing raises here
    assert monitor.dropped == 1 and monitor.failures >= 1


def test_a_dead_child_is_replaced(
    tap: TapProcess, labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    tap.take(batches(labelled_iris, 0, 10))
    assert requests(tap) == 10 and tap.pid is not None
    tap.lookup("iris", ["none"])  # the child writes the log before it looks there
    first = tap.pid
    os.kill(first, signal.SIGKILL)
    tap._process.join(10)
    tap.take(batches(labelled_iris, 10, 5))
    assert tap.restarts == 1 and tap.pid != first
    # The new child's windows start empty; the totals the dead one told carry on.
    assert requests(tap) == 15
    assert sum(state.window_rows for state in tap.states(time.time())) == 5
    tap.lookup("iris", ["none"])
    log = InferenceLog(labelled_iris.companion_engine("inference-log"))
    assert log.count("iris") == 15  # what the first one wrote stays


def test_a_replaced_child_carries_on_from_where_the_dead_one_was(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Totals as the dead child last told them; windows from the log (``restore_after_crash``,
    as a server that serves alone has it)."""
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    spec = TapSpec(labelled_iris.address(), MonitorConfig(), restore=True, restore_after_crash=True)
    tap = TapProcess(spec)
    monitor = Monitor(labelled_iris, tap=tap)  # its thread is not started
    try:
        tap.take(batches(labelled_iris, 0, 12))
        monitor.flush()  # the log holds them, and the monitor has their totals
        assert monitor.report("iris").requests == 12
        assert tap.pid is not None
        os.kill(tap.pid, signal.SIGKILL)
        tap._process.join(10)
        tap.take(batches(labelled_iris, 12, 6))
        monitor.flush()
        report = monitor.report("iris")
        assert tap.restarts == 1
        assert (report.requests, sum(report.classes_total.values())) == (18, 18)
        assert report.drift is not None and report.drift.rows == 18  # 12 from the log
    finally:
        monitor.stop()


def test_the_monitoring_process_has_metrics_of_its_own_that_never_go_back(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process metrics are the serving process's alone: the monitoring process's CPU
    and memory were nowhere (a tester found 0.97 s and 154 MB of it missing)."""
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    monitor = Monitor(labelled_iris, tap=tap)  # its thread is not started
    collector = MonitorCollector(monitor)

    def usage() -> tuple[float, float]:
        found = {m.name: m.samples[0].value for m in collector.collect()}
        cpu = found["modelpilot_monitor_process_cpu_seconds"]
        return cpu, found["modelpilot_monitor_process_resident_memory_bytes"]

    try:
        tap.take(batches(labelled_iris, 0, 200))
        monitor.flush()
        assert tap.pid is not None
        child = psutil.Process(tap.pid)
        cpu, rss = usage()
        times = child.cpu_times()
        assert 0 < cpu <= times.user + times.system
        assert rss == pytest.approx(child.memory_info().rss, rel=0.2) and rss > 20_000_000
        os.kill(tap.pid, signal.SIGKILL)
        tap._process.join(10)
        assert usage()[0] == cpu  # the dead one's last reading stands
        tap.take(batches(labelled_iris, 200, 5))
        monitor.flush()
        assert tap.restarts == 1
        after, _ = usage()
        assert after > cpu  # the dead one's seconds, and the new one's on top
    finally:
        monitor.stop()


async def test_the_event_loop_hands_calls_over_by_itself(labelled_iris: Registry) -> None:
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    monitor = Monitor(labelled_iris, tap=tap, round_seconds=0.05)  # its thread is not started
    version = labelled_iris.get_version("iris", 1)
    for i in range(20):
        monitor.predicted(
            version, [f"r{i}"], [1], {"input-0": ROWS[:1]}, {"predict": np.array([0])}
        )
    assert monitor.handover_seconds == 0
    await asyncio.sleep(0.3)
    try:
        assert requests(tap) == 20  # a timer on the loop shipped them; nobody flushed
        assert monitor.handover_seconds > 0  # and the loop's time for it was counted
        value = metric(monitor, "modelpilot_monitor_handover_seconds_total")
        assert value == monitor.handover_seconds
    finally:
        await asyncio.to_thread(monitor.stop)


async def test_a_round_lasts_as_long_as_configured(labelled_iris: Registry) -> None:
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))
    monitor = Monitor(labelled_iris, tap=tap, round_seconds=1.5)
    version = labelled_iris.get_version("iris", 1)
    try:
        for i in range(20):
            monitor.predicted(
                version, [f"r{i}"], [1], {"input-0": ROWS[:1]}, {"predict": np.array([0])}
            )
        await asyncio.sleep(0.5)
        assert requests(tap) == 0  # still in this round
        await asyncio.sleep(1.5)
        assert requests(tap) == 20
    finally:
        await asyncio.to_thread(monitor.stop)


def test_a_question_waiting_for_the_child_never_holds_up_the_caller(
    tap: TapProcess, labelled_iris: Registry
) -> None:
    assert requests(tap) == 0 and tap.pid is not None
    os.kill(tap.pid, signal.SIGSTOP)
    try:
        sent = 0
        while not tap._data.pending:  # the pipe is full: the rest waits in the buffer
            tap.take(batches(labelled_iris, sent, 1000))
            sent += 1000
        with ThreadPoolExecutor(2) as pool:
            question = pool.submit(requests, tap)  # waits for room in the pipe
            time.sleep(0.2)
            handed = pool.submit(tap.take, batches(labelled_iris, sent, 10))
            handed.result(timeout=5)  # not stuck behind the question
            assert not question.done()
            os.kill(tap.pid, signal.SIGCONT)
            assert question.result(timeout=30) >= sent
    finally:
        os.kill(tap.pid, signal.SIGCONT)
    assert requests(tap) == sent + 10 - tap.dropped


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def test_a_hung_child_fails_questions_in_time_and_is_replaced(
    tap: TapProcess, labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped child (``kill -STOP``) held every question, and so every label post, with no
    time limit (a tester waited 40 s)."""
    monkeypatch.setattr(tap_process, "QUESTION_SECONDS", 1.0)
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    tap.take(batches(labelled_iris, 0, 10))
    assert requests(tap) == 10 and tap.pid is not None
    tap.lookup("iris", ["none"])  # the child writes the log before it looks there
    hung = tap.pid
    os.kill(hung, signal.SIGSTOP)
    with ThreadPoolExecutor(1) as pool:
        try:
            asked = time.monotonic()
            question = pool.submit(tap.lookup, "iris", ["r1"])
            with pytest.raises(TapFailed, match="did not answer lookup in time"):
                question.result(timeout=15)
            assert time.monotonic() - asked < 5
        finally:
            _resume(hung)  # (before the pool waits for its thread)
    tap._process.join(10)  # killed
    assert tap._process.exitcode == -signal.SIGKILL
    tap.take(batches(labelled_iris, 10, 5))  # replaced, as a dead one is
    assert tap.restarts == 1 and tap.pid != hung
    assert requests(tap) == 15  # the 10 the hung one told, carried on, and the new one's 5
    assert tap.lookup("iris", ["r1"]).keys() == {"r1"}  # the log kept what the first wrote


def test_a_child_killed_twice_is_replaced_at_once_then_after_a_growing_wait(
    tap: TapProcess, labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarts were at most one per 10 s: a child killed twice within 10 s left the server
    unmonitored for up to 10 s. Now one that had been running is replaced at once, and only
    one that keeps dying young waits, 1 s, 2 s, ... (``RESTART_SECONDS``)."""
    monkeypatch.setattr(tap_restarts, "STEADY_SECONDS", 1.0)
    tap.take(batches(labelled_iris, 0, 10))
    assert requests(tap) == 10
    time.sleep(1.0)  # running steadily

    def kill() -> int:
        assert tap.pid is not None
        killed = tap.pid
        os.kill(killed, signal.SIGKILL)
        tap._process.join(10)
        return killed

    first = kill()
    tap.take(batches(labelled_iris, 10, 5))
    assert tap.restarts == 1 and tap.pid != first and tap.dropped == 0
    kill()  # again at once: it died young, so the next waits RESTART_SECONDS
    tap.take(batches(labelled_iris, 15, 5))
    # The 5 it took and never told, and these 5, while none runs.
    assert tap.restarts == 1 and tap.dropped == 10
    time.sleep(tap_restarts.RESTART_SECONDS + 0.1)
    tap.take(batches(labelled_iris, 20, 5))
    assert tap.restarts == 2
    kill()  # and again: twice as long
    tap.take(batches(labelled_iris, 25, 5))
    time.sleep(tap_restarts.RESTART_SECONDS + 0.1)
    tap.take(batches(labelled_iris, 30, 5))
    # 5 + 5 + 5 while no child was there, and the 5 the second and the third took, never told.
    assert tap.restarts == 2 and tap.dropped == 25
    time.sleep(tap_restarts.RESTART_SECONDS)
    tap.take(batches(labelled_iris, 35, 5))
    assert tap.restarts == 3 and requests(tap) == 15  # the first child's 10 carried on


def test_a_question_that_keeps_failing_is_logged_once_not_each_time(
    labelled_iris: Registry, capfd: pytest.CaptureFixture[str]
) -> None:
    """With PostgreSQL down, each label post's failed lookup logged a full traceback."""
    tap = TapProcess(TapSpec(labelled_iris.address(), MonitorConfig()))  # its stderr: capfd's
    tap.take(batches(labelled_iris, 0, 10))
    assert tap.lookup("iris", ["r1"]).keys() == {"r1"}
    engine = labelled_iris.companion_engine("inference-log")
    with engine.begin() as conn:  # the log's database fails every read from now on
        conn.exec_driver_sql("ALTER TABLE inference_log_batches RENAME TO aside")
    engine.dispose()
    for _ in range(5):
        with pytest.raises(TapFailed, match="failed lookup: OperationalError"):
            tap.lookup("iris", ["missing"])
    tap.close()
    err = capfd.readouterr().err
    assert err.count("monitoring process: lookup failed") == 1
    assert err.count("no such table") < 10  # one traceback's mentions, not five


async def test_a_label_posted_to_a_hung_monitoring_process_gets_503_in_time(
    labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tap_process, "QUESTION_SECONDS", 1.0)
    async with monitored(labelled_iris) as served:
        assert isinstance(served.monitor.tap, TapProcess)
        ids = await send(served.client, np.repeat(ROWS, 2, axis=0), per_request=1)
        await asyncio.to_thread(served.monitor.flush)  # the child has answered
        hung = served.monitor.tap.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        try:
            asked = time.monotonic()
            label = {"request_id": ids[0], "label": 0}
            reply = await asyncio.wait_for(served.client.post("/api/feedback/iris", json=label), 15)
            assert time.monotonic() - asked < 5
            assert reply.status_code == 503
            assert "did not answer lookup in time" in reply.json()["error"]
        finally:
            _resume(hung)
        # The next question finds it dead and replaces it (its windows from the log).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            reply = await served.client.post("/api/feedback/iris", json=label)
            if reply.status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert reply.json() == {"accepted": 1, "unknown": []}
        assert served.monitor.tap.restarts == 1


def test_what_a_killed_child_took_after_it_last_told_is_counted_as_dropped(
    tap: TapProcess, labelled_iris: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor carries a dead child's totals on as it last told them: the requests it took
    after that were in no total and in no count (a tester lost some 0.3 s of them unsaid)."""
    monkeypatch.setattr(tap_restarts, "RESTART_SECONDS", 0.0)
    tap.take(batches(labelled_iris, 0, 10))
    assert requests(tap) == 10  # told
    tap.take(batches(labelled_iris, 10, 7))  # taken, never told
    tap.lookup("iris", ["none"])  # the child has them (it answers after every round before)
    assert tap.pid is not None
    os.kill(tap.pid, signal.SIGKILL)
    tap._process.join(10)
    tap.take(batches(labelled_iris, 17, 4))  # replaces the child
    assert tap.restarts == 1
    assert tap.dropped == 7
    assert requests(tap) == 14  # the 10 it told carry on
    os.kill(tap.pid, signal.SIGKILL)  # told all it took: nothing more is lost
    tap._process.join(10)
    tap.take(batches(labelled_iris, 21, 1))
    assert tap.restarts == 2 and tap.dropped == 7
