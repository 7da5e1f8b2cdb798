"""scikit-learn: signatures, predictions equal to the library's own, names and labels."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpilot.errors import ArtifactError, InvalidInput, MissingExtra
from modelpilot.runtimes.flavors import load_runtime
from modelpilot.runtimes.sklearn import SklearnRuntime


def saved(tmp_path: Path, model: object, name: str = "m.joblib") -> Path:
    path = tmp_path / name
    joblib.dump(model, path)
    return path


def test_classifier_fitted_on_a_frame(
    tmp_path: Path, iris_model: LogisticRegression, iris_frame: pd.DataFrame
) -> None:
    runtime = load_runtime("sklearn", saved(tmp_path, iris_model))
    signature = runtime.signature
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [
        ("input-0", "FP64", (-1, 4))
    ]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("predict", "INT64", (-1,)),
        ("predict_proba", "FP64", (-1, 3)),
    ]
    assert signature.feature_names == tuple(iris_frame.columns)
    assert not signature.allow_nan
    x = iris_frame.to_numpy()
    # No "X does not have valid feature names" warning: pytest turns warnings into errors.
    out = runtime.predict({"input-0": x})
    np.testing.assert_array_equal(out["predict"], iris_model.predict(iris_frame))
    np.testing.assert_allclose(out["predict_proba"], iris_model.predict_proba(iris_frame))
    assert list(runtime.predict({"input-0": x}, ["predict_proba"])) == ["predict_proba"]


def test_string_labels_are_bytes(tmp_path: Path) -> None:
    iris = load_iris()
    labels = np.asarray(iris.target_names)[iris.target]
    model = LogisticRegression(max_iter=500).fit(iris.data, labels)
    runtime = load_runtime("sklearn", saved(tmp_path, model))
    assert runtime.signature.outputs[0].datatype == "BYTES"
    assert runtime.signature.feature_names is None
    predicted = runtime.predict({"input-0": iris.data[:3]})["predict"]
    assert predicted.tolist() == model.predict(iris.data[:3]).tolist()
    assert runtime.signature.extra["classes"] == ["setosa", "versicolor", "virginica"]


def test_regressor_and_given_feature_names(tmp_path: Path) -> None:
    x = np.arange(20.0).reshape(10, 2)
    model = LinearRegression().fit(x, x.sum(axis=1))
    runtime = SklearnRuntime.load(saved(tmp_path, model))
    signature = runtime.infer_signature(example=x, feature_names=["a", "b"])
    assert signature.outputs[0].datatype == "FP64"
    assert signature.feature_names == ("a", "b")
    np.testing.assert_allclose(runtime.predict({"input-0": x})["predict"], x.sum(axis=1))


def test_pipeline_without_predict_proba(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(x, x[:, 0])
    runtime = load_runtime("sklearn", saved(tmp_path, model))
    assert [s.name for s in runtime.signature.outputs] == ["predict"]


def test_models_that_take_nan_say_so(tmp_path: Path) -> None:
    iris = load_iris()
    model = HistGradientBoostingClassifier(max_iter=5).fit(iris.data, iris.target)
    runtime = load_runtime("sklearn", saved(tmp_path, model))
    assert runtime.signature.allow_nan
    x = iris.data[:2].copy()
    x[0, 0] = np.nan
    assert runtime.predict({"input-0": x})["predict"].shape == (2,)


def test_reference_data_that_does_not_fit(tmp_path: Path, iris_model: LogisticRegression) -> None:
    runtime = load_runtime("sklearn", saved(tmp_path, iris_model))
    with pytest.raises(InvalidInput, match="the model takes 4 features"):
        runtime.infer_signature(example=np.zeros((5, 3)))


def test_files_that_are_not_models(tmp_path: Path) -> None:
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(ArtifactError, match="not a joblib or pickle file"):
        load_runtime("sklearn", junk)
    junk.write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"not a joblib or pickle file \(it is empty\)"):
        load_runtime("sklearn", junk)
    with pytest.raises(ArtifactError, match="has no predict"):
        load_runtime("sklearn", saved(tmp_path, PCA()))


class CountingScaler(StandardScaler):
    """A StandardScaler that counts the batches it transforms."""

    calls = 0

    def transform(self, X: object, copy: object = None) -> object:
        CountingScaler.calls += 1
        return super().transform(X, copy=copy)


def test_a_pipeline_transforms_once_for_labels_and_probabilities() -> None:
    iris = load_iris()
    model = make_pipeline(CountingScaler(), PCA(2), LogisticRegression()).fit(
        iris.data, iris.target
    )
    runtime = SklearnRuntime(model)
    CountingScaler.calls = 0
    out = runtime.predict({"input-0": iris.data})
    assert CountingScaler.calls == 1  # Pipeline.predict and .predict_proba would make it 2
    np.testing.assert_array_equal(out["predict"], model.predict(iris.data))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(iris.data))
    CountingScaler.calls = 0
    only = runtime.predict({"input-0": iris.data}, ["predict_proba"])
    assert list(only) == ["predict_proba"] and CountingScaler.calls == 1


def _transformer_class(module: str) -> type:
    """A transformer class that says it lives in ``module``, as one defined there would."""

    def transform(self: object, x: object) -> object:
        return x

    return type(
        "Doubler",
        (BaseEstimator, TransformerMixin),
        {"__module__": module, "fit": lambda self, x, y=None: self, "transform": transform},
    )


def test_a_pickle_of_code_this_python_cannot_import_names_it_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpickling imports every class a pickle names: one of the script that saved it
    (``__main__``), or of a module this Python lacks, cannot be, and the owner hears which
    and how to fix it, not a bare AttributeError or ModuleNotFoundError."""
    iris = load_iris()
    saved_in_script = _transformer_class("__main__")
    monkeypatch.setattr(sys.modules["__main__"], "Doubler", saved_in_script, raising=False)
    elsewhere = types.ModuleType("mytransforms_nowhere")
    elsewhere.Doubler = _transformer_class("mytransforms_nowhere")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mytransforms_nowhere", elsewhere)
    for module, transformer in (("main", saved_in_script), ("module", elsewhere.Doubler)):
        model = make_pipeline(transformer(), LogisticRegression(max_iter=500))
        saved(tmp_path, model.fit(iris.data, iris.target), f"{module}.joblib")
    monkeypatch.undo()  # what another program has: neither class

    with pytest.raises(ArtifactError) as in_main:
        load_runtime("sklearn", tmp_path / "main.joblib")
    assert "the model refers to the class or function 'Doubler' of the script that saved " in (
        str(in_main.value)
    )
    assert "move 'Doubler' into a module of its own" in str(in_main.value)

    with pytest.raises(ArtifactError) as missing:
        load_runtime("sklearn", tmp_path / "module.joblib")
    # "the model", not the file: a server loads the stored artifact, named by its hash, and
    # a stalled rollout's alert read "536be59342a7...d04a2f needs the module ...".
    assert "the model needs the module 'mytransforms_nowhere' to be unpickled" in str(missing.value)
    assert "install the package that provides it" in str(missing.value)

    lacking = types.ModuleType("mytransforms_nowhere")  # there, but without the class
    monkeypatch.setitem(sys.modules, "mytransforms_nowhere", lacking)
    with pytest.raises(ArtifactError, match="refers to 'Doubler' in the module 'mytransforms_"):
        load_runtime("sklearn", tmp_path / "module.joblib")


