"""The file names of the alert books beside a registry directory (``book_file_name``): each
server name has a file of its own, and a book kept under the former name is found."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelpilot.monitoring.alert_book_store import BookFile, decode
from modelpilot.monitoring.alert_keeper import AlertKeeper
from modelpilot.monitoring.alerts import AlertRules, Condition

DRIFT = Condition("data_drift", "iris:1", True, "warning", "1 of 4 features drifted: x0", 0.25)


def keeper(store: BookFile, server: str) -> AlertKeeper:
    return AlertKeeper(None, None, AlertRules(keep_firing_seconds=60.0), store=store, server=server)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("東京", "大阪"),
        ("eu/1", "eu_1"),
        ("web server", "web_server"),
        ('srv<"x">', "srv__x__"),
        ("vm:8000", "vm_8000"),
    ],
)
def test_distinct_names_keep_distinct_books(tmp_path: Path, one: str, other: str) -> None:
    """The tester's 東京 and 大阪 shared ``__.json``: the one started last took the other's
    firing alert over, for a model it did not serve."""
    first = BookFile(tmp_path / "alert-books", one)
    second = BookFile(tmp_path / "alert-books", other)
    assert first.path != second.path
    kept = keeper(first, one)
    kept.update([DRIFT], now=1000.0)
    kept.close()
    assert second.load() is None
    assert keeper(second, other).state().active == ()
    loaded = first.load()
    assert loaded is not None and loaded.active == kept.state().active


@pytest.mark.parametrize("name", ["prod-a", "vm_8000", "eu.west-1_A", "1"])
def test_a_plain_name_keeps_the_file_it_had(tmp_path: Path, name: str) -> None:
    """Books saved before are found after an upgrade."""
    assert BookFile(tmp_path, name).path == tmp_path / f"{name}.json"


def test_a_long_name_in_another_script_fits_a_file_name(tmp_path: Path) -> None:
    name = "東" * 200  # the longest a server name may be: 600 bytes in UTF-8
    store = BookFile(tmp_path / "alert-books", name)
    assert len(store.path.name.encode()) <= 255
    kept = keeper(store, name)
    kept.update([DRIFT], now=1000.0)
    kept.close()
    assert store.path.exists() and store.load() is not None


def test_a_book_kept_under_the_former_file_name_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server of the default name (``HOST:PORT``) kept its book as ``HOST_PORT.json``: after
    an upgrade it takes that book over (not announcing its alerts again), then keeps its own;
    the former file stays, as it may be another server's."""
    caplog.set_level(logging.INFO, "modelpilot.monitoring.alert_book_store")
    directory = tmp_path / "alert-books"
    before = keeper(BookFile(directory, "vm_8000"), "vm:8000")  # the former file name
    before.update([DRIFT], now=1000.0)
    before.close()
    former = directory / "vm_8000.json"
    kept_before = former.read_text()

    store = BookFile(directory, "vm:8000")
    after = keeper(store, "vm:8000")
    assert after.state().active == before.state().active
    assert f"read from {former}" in caplog.text
    after.update([DRIFT], now=1002.0)
    after.close()
    assert decode(store.path.read_text()).active == before.state().active
    assert former.read_text() == kept_before
