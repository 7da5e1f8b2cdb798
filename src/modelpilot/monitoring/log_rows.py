"""The inference log's batch rows as stored and read back: whole in the table, or (in a SQLite
log) pointing at their contents in a segment file; a row that cannot be read is skipped as if
trimmed, counted once, and said once per file (see ``inference_log``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import URL

from modelpilot.errors import RegistryError
from modelpilot.monitoring import log_segments
from modelpilot.monitoring.log_records import DecodedBatch
from modelpilot.monitoring.log_tables import _MOVED, _place

logger = logging.getLogger("modelpilot.monitoring.inference_log")


class BatchRows:
    """One inference log's batch rows: put in segments as stored, decoded as read."""

    def __init__(self, segments: log_segments.Segments | None, url: URL) -> None:
        self._segments = segments
        self._url = url
        self.unreadable = 0
        """Batches skipped because they could not be read back (each counted once)."""
        self._skipped: set[int] = set()
        self._reported: set[str] = set()
        """Where unreadable batches were found (a segment file, or the table): each said once."""

    def stored(self, row: dict[str, Any]) -> dict[str, Any]:
        """A batch row as stored: its contents moved to a segment, in an embedded log."""
        if self._segments is None:
            return row
        place = self._segments.append(log_segments.encode(row))
        return {
            **row,
            **_MOVED,
            "segment": place.segment,
            "segment_offset": place.offset,
            "segment_length": place.length,
        }

    def decoded(self, row: Mapping[Any, Any]) -> DecodedBatch | None:
        """A stored row's batch, decoded; None if its segment has gone (the batch was trimmed
        since the row was read) or it cannot be read (see :meth:`_skip`)."""
        try:
            place = _place(row)
            if place is None:
                return DecodedBatch(row)
            fields = self._segments_to_read().read(place)
            return None if fields is None else DecodedBatch({**row, **fields})
        except _UNREADABLE as exc:
            self._skip(row, exc)
            return None

    def request_ids(self, row: Mapping[Any, Any]) -> list[str] | None:
        """A stored row's request ids (of ``_ID_COLUMNS``, and its id); None if its segment
        has gone or they cannot be read."""
        try:
            place = _place(row)
            fields = row if place is None else self._segments_to_read().read(place, "request_ids")
            if fields is None:
                return None
            ids = orjson.loads(fields["request_ids"])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError("its request ids are not a list of strings")
            return ids
        except _UNREADABLE as exc:
            self._skip(row, exc)
            return None

    def _skip(self, row: Mapping[Any, Any], exc: Exception) -> None:
        """Count a batch that cannot be read (once), and say so once per file: a damaged
        file (or table) may hold many, and each is read whenever a lookup or a restore
        passes it."""
        batch_id = int(row["id"])
        if batch_id in self._skipped:
            return
        self._skipped.add(batch_id)
        self.unreadable += 1
        place = row["segment"]
        if place is not None and self._segments is not None:
            where = str(self._segments.directory / str(place))
        else:
            where = f"table inference_log_batches of {self._url!r}"
        if where in self._reported:
            return
        self._reported.add(where)
        logger.error(
            "the inference log's batch %d cannot be read, so it is skipped as if trimmed "
            "(%s: %s); other such batches of %s are skipped without a word "
            "(modelpilot_monitor_failures_total counts them)",
            batch_id,
            where,
            exc,
            "this file" if place is not None else "the table",
        )

    def _segments_to_read(self) -> log_segments.Segments:
        if self._segments is None:
            raise RegistryError("the inference log holds segment rows but has no segment files")
        return self._segments


_UNREADABLE = (ValueError, TypeError, KeyError, IndexError, OverflowError)
"""What decoding damaged bytes raises (JSON, UTF-8 and segment errors are ValueErrors)."""