def test_a_boosters_scikit_learn_model_without_its_library_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xgboost = pytest.importorskip("xgboost")
    iris = load_iris()
    path = saved(tmp_path, xgboost.XGBClassifier(n_estimators=2).fit(iris.data, iris.target))
    for name in [m for m in sys.modules if m == "xgboost" or m.startswith("xgboost.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'modelpilot\[xgboost\]'"):
        load_runtime("sklearn", path)


def test_a_classifier_of_several_targets_is_refused_by_name() -> None:
    """Its classes are one array per target and its probabilities one array per target, of
    their own widths: no tensor holds them, and registering it failed in the database."""
    iris = load_iris()
    targets = np.column_stack([iris.target, iris.data[:, 0] > 5.8])
    for model in (
        MultiOutputClassifier(LogisticRegression(max_iter=500)).fit(iris.data, targets),
        RandomForestClassifier(n_estimators=3, random_state=0).fit(iris.data, targets),
    ):
        with pytest.raises(ArtifactError, match="predicts 2 targets at once") as refused:
            SklearnRuntime(model)
        assert type(model).__name__ in str(refused.value)
        assert "register one classifier per target" in str(refused.value)


def test_clusters_and_outlier_flags_are_whole_numbers() -> None:
    """KMeans and IsolationForest predict labels of groups: INT64, not FP64 (a predict
    column of 1.0 and 2.0, and counted as a histogram of numbers rather than by label)."""
    from sklearn.cluster import KMeans
    from sklearn.ensemble import IsolationForest

    x = np.random.default_rng(0).normal(size=(60, 3))
    for model in (
        KMeans(3, n_init=2, random_state=0).fit(x),
        IsolationForest(random_state=0).fit(x),
    ):
        runtime = SklearnRuntime(model)
        assert runtime.signature.outputs[0].datatype == "INT64"
        assert runtime.infer_signature(example=x).outputs[0].datatype == "INT64"
        predicted = runtime.predict({"input-0": x[:5]})["predict"]
        assert predicted.dtype == np.int64
        np.testing.assert_array_equal(predicted, model.predict(x[:5]))
