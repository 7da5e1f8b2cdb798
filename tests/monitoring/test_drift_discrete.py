"""Numbers of few values, or with values of their own (atoms): each such value has a bin, so a
move in their shares drifts, live and offline, while windows like the reference stay calm."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from modelpilot.cli.main import app
from modelpilot.monitoring.binning import ProfileBinning
from modelpilot.monitoring.drift import DriftThresholds, FeatureDrift
from modelpilot.monitoring.feature_histograms import histograms
from modelpilot.monitoring.offline import compare
from modelpilot.registry.profile import ReferenceProfile
from modelpilot.registry.store import Registry
from modelpilot.serving.registration import register_model
from tests.monitoring.conftest import monitored


def flagged(rows: int, ones: float, seed: int) -> pd.DataFrame:
    """``x``, a bell curve, and ``flag``, 1 in a share ``ones`` of the rows (integers)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "flag": (rng.random(rows) < ones).astype(int)})


def amounts(rows: int, zeros: float, seed: int, small: float = 0.0) -> np.ndarray:
    """Zero in a share ``zeros`` of the rows, in a share ``small`` a little above zero, else
    a draw of an exponential."""
    rng = np.random.default_rng(seed)
    draw = rng.random(rows)
    values = rng.exponential(size=rows)
    values[draw < zeros + small] = rng.uniform(0.0, 0.1, rows)[draw < zeros + small]
    values[draw < zeros] = 0.0
    return values


def judged(profile: ReferenceProfile, rows: np.ndarray) -> list[FeatureDrift]:
    binning = ProfileBinning(profile)
    counts, sums = binning.count(rows)
    return list(binning.report(counts, sums, rows, DriftThresholds()).features)


def test_few_values_and_atoms_get_bins_of_their_own() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "flag": (rng.random(1000) < 0.3).astype(int),
            "digit": rng.integers(0, 10, 1000),
            "amount": amounts(1000, 0.4, seed=1),
            "capped": np.minimum(rng.normal(80, 30, 1000), 100.0),
            "x": rng.normal(size=1000),
        }
    )
    profile = ReferenceProfile.from_data(frame)
    flag = profile.feature("flag")
    # [0, 1) holds the zeros, the closed [1, 1] the ones: no longer one bin for both.
    assert flag.bin_edges == (0.0, 1.0, 1.0)
    assert flag.bin_counts == (int((frame.flag == 0).sum()), int(frame.flag.sum()))
    digit = profile.feature("digit")
    assert digit.bin_edges == (*range(10), 9)
    assert digit.bin_counts == tuple(np.bincount(frame.digit, minlength=10))
    amount = profile.feature("amount")
    smallest = frame.amount[frame.amount > 0].min()
    assert amount.bin_edges[:2] == (0.0, smallest)  # the zeros alone in the first bin
    assert amount.bin_counts[0] == (frame.amount == 0).sum()
    capped = profile.feature("capped")
    assert capped.bin_edges[-2:] == (100.0, 100.0)  # the cap: the top bin, closed, alone
    assert capped.bin_counts[-1] == (frame.capped == 100).sum()
    # Without atoms the bins are the deciles, as ever.
    deciles = np.unique(np.quantile(frame.x, np.linspace(0, 1, 11)))
    assert profile.feature("x").bin_edges == tuple(deciles)


def test_a_flag_whose_share_of_ones_moved_drifts_on_a_large_window() -> None:
    """The tester's case: 32% ones in the reference, 95% in 1,500 rows. Both values shared one
    bin, so PSI and Jensen-Shannon read 0, and PSI alone decides from 1,000 rows."""
    reference = flagged(1000, 0.3, seed=0)
    profile = ReferenceProfile.from_data(reference)
    current = flagged(1500, 0.95, seed=1)
    x, flag = judged(profile, current.to_numpy(dtype=float))
    share = reference.flag.mean()
    p, q = np.array([1 - share, share]), np.array([1 - current.flag.mean(), current.flag.mean()])
    assert flag.method == "psi" and flag.drifted, flag
    assert flag.psi == pytest.approx(float(np.dot(q - p, np.log(q / p))), rel=1e-3)
    assert flag.js_distance > 0.5
    assert not x.drifted
    # Offline, with the reference file whole, the same.
    report = compare(profile, [current], reference=reference).report
    assert report.drifted_features == ["flag"]
    assert report.features[1].psi == pytest.approx(flag.psi)


