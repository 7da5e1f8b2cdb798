"""ONNX acceleration: used only on parity, cached next to the artifact, skipped on request."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelpilot.config import Settings
from modelpilot.protocol.rows import request_from_rows
from modelpilot.registry.store import Registry
from modelpilot.runtimes.convert import ConvertedRuntime
from modelpilot.runtimes.sklearn import SklearnRuntime
from modelpilot.serving.acceleration import (
    CONVERTED,
    OPTIMIZED,
    VERDICT,
    accelerate,
    derived_path,
)
from modelpilot.serving.engine import InferenceEngine
from modelpilot.serving.registration import register_model


def saved(tmp_path: Path, model: object, name: str) -> Path:
    path = tmp_path / f"{name}.joblib"
    joblib.dump(model, path)
    return path


async def serve(registry: Registry, **overrides: object) -> InferenceEngine:
    engine = InferenceEngine(registry, Settings(registry=registry.location, **overrides))  # type: ignore[arg-type]
    await engine.start()
    return engine


async def test_a_forest_is_served_by_onnx_with_identical_answers(
    registry: Registry, tmp_path: Path
) -> None:
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(x, y)
    version = register_model(registry, "forest", saved(tmp_path, model, "forest"), reference=x)
    engine = await serve(registry)
    try:
        loaded = await engine.get_model("forest")
        assert isinstance(loaded.runtime, ConvertedRuntime)
        response = await engine.infer("forest", request_from_rows(x.tolist()))
        outputs = {t.name: t.data for t in response.outputs}
        np.testing.assert_array_equal(outputs["predict"], model.predict(x))
        np.testing.assert_allclose(outputs["predict_proba"], model.predict_proba(x), atol=1e-6)
        # The graph sends NaN elsewhere than scikit-learn's trees: such rows go to the forest.
        holes = x[:20].copy()
        holes[::3, 2] = np.nan
        response = await engine.infer("forest", request_from_rows(holes.tolist()))
        np.testing.assert_array_equal(response.outputs[0].data, model.predict(holes))
    finally:
        await engine.stop()
    verdict = json.loads(derived_path(registry, version, VERDICT).read_text())
    assert verdict["ok"] and verdict["rows"] == 150
    assert verdict["missing_values"] == "original"
    assert derived_path(registry, version, CONVERTED).exists()
    assert derived_path(registry, version, OPTIMIZED).exists()


async def test_the_second_load_reuses_the_cached_graphs(registry: Registry, tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)
    version = register_model(registry, "reg", saved(tmp_path, model, "reg"))
    first = await serve(registry)
    await first.stop()
    converted = derived_path(registry, version, CONVERTED)
    stamp = converted.stat().st_mtime_ns
    second = await serve(registry)
    try:
        loaded = await second.get_model("reg")
        assert isinstance(loaded.runtime, ConvertedRuntime)  # float fallback for regressors
        response = await second.infer("reg", request_from_rows(x[:5].tolist()))
        np.testing.assert_allclose(response.outputs[0].data, model.predict(x[:5]), rtol=1e-4)
    finally:
        await second.stop()
    assert converted.stat().st_mtime_ns == stamp


async def test_a_cached_graph_swapped_for_another_is_not_served(
    registry: Registry, tmp_path: Path
) -> None:
    """The artifact is checked on every load, but the graph cached beside it was not: with
    version 1's graphs copied over version 2's, version 2 answered version 1's figures."""
    x, y = load_iris(return_X_y=True)
    first = LogisticRegression(max_iter=500).fit(x, y)
    second = LogisticRegression(max_iter=500, C=0.01).fit(x, y)
    one = register_model(registry, "iris", saved(tmp_path, first, "one"), reference=x)
    two = register_model(registry, "iris", saved(tmp_path, second, "two"), reference=x)
    engine = await serve(registry)
    for version in ("1", "2"):  # converted, checked and cached once each
        await engine.get_model("iris", version)
    await engine.stop()
    for suffix in (CONVERTED, OPTIMIZED):
        derived = derived_path(registry, two, suffix)
        derived.write_bytes(derived_path(registry, one, suffix).read_bytes())
    engine = await serve(registry)
    try:
        response = await engine.infer("iris", request_from_rows(x[:5].tolist()), version="2")
        proba = {t.name: t.data for t in response.outputs}["predict_proba"]
        np.testing.assert_allclose(proba, second.predict_proba(x[:5]), atol=1e-5)
        loaded = await engine.get_model("iris", "2")
        assert isinstance(loaded.runtime, ConvertedRuntime)  # converted again, and served
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [
        (VERDICT, "cut short"),
        (VERDICT, "not an object"),
        (VERDICT, "not text"),
        (CONVERTED, "cut short"),
        (OPTIMIZED, "cut short"),
    ],
)
async def test_a_damaged_cache_is_made_again(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture, suffix: str, damage: str
) -> None:
    """A parity record cut short (``head -c 20``) failed every load of its version, with a
    JSONDecodeError said to come from the artifact's library version; only turning ONNX off
    served it. What is cached beside an artifact and cannot be read is now as if absent: the
    version is converted and checked again, and the cache written anew, with one warning."""
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    version = register_model(registry, "iris", saved(tmp_path, model, "iris"), reference=x)
    await (await serve(registry)).stop()  # converted, checked and cached
    cached = derived_path(registry, version, suffix)
    whole = cached.read_bytes()
    cached.write_bytes(
        {"cut short": whole[:20], "not an object": b"null", "not text": b"\xff\xfe{"}[damage]
    )
    caplog.set_level("WARNING", logger="modelpilot.serving.acceleration")
    engine = await serve(registry)
    try:
        assert isinstance((await engine.get_model("iris")).runtime, ConvertedRuntime)
        response = await engine.infer("iris", request_from_rows(x[:5].tolist()))
        outputs = {t.name: t.data for t in response.outputs}
        np.testing.assert_array_equal(outputs["predict"], model.predict(x[:5]))
    finally:
        await engine.stop()
    assert cached.stat().st_size > 20
    verdict = json.loads(derived_path(registry, version, VERDICT).read_text())
    assert verdict["ok"] and verdict["rows"] == 150
    # Warnings only: a CLI test run before this one may leave the logger at INFO.
    (warning,) = [
        r.getMessage()
        for r in caplog.records
        if r.name.endswith("acceleration") and r.levelno >= logging.WARNING
    ]
    assert warning.endswith(("converting again", "making it again")), warning
    if suffix == VERDICT:
        assert "iris:1: its cached ONNX parity record" in warning


