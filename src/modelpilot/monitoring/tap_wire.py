"""How a round of merged calls travels from the server to its monitoring process.

Pickling a ``Merged`` as it is costs the event loop most per request, not per round: every
request id is a string that pickle writes and memoizes on its own, every row count a number
of its own, and the model version goes whole, with its signature and metadata, every round.
So each batch is sent as a plain tuple in which

- the version is sent whole only the first time this child sees it, then as its key;
- the request ids are one string, joined by newlines (or a list, if an id holds one);
- the row counts are one number when every request had one row;
- the times stay a list of floats (which pickle writes without memoizing them), and the
  inputs and outputs the joined NumPy arrays they are.

Everything here runs in C but a few lines per batch; the child turns the tuples back into
``Merged`` batches.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from modelpilot.monitoring.tap_batches import Merged
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion

VersionKey = tuple[str, int]


class RoundEncoder:
    """The server's side: rounds as bytes, for one child (a new child needs a new encoder)."""

    def __init__(self) -> None:
        self._sent: set[VersionKey] = set()
        """Versions this child was sent whole."""

    def encode(self, batches: Sequence[Merged]) -> tuple[bytes, set[VersionKey]]:
        """The round as bytes, and the versions in it sent whole (see :meth:`sent`)."""
        new: set[VersionKey] = set()
        wire = []
        for merged in batches:
            version: ModelVersion | VersionKey = merged.version
            key = merged.version.key
            if key in self._sent:
                version = key
            else:
                new.add(key)
            ids: str | list[str] = "\n".join(merged.request_ids)
            if ids.count("\n") != len(merged.request_ids) - 1:  # an id holds a newline
                ids = merged.request_ids
            rows: list[int] | int = merged.rows
            if merged.rows.count(1) == len(merged.rows):  # one row each, the usual case
                rows = len(merged.rows)
            wire.append((version, ids, merged.times, rows, merged.inputs, merged.outputs))
        return pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL), new

    def sent(self, versions: set[VersionKey]) -> None:
        """The round that sent ``versions`` whole went into the pipe: send keys from now on.

        (A round dropped before it reached the pipe must not count, or the child would get
        keys of versions it never saw.)"""
        self._sent |= versions


class RoundDecoder:
    """The child's side: bytes back into batches, with the versions seen so far."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._versions: dict[VersionKey, ModelVersion] = {}

    def decode(self, data: bytes | memoryview) -> list[Merged]:
        batches = []
        for version, ids, times, rows, inputs, outputs in pickle.loads(data):
            batches.append(
                Merged(
                    self._version(version),
                    ids.split("\n") if isinstance(ids, str) else ids,
                    times,
                    [1] * rows if isinstance(rows, int) else rows,
                    inputs,
                    outputs,
                )
            )
        return batches

    def _version(self, version: Any) -> ModelVersion:
        if isinstance(version, ModelVersion):
            self._versions[version.key] = version
            return version
        known = self._versions.get(version)
        if known is None:  # not expected: every version is sent whole first
            known = self._versions[version] = self._registry.get_version(*version)
        return known
