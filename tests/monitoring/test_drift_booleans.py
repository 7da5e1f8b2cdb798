"""A boolean feature is one feature however its values arrive: True, 1.0, 1 or "true"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import FeatureProfile, ReferenceProfile


def club(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"size": rng.normal(size=rows), "member": rng.random(rows) < 0.4})


def test_a_boolean_column_is_profiled_as_true_and_false_however_it_was_written() -> None:
    """Parquet and pandas give booleans; a CSV read as text gives the words as written."""
    flags = club(300, seed=0)["member"]
    expected = {"True": int(flags.sum()), "False": int((~flags).sum())}
    nullable = flags.astype("boolean")
    words = flags.map({True: "true", False: "FALSE"}).astype(object)
    for column in (flags, nullable, words, flags.astype(str)):
        profile = FeatureProfile.categorical("member", column)
        assert profile.kind == "categorical" and profile.categories == expected, column.dtype


def test_a_boolean_feature_counts_alike_in_every_form_it_arrives_in() -> None:
    """The tester's finding: the server receives a boolean as FP64 1.0/0.0, which was looked
    up as the category "1.0", unseen: PSI 17.7, JS 1.0, every boolean feature drifted."""
    reference, window = club(800, seed=1), club(300, seed=2)
    binning = ProfileBinning(ReferenceProfile.from_data(reference))
    flags = window["member"].to_numpy()
    forms = {
        "booleans": flags.astype(object),
        "numpy booleans": np.array(list(flags), dtype=object),
        "floats": flags.astype(np.float64),
        "whole numbers": flags.astype(np.int64).astype(object),
        "words": np.where(flags, "true", "false").astype(object),
        "text of numbers": np.where(flags, "1", "0").astype(object),
        "bytes": np.where(flags, b"True", b"False").astype(object),
    }
    counted = {}
    for form, values in forms.items():
        rows = np.column_stack([window["size"].to_numpy(), values])
        if form == "floats":
            rows = rows.astype(np.float64)  # one float array of every feature, as v2 FP64
        counts, sums = binning.count(rows)
        counted[form] = counts.tolist()
        member = binning.report(counts, sums, rows, DriftThresholds()).features[1]
        assert not member.drifted and member.unseen_share == 0.0, (form, member.reason)
    assert all(c == counted["booleans"] for c in counted.values()), counted


def test_a_profile_made_before_the_rule_reads_booleans_as_its_words() -> None:
    """A profile stored with the words a CSV held ("true", "false") keeps working."""
    profile = ReferenceProfile.from_data(club(400, seed=3))
    stored = profile.to_dict()
    member = stored["features"][1]
    member["categories"] = {k.lower(): v for k, v in member["categories"].items()}
    binning = ProfileBinning(ReferenceProfile.from_dict(stored))
    window = club(200, seed=4).to_numpy(dtype=np.float64)
    counts, sums = binning.count(window)
    report = binning.report(counts, sums, window, DriftThresholds())
    assert not report.features[1].drifted and report.features[1].unseen_share == 0.0


def test_a_file_with_booleans_compared_with_itself_has_no_drift() -> None:
    """``modelpilot drift bo_ref.parquet bo_ref.parquet`` flagged the boolean column: the
    frame's columns are all numbers to pandas, so they were read as one float array."""
    frame = club(800, seed=5)
    report = compare(ReferenceProfile.from_data(frame), [frame]).report
    assert report.drifted_features == [] and not report.dataset_drift
    member = report.features[1]
    assert member.psi < 1e-9 and member.js_distance < 1e-9
