"""A reference profile's stored form: small JSON, its numbers as bytes, and every release's
profiles read back as they were."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelpilot.registry.profile import ReferenceProfile, outcome_profile
from modelpilot.registry.profile_storage import (
    PART_BYTES,
    PROFILE_FORMAT,
    StoredProfileError,
    parts,
    read_stored,
    stored_form,
)


def mixed_profile() -> ReferenceProfile:
    """Every kind of column a profile holds, and outcomes of both kinds."""
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "gappy": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "empty": np.full(n, np.nan),
            "constant": np.full(n, 3.0),
            "count": rng.integers(-(2**62), 2**62, size=n),
            "small": rng.integers(0, 5, size=n),
            "nullable": pd.array(np.where(rng.random(n) < 0.1, None, 7), dtype="Int64"),
            "f32": rng.normal(size=n).astype(np.float32),
            "colour": rng.choice(["red", "green", "blue"], size=n),
            "user": [f"user{i}" for i in rng.integers(0, 1500, size=n)],
            "flag": rng.random(n) < 0.3,
        }
    )
    profile = ReferenceProfile.from_data(frame)
    predictions = outcome_profile("predict", rng.normal(size=n), categorical=False)
    target = outcome_profile("label", rng.integers(0, 3, size=n), categorical=True)
    return profile.with_outcomes(predictions, target)


def test_a_profile_comes_back_as_it_was() -> None:
    profile = mixed_profile()
    data, arrays = stored_form(profile)
    kinds = {c if isinstance(c, str) else "json" for c in data["sample"]["columns"]}
    assert kinds == {"<f8", "<i8", "json"}  # floats, integers, the rest
    text = json.dumps(data, allow_nan=False)  # what the JSON column holds
    back = read_stored(json.loads(text), arrays)
    assert back == profile
    assert [type(v) for v in back.sample[0]] == [type(v) for v in profile.sample[0]]
    assert back.feature("user").tail_sketch == profile.feature("user").tail_sketch


def test_the_numbers_are_bytes_and_the_json_is_small() -> None:
    """A numeric feature's 1,024-value sketch took some 20 KB of JSON: a model of 2,000
    features stored 55 MB, which a serving process decoded in one call of 3 s."""
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.from_data(rng.normal(size=(3000, 50)))
    data, arrays = stored_form(profile)
    assert data["format"] == PROFILE_FORMAT
    assert len(json.dumps(data)) < 300 * 50
    numbers = 50 * (15 + 15 + 11 + 10 + 10 + 1024) + 256 * 50  # the features', the sample's
    assert len(arrays) == 8 * numbers
    assert len(json.dumps(profile.to_dict())) > 20 * len(json.dumps(data))


def test_a_sample_of_awkward_rows_is_kept_as_json() -> None:
    profile = ReferenceProfile.from_data(np.arange(6.0).reshape(3, 2))
    ragged = ReferenceProfile(profile.features, 3, [[1.0, 2.0], [3.0]])
    assert read_stored(*stored_form(ragged)) == ragged
    empty = ReferenceProfile(profile.features, 0, [])
    assert read_stored(*stored_form(empty)) == empty


def test_a_profile_of_an_earlier_release_reads_as_it_did() -> None:
    profile = mixed_profile()
    assert read_stored(json.loads(json.dumps(profile.to_dict())), b"") == profile


def test_a_newer_format_and_arrays_that_do_not_fit_are_refused() -> None:
    profile = ReferenceProfile.from_data(np.arange(20.0).reshape(10, 2))
    data, arrays = stored_form(profile)
    with pytest.raises(StoredProfileError, match="newer release of ModelPilot"):
        read_stored({**data, "format": PROFILE_FORMAT + 1}, arrays)
    with pytest.raises(StoredProfileError, match="cut short"):
        read_stored(data, arrays[:-8])
    with pytest.raises(StoredProfileError, match="8 bytes more"):
        read_stored(data, arrays + bytes(8))


def test_the_arrays_are_stored_in_parts() -> None:
    arrays = bytes(range(256)) * (PART_BYTES // 128 + 3)
    stored = list(parts(arrays))
    assert [len(p) for p in stored] == [PART_BYTES, PART_BYTES, 3 * 256]
    assert b"".join(stored) == arrays
    assert list(parts(b"")) == []
