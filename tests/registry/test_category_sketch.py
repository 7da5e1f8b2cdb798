"""The sketch of a categorical profile's pooled tail: a Bloom filter of its values, stable in
every process, and stored with the profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd

from modelpilot.registry.category_sketch import (
    FALSE_POSITIVE_RATE,
    MAX_SKETCH_BYTES,
    TailSketch,
    text_hashes,
)
from modelpilot.registry.profile import TOP_CATEGORIES, FeatureProfile
from modelpilot.registry.profile_formats import stored_sketch

IDS = [f"id{i:06d}" for i in range(14_600)]
ODD = ["", "é" * 40, "x" * 5_000, "a\x00", "\u4e2d\u6587", "\U0001f600", "a", "ab"]


def test_every_tail_value_is_held_and_about_one_new_value_in_a_hundred_is() -> None:
    sketch = TailSketch.build(IDS, once=0, twice=0, rows=0)
    assert sketch.held(IDS).all()  # no false "new": a tail value never reads unseen
    assert len(sketch.bits) < 20_000  # 14,600 values in about 17 KB
    new = [str(uuid.UUID(int=int(i) * 7919 + 1)) for i in range(50_000)]
    rate = float(sketch.held(new).mean())
    assert 0.5 * FALSE_POSITIVE_RATE < rate < 1.5 * FALSE_POSITIVE_RATE
    assert abs(sketch.false_positive_rate - FALSE_POSITIVE_RATE) < 0.002


def test_one_value_or_a_few_read_as_a_batch_of_many_does() -> None:
    """A request of a few values is checked in plain Python, a batch by NumPy: the two must
    agree, bit for bit, on any text."""
    sketch = TailSketch.build(IDS[:2_000] + ODD, once=0, twice=0, rows=0)
    probe = IDS[1_500:2_500] + ODD + [str(uuid.UUID(int=i)) for i in range(3_000)]
    batch = sketch.held(probe)
    assert batch.tolist() == [bool(sketch.held([key])[0]) for key in probe]
    assert batch[:500].all() and batch[-3_008:-3_000].all()


def test_a_text_hashes_alike_in_any_batch_and_in_any_process() -> None:
    """Python's own hash of text is salted per process: the sketch's must not be."""
    alone = [int(text_hashes([key])[0]) for key in ODD]
    together = [int(h) for h in text_hashes([*ODD, "y" * 300])[: len(ODD)]]
    assert alone == together
    script = (
        "import json, sys; from modelpilot.registry.category_sketch import text_hashes; "
        "print(json.dumps([int(h) for h in text_hashes(json.loads(sys.argv[1]))]))"
    )
    seen = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script, json.dumps(ODD)],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for seed in ("1", "2")
    ]
    assert seen[0] == seen[1] == alone
    assert int(text_hashes(["id000000"])[0]) == 3_603_627_248_827_332_775  # as stored: pinned


def test_a_tail_past_the_cap_keeps_the_cap_and_says_its_higher_rate() -> None:
    keys = [f"k{i}" for i in range(400_000)]
    sketch = TailSketch.build(keys, once=0, twice=0, rows=0)
    assert len(sketch.bits) == MAX_SKETCH_BYTES
    assert (
        0.03 < sketch.false_positive_rate < 0.1 and sketch.caught == 1 - sketch.false_positive_rate
    )
    assert sketch.held(keys[::97]).all()


def test_a_profile_of_many_categories_keeps_the_sketch_through_storage() -> None:
    rng = np.random.default_rng(0)
    values = pd.Series(rng.choice(np.array(IDS, dtype=object), 20_000))
    feature = FeatureProfile.categorical("cust", values)
    assert len(feature.categories) == TOP_CATEGORIES and feature.other is not None
    sketch = feature.tail_sketch
    assert sketch is not None and sketch.rows == 20_000
    distinct = values.value_counts()
    assert sketch.values == distinct.size - TOP_CATEGORIES
    assert (sketch.once, sketch.twice) == ((distinct == 1).sum(), (distinct == 2).sum())
    assert sketch.held([k for k in distinct.index if k not in feature.categories]).all()
    stored = json.loads(json.dumps(feature.to_dict()))
    assert FeatureProfile.from_dict(stored) == feature


def test_a_profile_stored_before_the_sketch_reads_without_one() -> None:
    feature = FeatureProfile.categorical("cust", pd.Series(IDS * 2))
    stored = feature.to_dict()
    del stored["tail_sketch"]
    assert stored_sketch(stored) is None
    assert FeatureProfile.from_dict(stored).tail_sketch is None


def test_a_profile_that_names_every_category_has_no_sketch() -> None:
    feature = FeatureProfile.categorical("color", pd.Series(["red", "blue"] * 50))
    assert feature.tail_sketch is None and "tail_sketch" not in feature.to_dict()
