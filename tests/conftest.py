"""Fixtures shared by every test package: small trained models and fresh registries."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.config import Settings
from modelpilot.registry.store import Registry
from modelpilot.registry.types import ModelVersion
from modelpilot.serving.registration import register_model
from tests.database_proxy import DatabaseProxy
from tests.services import require_postgres

# A server stopped with SIGTERM serves on, not ready, for the drain period first: the servers
# of the tests stop at once (and their tests wait no longer); tests of the drain set their own.
os.environ["MODELPILOT_SHUTDOWN_DRAIN_SECONDS"] = "0"

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(autouse=True)
def _root_logger_as_it_was() -> Iterator[None]:
    """Put the root logger's handlers and level back after each test: a command run in this
    process (``serve``, ``demo``) sets up the server's logging on the stream pytest gave it,
    closed once the test ends, and every later test's log lines then printed "--- Logging
    error ---" tracebacks to the real stderr (which tests that read it with ``capfd`` saw)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def free_port() -> int:
    """A port nobody listens on right now (tests never use fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def iris_frame() -> pd.DataFrame:
    data = load_iris()
    return pd.DataFrame(data.data, columns=IRIS_FEATURES)


@pytest.fixture(scope="session")
def iris_target() -> np.ndarray:
    return np.asarray(load_iris().target)


@pytest.fixture(scope="session")
def iris_model(iris_frame: pd.DataFrame, iris_target: np.ndarray) -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(iris_frame, iris_target)


@pytest.fixture(scope="session")
def iris_model_path(
    tmp_path_factory: pytest.TempPathFactory, iris_model: LogisticRegression
) -> Path:
    path = tmp_path_factory.mktemp("models") / "iris.joblib"
    joblib.dump(iris_model, path)
    return path


@pytest.fixture(scope="session")
def iris_csv(tmp_path_factory: pytest.TempPathFactory, iris_frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    iris_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def diabetes_data() -> tuple[np.ndarray, np.ndarray]:
    data = load_diabetes()
    return np.asarray(data.data), np.asarray(data.target)


@pytest.fixture(scope="session")
def forest_model_path(
    tmp_path_factory: pytest.TempPathFactory, diabetes_data: tuple[np.ndarray, np.ndarray]
) -> Path:
    """A regressor fitted on a plain array: no feature names, 10 features."""
    x, y = diabetes_data
    model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(x, y)
    path = tmp_path_factory.mktemp("models") / "forest.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A fresh embedded registry (SQLite + files) in a temporary directory."""
    reg = Registry.open(tmp_path / "registry")
    yield reg
    reg.close()


@pytest.fixture
def iris_version(registry: Registry, iris_model_path: Path, iris_csv: Path) -> ModelVersion:
    """The iris classifier registered as ``iris`` version 1 with a reference profile."""
    return register_model(
        registry, "iris", iris_model_path, reference=iris_csv, aliases=["production"]
    )


def make_settings(registry: Registry, **overrides: Any) -> Settings:
    """Settings for an engine over ``registry`` (the environment's, with overrides on top)."""
    return Settings(registry=registry.location, **overrides)


@pytest.fixture
def served_registry(
    registry: Registry, iris_version: ModelVersion, forest_version: ModelVersion
) -> Registry:
    """A registry holding ``iris`` and ``forest``, version 1 each."""
    return registry


@pytest.fixture
def labelled_iris(
    registry: Registry, iris_model_path: Path, iris_frame: pd.DataFrame, iris_target: np.ndarray
) -> Registry:
    """A registry holding ``iris`` registered with its training data and labels (species)."""
    reference = iris_frame.assign(species=iris_target)
    register_model(registry, "iris", iris_model_path, reference=reference, target="species")
    return registry


@pytest.fixture
def forest_version(registry: Registry, forest_model_path: Path) -> ModelVersion:
    """The diabetes forest registered as ``forest`` version 1, no reference."""
    return register_model(registry, "forest", forest_model_path)


SOMETIMES_NAN = (
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, x):\n"
    "        x = np.asarray(x, dtype=float)\n"
    "        out = 2 * x[:, 0] + x[:, 1]\n"
    "        out[x[:, 0] > 1.5] = np.nan\n"
    "        return out\n"
)
"""A `.py` regression whose predictions are NaN where the first feature is over 1.5: rows
that MAE and RMSE leave out, at registration and live alike."""


COLORS = ["red", "blue", "green"]


def shop_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(COLORS, rows),
            "size": rng.normal(size=rows),
            "count": rng.integers(0, 5, rows),
        }
    )


def bought(frame: pd.DataFrame) -> pd.Series:
    return ((frame["size"] + (frame["color"] == "red")) > 0.5).astype(int)


@pytest.fixture(scope="session")
def shop_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A pipeline that one-hot encodes a text feature (``color``) beside two numbers: its
    file, and its reference CSV (with the label column ``bought``)."""
    frame = shop_frame(600, seed=0)
    encode = ColumnTransformer(
        [("color", OneHotEncoder(handle_unknown="ignore"), ["color"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, bought(frame))
    folder = tmp_path_factory.mktemp("shop")
    joblib.dump(model, folder / "shop.joblib")
    frame.assign(bought=bought(frame)).to_csv(folder / "shop.csv", index=False)
    return folder / "shop.joblib", folder / "shop.csv"


@pytest.fixture
def postgres_location() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def proxy(postgres_location: str) -> Iterator[DatabaseProxy]:
    """A proxy to the test PostgreSQL database, that a test takes down or pauses
    (``DatabaseProxy``): a registry opened at ``proxy.url`` loses its database with it."""
    proxy = DatabaseProxy(postgres_location)
    yield proxy
    proxy.close()
