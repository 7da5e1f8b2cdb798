"""The inference log's PostgreSQL gone silent (not refusing) for a while: the monitoring
process's writes fail and wait to be written again, as they do when it refuses, its questions
are answered (failed) in time, and nothing it took is lost."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import make_url

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.model_monitor import MonitorConfig
from modelpilot.monitoring.tap import TapFailed
from modelpilot.monitoring.tap_process import QUESTION_SECONDS, TapProcess, TapSpec
from modelpilot.registry.database import companion_engine
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.database_proxy import DatabaseProxy
from tests.monitoring.test_tap_process import batches

SILENT_SECONDS = 35.0
"""As long as the tester's outage: several times the bound of a wait for the database (10 s)."""


def test_a_silent_log_database_costs_the_monitoring_process_nothing_it_took(
    proxy: DatabaseProxy,
    postgres_location: str,
    tmp_path: Path,
    iris_model_path: Path,
    iris_csv: Path,
) -> None:
    """A tester's server, its database silent for 35 s: the child hung in a log write with no
    bound, did not answer labelled_since in time, and was killed with the 571 requests it had
    not written (and its replacement too, in the next outage); refused, it lost none."""
    registry = Registry.open(proxy.url, tmp_path / "artifacts")
    register_model(registry, "iris", iris_model_path, reference=iris_csv)
    tap = TapProcess(TapSpec(registry.address(), MonitorConfig()))
    direct = Registry.open(postgres_location, tmp_path / "artifacts")  # makes the rounds
    taken = 0
    try:
        tap.take(batches(direct, taken, 5))
        taken += 5
        tap.write()  # the child's pool holds connections now, as a serving one's does
        child = tap.pid

        proxy.pause()
        silent_until = time.monotonic() + SILENT_SECONDS
        answers = []
        while time.monotonic() < silent_until:
            tap.take(batches(direct, taken, 5))
            taken += 5
            asked = time.monotonic()
            try:
                tap.labelled_since(0.0, 10)
            except TapFailed as exc:
                answers.append((time.monotonic() - asked, exc.message))
            time.sleep(0.5)
        assert answers, "nothing failed while the database was silent"
        for seconds, message in answers:
            assert "does not answer for now" in message, message  # failed, not killed
            assert seconds < QUESTION_SECONDS
        assert tap.pid == child and tap.restarts == 0

        proxy.resume()
        deadline = time.monotonic() + 30
        while True:  # written again, at the latest with the first write after the silence
            try:
                tap.write()
                tap.labelled_since(0.0, 10)
                break
            except TapFailed:
                assert time.monotonic() < deadline, "the log never answered again"
                time.sleep(0.5)
        assert tap.pid == child and tap.restarts == 0 and tap.unlogged == 0
        assert tap.dropped == 0
    finally:
        tap.close()
        registry.close()
        direct.close()
    url = make_url(proxy.url).set(drivername="postgresql+psycopg")
    engine = companion_engine(url, "inference-log")
    try:
        assert InferenceLog(engine).count("iris") == taken
    finally:
        engine.dispose()