async def test_a_graph_cached_by_an_earlier_release_is_checked_again_without_a_warning(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A registry upgraded from a release that did not record the graph's hash logged, for
    every version at the first start, a WARNING that "the cached ONNX graph failed to load",
    which reads as a damaged artifact: nothing failed, the graph is checked again once."""
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    version = register_model(registry, "iris", saved(tmp_path, model, "iris"), reference=x)
    await (await serve(registry)).stop()  # converted, checked and cached
    path = derived_path(registry, version, VERDICT)
    verdict = json.loads(path.read_text())
    del verdict["graph_sha256"]  # as an earlier release recorded it
    path.write_text(json.dumps(verdict))
    caplog.set_level("INFO", logger="modelpilot.serving.acceleration")
    engine = await serve(registry)
    try:
        assert isinstance((await engine.get_model("iris")).runtime, ConvertedRuntime)
    finally:
        await engine.stop()
    said = [r for r in caplog.records if r.name.endswith("acceleration")]
    assert not [r.getMessage() for r in said if r.levelno >= logging.WARNING]
    assert any("cached by an earlier release" in r.getMessage() for r in said)
    assert json.loads(path.read_text())["graph_sha256"]  # recorded now: checked once


def test_processes_loading_one_version_at_once_convert_it_once(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers started together each converted the same version (7 s each in a tester's
    run): one converts now, and the others wait for it and take its graph from the cache."""
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    version = register_model(registry, "forest", saved(tmp_path, model, "forest"), reference=x)
    written: list[str] = []
    write = type(registry.artifacts).write_derived

    def counting(store: Any, sha256: str, suffix: str, data: bytes) -> Path:
        written.append(suffix)
        return write(store, sha256, suffix, data)

    monkeypatch.setattr(type(registry.artifacts), "write_derived", counting)
    runtime = SklearnRuntime.load(registry.fetch_artifact(version))
    with ThreadPoolExecutor(4) as pool:
        served = list(pool.map(lambda _: accelerate(registry, version, runtime), range(4)))
    assert all(isinstance(r, ConvertedRuntime) for r in served)
    assert sum(s.endswith(VERDICT) for s in written) == 1  # one conversion, one verdict
    assert sum(s.endswith(CONVERTED) for s in written) == 2  # doubles, then floats


async def test_a_model_that_does_not_convert_keeps_scikit_learn(
    registry: Registry, tmp_path: Path
) -> None:
    x, y = load_iris(return_X_y=True)
    # skl2onnx has no converter for arbitrary Python functions.
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
    model.fit(x, y)
    version = register_model(registry, "m", saved(tmp_path, model, "m"), reference=x)
    engine = await serve(registry)
    try:
        loaded = await engine.get_model("m")
        assert isinstance(loaded.runtime, SklearnRuntime)
        response = await engine.infer("m", request_from_rows(x[:10].tolist()))
        np.testing.assert_array_equal(response.outputs[0].data, model.predict(x[:10]))
    finally:
        await engine.stop()
    verdict = json.loads(derived_path(registry, version, VERDICT).read_text())
    assert not verdict["ok"] and "FunctionTransformer" in verdict["reason"]
    # The verdict is remembered: the next load does not try again.
    again = await serve(registry)
    try:
        assert isinstance((await again.get_model("m")).runtime, SklearnRuntime)
    finally:
        await again.stop()


async def test_onnx_can_be_turned_off(registry: Registry, tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    version = register_model(registry, "forest", saved(tmp_path, model, "forest"))
    engine = await serve(registry, onnx=False)
    try:
        assert isinstance((await engine.get_model("forest")).runtime, SklearnRuntime)
    finally:
        await engine.stop()
    assert not derived_path(registry, version, VERDICT).exists()


async def test_boosters_are_served_by_onnx_after_parity_with_missing_values(
    registry: Registry, tmp_path: Path
) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    x, y = load_iris(return_X_y=True)
    xgb_path = tmp_path / "xgb.json"
    xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
        xgb.DMatrix(x, label=y),
        10,
    ).save_model(xgb_path)
    lgb_path = tmp_path / "lgb.txt"
    lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(x[:, :3], label=x[:, 3]),
        10,
    ).save_model(str(lgb_path))
    boosted = register_model(registry, "xgb", xgb_path, reference=x)
    register_model(registry, "lgb", lgb_path, reference=x[:, :3])
    engine = await serve(registry)
    try:
        for name, rows in (("xgb", x), ("lgb", x[:, :3])):
            loaded = await engine.get_model(name)
            assert isinstance(loaded.runtime, ConvertedRuntime), name
            holes = rows.copy()
            holes[::7, 1] = np.nan
            response = await engine.infer(name, request_from_rows(holes.tolist()))
            original = (
                xgb.Booster(model_file=str(xgb_path)).inplace_predict(holes)
                if name == "xgb"
                else lgb.Booster(model_file=str(lgb_path)).predict(holes)
            )
            outputs = {t.name: t.data for t in response.outputs}
            key = "predict_proba" if name == "xgb" else "predict"
            np.testing.assert_allclose(outputs[key], original, rtol=1e-4, atol=1e-5)
    finally:
        await engine.stop()
    verdict = json.loads(derived_path(registry, boosted, VERDICT).read_text())
    assert verdict["ok"] and verdict["dtype"] == "float32" and verdict["rows"] == 150
    assert verdict["missing_values"] == "onnx"  # the converters route NaN as the boosters do


