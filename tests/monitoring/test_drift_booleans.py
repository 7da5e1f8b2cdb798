"""A boolean feature is one feature however its values arrive: True, 1.0, 1 or "true"; a
feature of text is its exact strings, "TRUE" another category than "true"."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import FeatureProfile, ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model


def club(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"size": rng.normal(size=rows), "member": rng.random(rows) < 0.4})


def test_a_boolean_column_is_profiled_as_true_and_false_however_it_was_written() -> None:
    """Parquet and pandas give booleans, nullable or not; a CSV's words true and false
    (any case) read as booleans too, unless the column is read as text."""
    flags = club(300, seed=0)["member"]
    expected = {"True": int(flags.sum()), "False": int((~flags).sum())}
    nullable = flags.astype("boolean")
    gappy = pd.Series([*flags, None, np.nan], dtype=object)
    csv = pd.read_csv(
        io.StringIO("member\n" + "\n".join(flags.map({True: "TRUE", False: "false"})))
    )
    for column in (flags, nullable, gappy, csv["member"]):
        profile = FeatureProfile.categorical("member", column)
        assert profile.kind == "categorical" and profile.categories == expected, column.dtype
        assert profile.boolean


def test_text_spelling_true_and_false_keeps_its_exact_strings() -> None:
    """The tester's finding: a model that one-hot encodes the text "true" and "false" sees
    "TRUE" as a category it never saw (its answers collapsed), but the profile counted both
    as one boolean, and a window of nothing but "TRUE" and "FALSE" read no drift."""
    flags = club(1000, seed=0)["member"]
    words = flags.map({True: "true", False: "false"}).astype(object)
    profile = FeatureProfile.categorical("member", words)
    assert profile.categories == {"false": int((~flags).sum()), "true": int(flags.sum())}
    assert profile.boolean is False
    assert FeatureProfile.from_dict(profile.to_dict()) == profile
    binning = ProfileBinning(ReferenceProfile((profile,), 1000, sample=[]))
    window = np.where(club(300, seed=1)["member"], "TRUE", "FALSE").astype(object).reshape(-1, 1)
    counts, sums = binning.count(window)
    member = binning.report(counts, sums, window, DriftThresholds()).features[0]
    assert member.drifted and member.unseen_share == 1.0, member.reason
    same = words.to_numpy()[:300].reshape(-1, 1)
    counts, sums = binning.count(same)
    assert not binning.report(counts, sums, same, DriftThresholds()).features[0].drifted


def test_a_model_that_takes_the_words_as_text_is_watched_on_its_exact_strings(
    registry: Registry, tmp_path: Path
) -> None:
    """Registered from a CSV, the column the model was fitted on as text is read as text
    (pandas would read it as booleans), and profiled as its strings."""
    frame = club(600, seed=2)
    frame["member"] = frame["member"].map({True: "true", False: "false"})
    label = (frame["member"] == "true") | (frame["size"] > 1)
    encoder = ColumnTransformer(
        [("member", OneHotEncoder(handle_unknown="ignore"), ["member"])], remainder="passthrough"
    )
    model = make_pipeline(encoder, LogisticRegression()).fit(frame, label)
    joblib.dump(model, tmp_path / "member.joblib")
    frame.assign(label=label.astype(int)).to_csv(tmp_path / "member.csv", index=False)
    version = register_model(
        registry,
        "member",
        tmp_path / "member.joblib",
        reference=tmp_path / "member.csv",
        target="label",
    )
    profile = registry.reference_profile(version.model, version.version)
    assert profile is not None
    member = profile.feature("member")
    assert member.boolean is False and set(member.categories) == {"true", "false"}
    upper = frame.assign(member=frame["member"].str.upper()).head(300)
    (drifted,) = [f for f in compare(profile, [upper]).report.features if f.name == "member"]
    assert drifted.drifted and drifted.unseen_share == 1.0, drifted.reason


def test_two_csv_files_of_the_words_compare_as_booleans(tmp_path: Path) -> None:
    """Without a model to say the column is text, a CSV column of the words true and false
    is booleans to pandas, and the spelling of the two files does not matter."""
    frame = club(600, seed=3)
    frame.to_csv(tmp_path / "ref.csv", index=False)
    upper = frame.assign(member=frame["member"].map({True: "TRUE", False: "FALSE"}))
    upper.to_csv(tmp_path / "cur.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "drift",
            str(tmp_path / "ref.csv"),
            str(tmp_path / "cur.csv"),
            "--report",
            str(tmp_path / "r.html"),
            "--fail-on-drift",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "No dataset drift: 0 of 2" in result.output


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
    del member["boolean"]  # as such profiles were stored
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
