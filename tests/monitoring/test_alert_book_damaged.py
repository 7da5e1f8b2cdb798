"""An alert book that cannot be read is kept aside, not overwritten, and the ids of the alerts
it shows firing are said: they stay open at the webhook's receiver, to be closed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelpilot.monitoring.alert_book_store import BookFile, book_store, server_name
from modelpilot.registry.store import Registry
from tests.monitoring.test_alert_book_store import drift, errors, keeper


def _two_firing(store: BookFile) -> tuple[str, str]:
    first = keeper(store)
    first.update([drift(True), errors(True)], now=1000.0)
    first.close()
    ids = tuple(sorted(a.id for a in first.state().active))
    assert len(ids) == 2
    return ids  # type: ignore[return-value]


@pytest.mark.parametrize("damage", ["truncated", "history null"])
def test_a_damaged_book_is_kept_aside_and_its_firing_ids_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """Tester "crash" F1: the book cut to 200 bytes (or with ``"history": null``) was
    replaced by the new one, and the firing alert's id was lost for good."""
    store = BookFile(tmp_path / "alert-books", "test-host:8000")
    ids = _two_firing(store)
    text = store.path.read_text()
    if damage == "truncated":
        # Cut inside the second active alert: the first is whole, the second's id is read.
        damaged = text[: max(text.index(i) + len(i) + 5 for i in ids)]
    else:
        damaged = json.dumps({**json.loads(text), "history": None})
    store.path.write_text(damaged)

    kept = keeper(store)
    kept.update([errors(False)], now=1100.0)  # saves the new book
    kept.close()
    aside = list(store.path.parent.glob(f"{store.path.name}.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == damaged
    assert store.path.read_text() != damaged
    assert "cannot be read" in caplog.text and str(aside[0]) in caplog.text
    for alert_id in ids:
        assert alert_id in caplog.text
    assert "(data_drift, iris:1)" in caplog.text or damage == "truncated"


def test_a_book_of_no_readable_alert_is_kept_aside_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BookFile(tmp_path / "alert-books", "test-host:8000")
    store.path.parent.mkdir(parents=True)
    store.path.write_text("\x00\x00garbage")
    keeper(store).close()
    assert len(list(store.path.parent.glob("*.damaged-*"))) == 1
    assert "no alert id could be read from it" in caplog.text


def test_a_damaged_book_row_of_postgresql_is_kept_aside(
    postgres_location: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry.open(postgres_location, tmp_path / "artifacts")
    name = server_name(8000, f"damaged-{tmp_path.name}")
    try:
        store = book_store(registry, name)
        assert store is not None
        first = keeper(store)
        first.update([drift(True)], now=1000.0)
        first.close()
        (fired,) = first.state().active
        store.save('{"format": 1, "active": [{"id": "' + fired.id + '", "rule": "data_dri')
        keeper(store).close()
        assert fired.id in caplog.text
        assert f"server {name + '.damaged-'!r}"[:-1] in caplog.text
    finally:
        store.close()
        registry.close()