def test_an_atom_whose_share_moved_drifts() -> None:
    """Zeros, 40% of the reference, fall to 20% as small amounts take their place. The zeros
    shared their decile with the smallest amounts, whose bin held as many rows as before:
    PSI 0.00."""
    profile = ReferenceProfile.from_data(pd.DataFrame({"amount": amounts(2000, 0.4, seed=0)}))
    (amount,) = judged(profile, amounts(5000, 0.2, seed=1, small=0.2).reshape(-1, 1))
    assert amount.method == "psi" and amount.drifted and amount.psi > 0.3, amount


@pytest.mark.parametrize("rows", [1000, 4000])
def test_windows_like_the_reference_seldom_drift(rows: int) -> None:
    """A bin a value gives PSI no more noise than a decile does: of 100 windows drawn as the
    reference was, none flags a flag, a digit or a zero-inflated amount."""
    rng = np.random.default_rng(0)

    def draw(n: int, seed: int) -> pd.DataFrame:
        frame = flagged(n, 0.3, seed)
        frame["digit"] = rng.choice(10, n, p=np.arange(1, 11) / 55)
        frame["amount"] = amounts(n, 0.4, seed)
        return frame

    profile = ReferenceProfile.from_data(draw(1000, seed=0))
    binning = ProfileBinning(profile)
    alarms, highest = 0, 0.0
    for seed in range(1, 101):
        window = draw(rows, seed).to_numpy(dtype=float)
        counts, sums = binning.count(window)
        report = binning.report(counts, sums, None, DriftThresholds())
        alarms += bool(report.drifted_features)
        highest = max(highest, *(f.psi for f in report.features))
    assert alarms == 0 and highest < 0.1, highest


def test_an_old_profile_of_a_flag_bins_as_it_did() -> None:
    """A profile stored before: the flag's one bin, [0, 1], holds both values."""
    stored = ReferenceProfile.from_data(flagged(1000, 0.3, seed=0)).to_dict()
    stored["features"][1].update(bin_edges=[0.0, 1.0], bin_counts=[1000], bin_means=[0.3])
    binning = ProfileBinning(ReferenceProfile.from_dict(stored))
    counts, _ = binning.count(flagged(1500, 0.95, seed=1).to_numpy(dtype=float))
    flag = counts[binning.size - 4 : binning.size]
    assert flag.tolist() == [0, 1500, 0, 0]  # below, [0, 1], above, missing


def test_the_drift_command_flags_the_flag(tmp_path: Path) -> None:
    flagged(1000, 0.3, seed=0).to_csv(tmp_path / "reference.csv", index=False)
    flagged(1500, 0.95, seed=1).to_csv(tmp_path / "current.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "drift",
            str(tmp_path / "reference.csv"),
            str(tmp_path / "current.csv"),
            "-o",
            str(tmp_path / "drift.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 of 2 features drifted (flag)" in result.stdout, result.stdout


async def test_a_served_flag_drifts(registry: Registry, tmp_path: Path) -> None:
    reference = flagged(1000, 0.3, seed=0)
    labels = (reference.x + reference.flag > 0.5).astype(int)
    joblib.dump(LogisticRegression().fit(reference, labels), tmp_path / "m.joblib")
    register_model(registry, "flag01", tmp_path / "m.joblib", reference=reference)
    current = flagged(1500, 0.95, seed=1).to_numpy(dtype=float)
    async with monitored(registry, drift_window_rows=2000) as served:
        for start in range(0, len(current), 100):
            chunk = current[start : start + 100].tolist()
            reply = await served.client.post("/predict/flag01", json={"data": chunk})
            assert reply.status_code == 200, reply.text
        served.monitor.flush()
        drift = (await served.client.get("/api/monitoring/flag01")).json()["drift"]
    flag = next(f for f in drift["features"] if f["name"] == "flag")
    assert drift["window_rows"] == 1500
    assert flag["drifted"] and flag["method"] == "psi" and flag["psi"] > 2, flag


def test_a_bin_of_a_single_value_is_named_by_it_in_the_report() -> None:
    """The report's histograms labelled a flag's zeros "0 - 1", and code 3 "3 - 7"."""
    from modelpilot.monitoring.binning import ProfileBinning

    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"flag": (rng.random(1000) < 0.3).astype(int), "x": rng.normal(size=1000)}
    )
    binning = ProfileBinning(ReferenceProfile.from_data(reference))
    counts, _ = binning.count(reference.to_numpy().astype(float))
    flag, x = histograms(binning, counts)
    assert flag.labels == ["0", "1"]
    assert all(" - " in label for label in x.labels)  # ranges, as before
