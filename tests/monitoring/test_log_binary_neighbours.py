"""One binary value in a round leaves the text of every other value in it text.

A tester sent ``color: "red"`` over REST while another client sent ``color: b"\\x89PNG"`` over
gRPC in the same monitoring round: the log gave the first back as ``b"red"``, and as ``"red"``
when it came alone. A column holding any bytes that are not UTF-8 is stored in base64 whole,
and every value of it was read back as bytes; each is now read as it would be in a column of
text: text where its bytes are UTF-8, bytes where not.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelpilot.monitoring.inference_log import InferenceLog
from modelpilot.monitoring.log_records import LogBatch, log_batch
from tests.monitoring.conftest import LOG_BOUND

PNG = b"\x89PNG\r\n\x1a\n"


def a_round(requests: int) -> LogBatch:
    """``requests`` one-row requests of a model with a BYTES input beside numbers: text (as
    REST hands it over, UTF-8 bytes), a missing value, and, in the last, a PNG's bytes."""
    colors = np.array([b"red", "blue", None] * requests, dtype=object)[:requests]
    colors[-1] = PNG
    pairs = np.array(
        [[b"caf\xc3\xa9", PNG if i == requests - 1 else b"x"] for i in range(requests)]
    )
    return log_batch(
        "multi",
        1,
        [f"r{i}" for i in range(requests)],
        [1_000.0 + i for i in range(requests)],
        [1] * requests,
        {
            "color": colors,
            "pair": pairs.astype(object),
            "count": np.arange(requests, dtype=np.int64),
        },
        {"echo": np.array([f"echo {i}" for i in range(requests)], dtype=object)},
    )


TEXT = ["red", "blue", None]
"""Request ``i``'s color (but the last's), as the log gives it back."""


@pytest.mark.parametrize("requests", [4, LOG_BOUND + 50], ids=["a round", "cut to the bound"])
def test_each_value_comes_back_text_or_bytes_on_its_own(log: InferenceLog, requests: int) -> None:
    """Also when the round is larger than the log's bound, and so written as its newest
    requests (decoded and encoded again)."""
    log.append([a_round(requests)])
    last = requests - 1
    ids = [f"r{i}" for i in range(last - 3, last + 1)]
    found = log.find("multi", ids)
    assert sorted(found) == sorted(ids)
    for i in range(last - 3, last):
        assert found[f"r{i}"].inputs == {
            "color": [TEXT[i % 3]],
            "pair": [["café", "x"]],
            "count": [i],
        }
        assert found[f"r{i}"].outputs == {"echo": [f"echo {i}"]}
    assert found[f"r{last}"].inputs == {"color": [PNG], "pair": [["café", PNG]], "count": [last]}
    window = log.recent("multi", limit=3)
    assert [e.inputs["color"] for e in window] == [
        [TEXT[(last - 2) % 3]],
        [TEXT[(last - 1) % 3]],
        [PNG],
    ]
