"""The inference log on both backends: written in batches, found by id, labelled, bounded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, select

from modelpilot.errors import RegistryError
from modelpilot.monitoring.inference_log import InferenceLog, batch_row, batches, open_log
from modelpilot.monitoring.log_locator import PLACES_PER_ID
from modelpilot.monitoring.log_records import (
    LogEntry,
    jsonable,
    log_batch,
    pack_arrays,
    unpack_arrays,
)
from modelpilot.protocol.types import MAX_REQUEST_ID
from modelpilot.registry.store import Registry


def entry(request_id: str, model: str = "m", version: int = 1, at: float = 0.0) -> LogEntry:
    return LogEntry(request_id, model, version, at, {"x": [[1.0, 2.0]]}, {"y": [1]})


def test_entries_round_trip_and_take_labels(log: InferenceLog) -> None:
    log.write([entry("a"), entry("b"), entry("c", model="other")])
    found = log.find("m", ["a", "b", "c", "zzz"])
    assert sorted(found) == ["a", "b"]  # "c" belongs to another model
    assert found["a"].inputs == {"x": [[1.0, 2.0]]} and found["a"].outputs == {"y": [1]}
    log.set_labels("m", {"a": [1], "b": "cat"})
    labelled = log.find("m", ["a", "b"])
    assert labelled["a"].label == [1] and labelled["b"].label == "cat"
    assert log.count() == 3 and log.count("m") == 2


def test_the_longest_request_id_a_server_takes_is_logged_and_labelled(log: InferenceLog) -> None:
    longest = "é" * MAX_REQUEST_ID  # PostgreSQL's column counts characters, not bytes
    log.write([entry(longest)])
    log.set_labels("m", {longest: 1})
    assert log.find("m", [longest])[longest].label == 1


def test_log_is_bounded_to_the_newest_rows(log: InferenceLog) -> None:
    for start in range(0, 250, 25):
        log.write([entry(f"r{i}", at=float(i)) for i in range(start, start + 25)])
    assert log.count() <= 100 + 25  # trimmed after each write passing a tenth of the bound
    log.trim()
    assert log.count() == 100
    newest = log.recent("m", limit=3)
    assert [e.request_id for e in newest] == ["r247", "r248", "r249"]
    assert log.find("m", ["r0"]) == {}


def test_recent_filters_by_version_and_time(log: InferenceLog) -> None:
    log.write([entry("a", version=1, at=10), entry("b", version=2, at=20), entry("c", at=30)])
    assert [e.request_id for e in log.recent("m", version=1)] == ["a", "c"]
    assert [e.request_id for e in log.recent("m", since=15)] == ["b", "c"]


def test_jsonable_handles_nan_bytes_and_matrices() -> None:
    arrays = {
        "f": np.array([[1.0, np.nan]]),
        "s": np.array([b"a", b"b"], dtype=object),
        "i": np.array([1, 2], dtype=np.int64),
    }
    assert jsonable(arrays) == {"f": [[1.0, None]], "s": ["a", "b"], "i": [1, 2]}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_log_written_before_row_counts_is_still_read(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        location, key = str(tmp_path / "registry"), "INTEGER PRIMARY KEY"
    else:
        location, key = request.getfixturevalue("postgres_location"), "BIGSERIAL PRIMARY KEY"
    registry = Registry.open(location, tmp_path / "artifacts")
    engine = registry.companion_engine("inference-log")
    with engine.begin() as conn:  # the first layout: one JSON object per request, not packed
        conn.exec_driver_sql(
            f"CREATE TABLE inference_log_batches (id {key}, model VARCHAR(256) NOT NULL, "
            "version INTEGER NOT NULL, created_at FLOAT NOT NULL, size INTEGER NOT NULL, "
            "request_ids TEXT NOT NULL, times TEXT NOT NULL, inputs TEXT NOT NULL, "
            "outputs TEXT NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO inference_log_batches (model, version, created_at, size, request_ids, "
            "times, inputs, outputs) VALUES ('m', 1, 5.0, 2, '[\"a\", \"b\"]', '[5.0, 6.0]', "
            '\'[{"x": [[1.0, 2.0]]}, {"x": [[3.0, 4.0]]}]\', \'[{"y": [1]}, {"y": [0]}]\')'
        )
    log = InferenceLog(engine)
    try:
        log.write([entry("c", at=7.0)])
        found = log.find("m", ["c"])
        assert found["c"].inputs == {"x": [[1.0, 2.0]]}
        history = log.recent("m")
        assert [e.request_id for e in history] == ["a", "b", "c"]
        assert history[1].inputs == {"x": [[3.0, 4.0]]} and history[1].outputs == {"y": [0]}
    finally:
        log.close()
        registry.close()


def test_the_same_id_is_found_per_model_and_newest_first(log: InferenceLog) -> None:
    log.write([entry("a", at=1.0), entry("a", model="other", version=3)])
    log.write([entry("a", version=2, at=2.0)])  # the client sent id "a" again
    assert log.find("m", ["a"])["a"].version == 2
    assert log.find("other", ["a"])["a"].version == 3


def test_requests_written_after_a_lookup_are_found_by_the_next(log: InferenceLog) -> None:
    log.write([entry("a")])
    assert sorted(log.find("m", ["a", "b"])) == ["a"]
    log.write([entry("b")])
    assert sorted(log.find("m", ["a", "b"])) == ["a", "b"]


def test_a_batch_id_given_out_again_is_not_taken_for_the_old_batch(tmp_path: Path) -> None:
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    engine = registry.companion_engine("inference-log")
    log = InferenceLog(engine)
    try:
        log.write([entry("a")])
        assert sorted(log.find("m", ["a"])) == ["a"]
        with engine.begin() as conn:  # emptied: plain SQLite rowids would start at 1 again
            conn.exec_driver_sql("DELETE FROM inference_log_batches")
        log.write([entry("b")])
        assert sorted(log.find("m", ["a", "b"])) == ["b"]
    finally:
        log.close()
        registry.close()


def test_a_batch_committed_after_a_later_one_is_still_found(
    postgres_location: str, tmp_path: Path
) -> None:
    """On PostgreSQL a lower batch id can become visible after a higher one was read."""
    registry = Registry.open(postgres_location, tmp_path / "artifacts")
    engine = registry.companion_engine("inference-log")
    log = InferenceLog(engine)
    late = log_batch("m", 1, ["late"], [1.0], [1], {"x": np.ones((1, 2))}, {})
    try:
        with engine.begin() as slow:  # another process's round, committed late
            slow.execute(insert(batches), [batch_row(late)])
            log.write([entry("early")])
            assert sorted(log.find("m", ["early", "late"])) == ["early"]
        assert sorted(log.find("m", ["early", "late"])) == ["early", "late"]
    finally:
        log.close()
        registry.close()


def test_what_labels_are_looked_up_in_stays_bounded(log: InferenceLog) -> None:
    for start in range(0, 1000, 50):
        log.write([entry(f"r{i}") for i in range(start, start + 50)])
        assert f"r{start}" in log.find("m", [f"r{start}"])
    assert sorted(log.find("m", ["r0", "r999"])) == ["r999"]
    assert len(log._locator) <= 2 * log.max_rows + 50  # not every request ever written


def test_one_id_sent_with_every_request_keeps_its_lookup_small(log: InferenceLog) -> None:
    """A client that sends every request with the same id grew that id's list of places
    without end (the bound counted ids, not places), and every label for it read them all."""
    for version in range(1, 61):
        log.write([entry("dup", version=version)])
        assert log.find("m", ["dup"])["dup"].version == version  # the newest, every time
    places = log._locator.candidates(["dup"])["dup"]
    assert len(places) <= PLACES_PER_ID


def test_trimming_drops_the_labels_of_the_requests_it_drops(log: InferenceLog) -> None:
    log.write([entry(f"r{i}") for i in range(60)])
    log.set_labels("m", {"r0": 1, "r59": 0})
    log.write([entry(f"s{i}") for i in range(60)])  # trims the first 60 (bound: 100)
    assert log.count() == 60 and log.find("m", ["r59"]) == {}
    log.write([entry("r0")])  # the id again, in a new request: its old label is gone
    assert log.find("m", ["r0"])["r0"].label is None
    assert log.find("m", ["s0"])["s0"].label is None
    assert log.recent("m", limit=1)[0].request_id == "r0"


def test_a_log_with_the_old_per_request_index_loses_it(tmp_path: Path) -> None:
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    engine = registry.companion_engine("inference-log")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE inference_log_requests (request_id VARCHAR(128), batch_id INTEGER, "
            "position INTEGER, PRIMARY KEY (request_id, batch_id, position))"
        )
    log = InferenceLog(engine)
    try:
        log.write([entry("a")])
        assert sorted(log.find("m", ["a"])) == ["a"]
        with engine.connect() as conn:
            tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        assert "inference_log_requests" not in tables
    finally:
        log.close()
        registry.close()


def test_numbers_are_stored_packed_and_strings_as_json(log: InferenceLog) -> None:
    rows = np.array([[1.5, np.nan], [3.0, 4.0], [-1.0, 2.5]])
    numbers = log_batch(
        "m",
        1,
        ["a", "b"],
        [1.0, 2.0],
        [1, 2],
        {"x": rows, "flag": np.array([True, False, True])},
        {"y": np.array([[1, 0], [0, 1], [1, 1]], dtype=np.int32)},
    )
    assert numbers.packed is not None and numbers.inputs == numbers.outputs == ""
    words = log_batch(
        "m", 1, ["c"], [3.0], [1], {"x": rows[:1]}, {"y": np.array(["cat"], dtype=object)}
    )
    assert words.packed is None and '"cat"' in words.outputs
    log.append([numbers, words])
    found = log.find("m", ["a", "b", "c"])
    assert found["a"].inputs == {"x": [[1.5, None]], "flag": [True]}  # NaN reads as null
    assert found["b"].inputs == {"x": [[3.0, 4.0], [-1.0, 2.5]], "flag": [False, True]}
    assert found["b"].outputs == {"y": [[0, 1], [1, 1]]}
    assert found["c"].outputs == {"y": ["cat"]}
    inputs, outputs = unpack_arrays(numbers.packed)
    assert inputs["x"].dtype == np.float64 and outputs["y"].dtype == np.int32
    np.testing.assert_array_equal(inputs["x"], rows)


def test_packing_keeps_strided_empty_and_scalar_arrays_as_they_were() -> None:
    strided = np.arange(12.0).reshape(3, 4)[:, ::2]
    empty, scalar = np.zeros((0, 3), np.int32), np.array(1.5, np.float32)
    blob = pack_arrays({"a": strided, "b": np.array([True, False])}, {"c": empty, "d": scalar})
    assert blob is not None
    inputs, outputs = unpack_arrays(blob)
    np.testing.assert_array_equal(inputs["a"], strided)
    assert inputs["b"].dtype == bool and inputs["b"].tolist() == [True, False]
    assert outputs["c"].shape == (0, 3) and outputs["c"].dtype == np.int32
    assert outputs["d"].shape == () and outputs["d"] == np.float32(1.5)


def test_an_embedded_log_keeps_contents_in_segments_that_go_when_trimmed(
    tmp_path: Path,
) -> None:
    """Two writers (two servers' monitoring processes) on one SQLite log: the one that trims
    deletes the other's segment once no batch in it is left, and the other starts anew."""
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    first = InferenceLog(registry.companion_engine("inference-log"), max_rows=100)
    second = InferenceLog(registry.companion_engine("inference-log"), max_rows=100)
    folder = tmp_path / "registry" / "inference-log.segments"
    try:
        first.write([entry(f"a{i}") for i in range(60)])
        with registry.companion_engine("inference-log").connect() as conn:
            row = conn.execute(select(batches)).mappings().one()
        assert row["request_ids"] == "" and row["packed"] is None  # contents are elsewhere
        assert [p.name for p in folder.iterdir()] == [row["segment"]]
        assert row["segment_length"] == (folder / row["segment"]).stat().st_size

        second.write([entry(f"b{i}") for i in range(100)])  # trims all of the first's
        assert [p.name for p in folder.iterdir()] != [row["segment"]]
        assert first.find("m", ["a0", "b0"]).keys() == {"b0"}
        first.write([entry("c")])  # into a new segment: its own was deleted
        assert len(list(folder.iterdir())) == 2
        assert sorted(second.find("m", ["c", "b99"])) == ["b99", "c"]
        assert second.find("m", ["c"])["c"].inputs == {"x": [[1.0, 2.0]]}
    finally:
        first.close()
        second.close()
        registry.close()


def test_a_batch_whose_segment_has_gone_is_missing_not_an_error(tmp_path: Path) -> None:
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    log = InferenceLog(registry.companion_engine("inference-log"))
    try:
        log.write([entry("a")])
        log.set_labels("m", {"a": 1})
        for path in (tmp_path / "registry" / "inference-log.segments").iterdir():
            path.unlink()
        log.write([entry("b")])
        assert sorted(log.find("m", ["a", "b"])) == ["b"]
        assert [e.request_id for e in log.recent("m")] == ["b"]
        assert log.trim() == 0 and log.count() == 2  # its row stays until trimmed
        log.max_rows = 1
        assert log.trim() == 1 and [e.request_id for e in log.recent("m")] == ["b"]
    finally:
        log.close()
        registry.close()


def _rows(registry: Registry) -> list[dict[str, Any]]:
    with registry.companion_engine("inference-log").connect() as conn:
        return [dict(r) for r in conn.execute(select(batches).order_by(batches.c.id)).mappings()]


def test_a_damaged_segment_costs_its_batches_not_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tester overwrote 100 bytes in the middle of a segment file: every read of the log
    that passed it (a restore, a label's lookup) raised, and the monitoring process died at
    each start. Now the batches it damaged read as missing, and one line names the file."""
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    log = InferenceLog(registry.companion_engine("inference-log"))
    try:
        ids = [[f"r{b}-{i}" for i in range(20)] for b in range(5)]
        for batch in ids:  # a batch each, one after the other in one segment file
            log.write([entry(i) for i in batch])
        log.set_labels("m", {i: 1 for batch in ids for i in batch})
        rows = _rows(registry)
        path = tmp_path / "registry" / "inference-log.segments" / rows[0]["segment"]
        size = path.stat().st_size
        with open(path, "r+b") as file:
            file.seek(size // 2)
            file.write(b"#" * 100)
        hit = [
            n
            for n, row in enumerate(rows)
            if row["segment_offset"] < size // 2 + 100
            and size // 2 < row["segment_offset"] + row["segment_length"]
        ]
        assert hit and len(hit) < 5
        intact = [i for n, batch in enumerate(ids) if n not in hit for i in batch]

        caplog.set_level(logging.ERROR)
        found = log.find("m", [i for batch in ids for i in batch])
        assert sorted(found) == sorted(intact)
        assert all(found[i].label == 1 for i in intact)
        assert sorted(e.request_id for e in log.recent("m")) == sorted(intact)
        assert log.unreadable == len(hit)  # each counted once, however often it is read
        said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
        assert len(said) == 1 and str(path) in said[0]
        log.max_rows = 20
        assert log.trim() == 80  # trimming reads their ids to drop their labels: no error
    finally:
        log.close()
        registry.close()


def test_a_batch_whose_contents_do_not_decode_is_skipped(
    log: InferenceLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The same on PostgreSQL, whose rows hold the contents: a damaged row is skipped."""
    log.write([entry("a"), entry("b")])
    log.write([entry("c")])
    with log._engine.begin() as conn:
        first = conn.execute(select(batches).order_by(batches.c.id)).mappings().first()
        assert first is not None
        if first["segment"] is None:
            conn.execute(batches.update().where(batches.c.id == first["id"]).values(times="[1,"))
    if first["segment"] is not None:
        folder = Path(str(log._engine.url.database)).with_suffix(".segments")
        with open(folder / first["segment"], "r+b") as file:
            file.seek(first["segment_offset"] + 48)  # past the lengths: the request ids
            file.write(b"#")
    caplog.set_level(logging.ERROR)
    assert sorted(log.find("m", ["a", "b", "c"])) == ["c"]
    assert [e.request_id for e in log.recent("m")] == ["c"]
    assert log.unreadable == 1
    assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 1


def test_a_log_whose_database_cannot_be_opened_is_left_out_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry.open(str(tmp_path / "registry"), tmp_path / "artifacts")
    log = InferenceLog(registry.companion_engine("inference-log"))
    log.write([entry("a")])
    log.close()
    database = tmp_path / "registry" / "inference-log.db"
    with open(database, "r+b") as file:
        file.write(b"x" * 64)  # its header: "file is not a database"
    caplog.set_level(logging.ERROR)
    assert open_log(registry.companion_engine("inference-log"), 100) is None
    [said] = [r.getMessage() for r in caplog.records]
    assert "inference-log.db" in said and "file is not a database" in said
    assert "monitoring carries on without the inference log" in said
    registry.close()


def test_a_postgresql_log_out_of_reach_is_not_left_out_for_good() -> None:
    """It may answer in a moment: the monitoring process dies, and its replacement (after a
    wait that grows) opens the log again, rather than run without one until a restart."""
    pytest.importorskip("psycopg")
    nobody = create_engine("postgresql+psycopg://postgres@127.0.0.1:21299/none")
    with pytest.raises(RegistryError, match="cannot open the inference log"):
        open_log(nobody, 100)
