"""Rounds on their way to the monitoring process: what arrives is what was merged."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from modelpilot.monitoring.tap_batches import Merged
from modelpilot.monitoring.tap_wire import RoundDecoder, RoundEncoder
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model


@pytest.fixture
def versions(registry: Registry, iris_model_path: Path) -> list[ModelVersion]:
    return [register_model(registry, "iris", iris_model_path) for _ in range(2)]


def batch(version: ModelVersion, ids: list[str], first_time: float = 1.0) -> Merged:
    rows = list(range(1, len(ids) + 1))  # request i has i rows
    count = sum(rows)
    return Merged(
        version,
        ids,
        [first_time + i for i in range(len(ids))],
        rows,
        {"input-0": np.arange(count * 4.0).reshape(count, 4)},
        {"predict": np.arange(count) % 3, "label": np.array(["a", "b", "c"] * count)[:count]},
    )


def assert_same(got: Merged, sent: Merged) -> None:
    assert got.version.key == sent.version.key
    assert got.version.signature == sent.version.signature
    assert (got.request_ids, got.times, got.rows) == (sent.request_ids, sent.times, sent.rows)
    for name in ("inputs", "outputs"):
        arrays, expected = getattr(got, name), getattr(sent, name)
        assert list(arrays) == list(expected)
        for key, array in expected.items():
            assert arrays[key].dtype == array.dtype
            np.testing.assert_array_equal(arrays[key], array)


def test_a_round_arrives_as_it_was_merged(registry: Registry, versions: list[ModelVersion]) -> None:
    encoder, decoder = RoundEncoder(), RoundDecoder(registry)
    sent = [batch(versions[0], ["a", "b", "c"]), batch(versions[1], ["d"], 9.5)]
    blob, whole = encoder.encode(sent)
    assert whole == {versions[0].key, versions[1].key}
    got = decoder.decode(blob)
    assert len(got) == 2
    for one, expected in zip(got, sent, strict=True):
        assert_same(one, expected)


def test_versions_go_whole_once_then_by_key(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    encoder, decoder = RoundEncoder(), RoundDecoder(registry)
    first, whole = encoder.encode([batch(versions[0], ["a"])])
    encoder.sent(whole)
    second, again = encoder.encode([batch(versions[0], ["b"])])
    assert again == set()
    assert len(second) < len(first)  # the version is not in it
    assert pickle.loads(second)[0][0] == versions[0].key
    decoder.decode(first)
    [got] = decoder.decode(second)
    assert got.version.signature == versions[0].signature and got.request_ids == ["b"]


def test_a_round_that_never_reached_the_child_does_not_count_as_sent(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    encoder = RoundEncoder()
    _, whole = encoder.encode([batch(versions[0], ["a"])])  # dropped: sent() not called
    blob, again = encoder.encode([batch(versions[0], ["b"])])
    assert again == whole
    [got] = RoundDecoder(registry).decode(blob)
    assert got.version.key == versions[0].key


def test_a_child_told_only_a_key_looks_the_version_up(
    registry: Registry, versions: list[ModelVersion]
) -> None:
    encoder = RoundEncoder()
    encoder.sent({versions[1].key})  # as if an earlier child had been sent it
    blob, _ = encoder.encode([batch(versions[1], ["a"])])
    [got] = RoundDecoder(registry).decode(blob)
    assert got.version.key == versions[1].key
    assert got.version.signature == versions[1].signature


@pytest.mark.parametrize(
    "ids",
    [["a\nb", "c"], ["", "x", ""], ["naïve", "日本", "tab\there"]],
    ids=["newline", "empty", "unicode"],
)
def test_any_request_id_arrives_intact(
    registry: Registry, versions: list[ModelVersion], ids: list[str]
) -> None:
    blob, _ = RoundEncoder().encode([batch(versions[0], ids)])
    [got] = RoundDecoder(registry).decode(blob)
    assert got.request_ids == ids
