"""XGBoost and LightGBM native files: classification and regression, missing values."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from modelpilot.runtimes.flavors import detect_flavor, load_runtime


def test_xgboost_binary_and_regression(tmp_path: Path) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, y), num_boost_round=5)
    path = tmp_path / "cancer.json"
    booster.save_model(path)
    assert detect_flavor(path) == "xgboost"
    runtime = load_runtime("xgboost", path)
    assert [s.name for s in runtime.signature.outputs] == ["predict", "predict_proba"]
    assert runtime.signature.inputs[0].shape == (-1, 30) and runtime.signature.allow_nan
    out = runtime.predict({"input-0": x[:20]})
    expected = booster.predict(xgb.DMatrix(x[:20]))
    np.testing.assert_allclose(out["predict_proba"][:, 1], expected, rtol=1e-6)
    np.testing.assert_array_equal(out["predict"], (expected > 0.5).astype(int))

    xr, yr = load_diabetes(return_X_y=True)
    reg = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(xr, yr), num_boost_round=5)
    reg_path = tmp_path / "diabetes.ubj"
    reg.save_model(reg_path)
    runtime = load_runtime(detect_flavor(reg_path), reg_path)
    gaps = xr[:3].copy()
    gaps[0, 0] = np.nan
    np.testing.assert_allclose(
        runtime.predict({"input-0": gaps})["predict"],
        reg.predict(xgb.DMatrix(gaps)),
        rtol=1e-6,
    )


def test_lightgbm_multiclass(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(x, y),
        num_boost_round=5,
    )
    path = tmp_path / "iris.txt"
    booster.save_model(path)
    assert detect_flavor(path) == "lightgbm"
    runtime = load_runtime("lightgbm", path)
    assert runtime.signature.outputs[1].shape == (-1, 3)
    assert runtime.signature.feature_names is None
    out = runtime.predict({"input-0": x[:10]})
    np.testing.assert_allclose(out["predict_proba"], booster.predict(x[:10]), rtol=1e-6)
    np.testing.assert_array_equal(out["predict"], booster.predict(x[:10]).argmax(axis=1))


def test_an_xgboost_file_without_a_suffix_loads_without_a_warning(tmp_path: Path) -> None:
    """Registry artifacts are stored by their sha256 alone: XGBoost, which goes by the suffix
    of a path, warned at every load that it had to guess the format."""
    x, y = load_diabetes(return_X_y=True)
    booster = xgb.train({}, xgb.DMatrix(x, y), num_boost_round=3)
    for suffix in ("json", "ubj"):
        booster.save_model(tmp_path / f"model.{suffix}")
        bare = tmp_path / f"bare-{suffix}"
        bare.write_bytes((tmp_path / f"model.{suffix}").read_bytes())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runtime = load_runtime("xgboost", bare)
        np.testing.assert_allclose(
            runtime.predict({"input-0": x[:5]})["predict"],
            booster.predict(xgb.DMatrix(x[:5])),
            rtol=1e-6,
        )