async def test_versions_of_one_file_keep_their_own_verdicts(
    registry: Registry, shop_files: tuple[Path, Path]
) -> None:
    """A text pipeline registered without a reference has no rows to check a graph on and
    keeps scikit-learn; the same file registered with one was converted, and stays so (the
    verdicts shared the artifact's name, and the second turned ONNX off for the first)."""
    model, reference = shop_files
    checked = register_model(registry, "shop", model, reference=reference, target="bought")
    bare = register_model(registry, "shop", model)
    assert checked.artifact_sha256 == bare.artifact_sha256
    for version, served_by in (
        (checked, ConvertedRuntime),
        (bare, SklearnRuntime),
        (checked, ConvertedRuntime),
    ):
        engine = await serve(registry)
        try:
            loaded = await engine.get_model("shop", str(version.version))
            assert isinstance(loaded.runtime, served_by), version
        finally:
            await engine.stop()
    assert json.loads(derived_path(registry, checked, VERDICT).read_text())["ok"]
    assert not json.loads(derived_path(registry, bare, VERDICT).read_text())["ok"]


async def test_why_a_model_keeps_scikit_learn_is_said_in_a_line(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """skl2onnx's complaint about a node it could not make lists every attribute array of
    the trees: 941 KB of one log record, 31,677 lines, at every start."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    version = register_model(registry, "hgb", saved(tmp_path, model, "hgb"), reference=x)
    caplog.set_level(logging.INFO, logger="modelpilot.serving.acceleration")
    engine = await serve(registry)
    try:
        loaded = await engine.get_model("hgb")
    finally:
        await engine.stop()
    if not isinstance(loaded.runtime, SklearnRuntime):
        pytest.skip("this skl2onnx converts the model: there is no failure to tell of")
    (said,) = [r.getMessage() for r in caplog.records if "keeps" in r.getMessage()]
    assert "\n" not in said and len(said) < 600, said[:200]
    verdict = json.loads(derived_path(registry, version, VERDICT).read_text())
    assert "\n" not in verdict["reason"] and len(verdict["reason"]) < 1000
