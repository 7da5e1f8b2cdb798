"""register, models, versions, alias, rollback: what they print and what they change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelpilot.errors import ArtifactError, InvalidInput, ModelNotFound, RegistryError
from modelpilot.registry.store import Registry
from tests.cli.conftest import Run


def test_register_prints_the_version_number(
    run: Run, iris_model_path: Path, iris_csv: Path, registry_dir: Path
) -> None:
    first = run(
        "register",
        "iris",
        str(iris_model_path),
        "--reference",
        str(iris_csv),
        "--alias",
        "production",
        "-m",
        "auc=0.97",
        "--description",
        "first",
    )
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "1"
    assert "same file" not in first.stderr
    second = run("register", "iris", str(iris_model_path))
    assert second.stdout.strip() == "2"
    assert "the same file as version 1;" in second.stderr  # said, though it is allowed
    reg = Registry.open(registry_dir)
    try:
        v1 = reg.get_version("iris", 1)
        assert v1.metadata["auc"] == 0.97 and v1.metadata["description"] == "first"
        assert v1.has_reference and v1.aliases == ("production",)
        assert reg.resolve("iris").version == 1
    finally:
        reg.close()


def test_models_and_versions(run: Run, iris_model_path: Path, forest_model_path: Path) -> None:
    run("register", "iris", str(iris_model_path), "--alias", "production")
    run("register", "iris", str(iris_model_path))
    run("register", "forest", str(forest_model_path))
    listing = json.loads(run("models", "--json").stdout)
    assert [(m["name"], m["latest_version"], m["versions"]) for m in listing] == [
        ("forest", 1, 1),
        ("iris", 2, 2),
    ]
    assert listing[1]["aliases"] == {"production": 1}
    table = run("models").stdout
    assert "iris" in table and "production=1" in table
    versions = json.loads(run("versions", "iris", "--json").stdout)
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["signature"]["inputs"][0]["shape"] == [-1, 4]
    table = run("versions", "iris").stdout
    assert "sklearn" in table and "production" in table


def test_alias_and_rollback(run: Run, iris_model_path: Path) -> None:
    for _ in range(3):
        run("register", "iris", str(iris_model_path))
    assert run("alias", "iris", "production", "1").exit_code == 0
    moved = run("alias", "iris", "production", "3")
    assert "iris@production -> version 3 (was 1)" in moved.stdout
    back = run("rollback", "iris")
    assert "iris@production: version 3 -> 1" in back.stdout
    staging = run("alias", "iris", "staging", "2")
    assert staging.exit_code == 0
    assert "version 2 -> 1" not in run("rollback", "iris", "--alias", "staging").stdout
    run("alias", "iris", "staging", "3")
    assert "version 3 -> 2" in run("rollback", "iris", "--alias", "staging").stdout


def test_rollback_refuses_once_the_history_is_used_up(run: Run, iris_model_path: Path) -> None:
    """Not to version 1, which production never pointed at (a rejected candidate, say)."""
    run("register", "iris", str(iris_model_path))
    run("register", "iris", str(iris_model_path), "--alias", "production")
    refused = run("rollback", "iris")
    assert refused.exit_code != 0
    assert "no earlier version it pointed at" in str(refused.exception or refused.output)
    assert "iris@production: version" not in refused.stdout


def test_errors_are_raised_as_modelpilot_errors(run: Run, registry_dir: Path) -> None:
    Registry.open(registry_dir).close()  # empty (one that does not exist is another error)
    result = run("versions", "nope")
    assert isinstance(result.exception, ModelNotFound)


def test_errors_exit_1_with_one_line_and_no_traceback(
    tmp_path: Path, iris_model_path: Path
) -> None:
    registry = str(tmp_path / "registry")
    Registry.open(registry).close()  # empty (one that does not exist is another error)
    cases = [
        (["versions", "nope"], "no model named 'nope'"),
        (["register", "iris", str(tmp_path / "missing.joblib")], "no such model file"),
        (["register", "iris", str(iris_model_path), "--flavor", "tensorflow"], "unknown flavor"),
        (["register", "bad name", str(iris_model_path)], "invalid model name"),
        (["alias", "nope", "production", "1"], "no model named 'nope'"),
    ]
    for args, message in cases:
        proc = _installed(*args, "--registry", registry)
        assert proc.returncode == 1, (args, proc.stderr)
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2_with_a_hint_and_no_traceback(tmp_path: Path) -> None:
    """Through the installed entry point, whichever click the installed Typer uses."""
    cases = [
        (["serve", "--no-such-flag"], "No such option: --no-such-flag"),
        (["register"], "Missing argument"),
        (["versions"], "Missing argument"),
        (["predict", "iris", str(tmp_path / "rows.csv"), "--batch-size", "0"], "--batch-size"),
        (["alias", "iris", "production", "1_0"], "'1_0' is no version number"),  # not 10
    ]
    for args, message in cases:
        proc = _installed(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "--help" in proc.stderr and "Traceback" not in proc.stderr
    bare = _installed(cwd=tmp_path)
    assert "Commands:" in bare.stdout + bare.stderr and "Traceback" not in bare.stderr


def test_a_bad_setting_is_named_as_it_was_set_without_a_traceback(tmp_path: Path) -> None:
    proc = _installed(
        "serve",
        "--http-port",
        "99999",
        cwd=tmp_path,
        env={"MODELPILOT_MONITOR_SAMPLE_RATE": "2", "MODELPILOT_MAX_BATCH_SIZE": "many"},
    )
    assert proc.returncode == 1, proc.stderr
    message = " ".join(proc.stderr.split())  # rich wraps at 80 columns
    assert message.startswith("error: bad setting: ")
    assert "--http-port=99999: Input should be less than or equal to 65535" in message
    assert "MODELPILOT_MONITOR_SAMPLE_RATE=2: Input should be less than or equal to 1" in message
    assert "MODELPILOT_MAX_BATCH_SIZE=many: Input should be a valid integer" in message
    assert "Traceback" not in proc.stderr


def test_errors_are_printed_as_text_not_markup(tmp_path: Path, iris_model_path: Path) -> None:
    """Rich read square brackets in an error as markup: "pip install 'modelpilot[lightgbm]'"
    came out as "pip install 'modelpilot'", and a path holding "[/old]" ended in Rich's
    MarkupError traceback."""
    registry = str(tmp_path / "reg")
    assert _installed("register", "iris", str(iris_model_path), "-r", registry).returncode == 0
    for name in ("rows[old].csv", "rows[/old].csv"):  # the second in a directory "rows["
        proc = _installed("predict", "iris", name, "-r", registry, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert name.removesuffix(".csv") in " ".join(proc.stderr.split()), proc.stderr


def _installed(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``modelpilot ARGS`` as the installed entry point runs it, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "modelpilot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=None if env is None else os.environ | env,
    )


def test_help_explains_every_verb(run: Run) -> None:
    result = run("--help", registry=False)
    for verb in ("register", "models", "versions", "alias", "rollback", "serve", "predict", "demo"):
        assert verb in result.stdout
    assert "--reference" in run("register", "--help", registry=False).stdout


def test_a_model_whose_features_are_text_registers_and_scores_a_file(
    run: Run, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"color": rng.choice(["red", "blue"], 200), "size": rng.normal(size=200)})
    encode = ColumnTransformer([("c", OneHotEncoder(), ["color"])], remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression()).fit(frame, frame["size"] > 0)
    joblib.dump(model, tmp_path / "shop.joblib")
    frame.to_csv(tmp_path / "shop.csv", index=False)
    result = run(
        "register", "shop", str(tmp_path / "shop.joblib"), "--reference", str(tmp_path / "shop.csv")
    )
    assert result.exit_code == 0, result.output
    listing = run("versions", "shop").stdout
    assert "BYTES" in listing and "FP64" in listing  # each feature in its own kind
    # --json lists the inputs a client sends, as the server's metadata does: one per feature.
    (version,) = json.loads(run("versions", "shop", "--json").stdout)
    assert [(i["name"], i["datatype"]) for i in version["inputs"]] == [
        ("color", "BYTES"),
        ("size", "FP64"),
    ]
    # Columns in another order, as a file may have them: they go by name.
    frame[["size", "color"]].iloc[:50].to_csv(tmp_path / "rows.csv", index=False)
    scored = run("predict", "shop", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "out.csv"))
    assert scored.exit_code == 0, scored.output
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_array_equal(out["predict"], model.predict(frame.iloc[:50]))
    # A cell left empty where the model takes text is found in the file, by row and column.
    frame.loc[3, "color"] = None
    frame.iloc[:50].to_csv(tmp_path / "holes.csv", index=False)
    holes = run("predict", "shop", str(tmp_path / "holes.csv"), "-o", str(tmp_path / "h.csv"))
    assert holes.exit_code != 0
    assert "data row 4, column 'color' is empty" in str(holes.exception)


def test_an_alias_set_twice_to_a_version_rolls_back_to_where_it_was(
    run: Run, iris_model_path: Path
) -> None:
    for _ in range(3):
        run("register", "iris", str(iris_model_path))
    run("alias", "iris", "canary", "1")
    run("alias", "iris", "canary", "3")
    again = run("alias", "iris", "canary", "3")
    assert "iris@canary -> version 3 (it pointed there already)" in again.stdout
    assert "iris@canary: version 3 -> 1" in run("rollback", "iris", "-a", "canary").stdout


def test_commands_that_only_read_or_move_aliases_create_no_registry(
    run: Run, iris_model_path: Path, tmp_path: Path
) -> None:
    """A mistyped --registry is said to be one; an empty registry made there answered
    "No models yet". Registering creates the registry, as before."""
    typo = tmp_path / "typo" / "path"
    for args in (
        ["models"],
        ["versions", "iris"],
        ["alias", "iris", "production", "1"],
        ["rollback", "iris"],
        ["drift", "--model", "iris"],
    ):
        result = run(*args, "--registry", str(typo), registry=False)
        assert isinstance(result.exception, RegistryError), (args, result.output)
        assert f"there is no registry at {typo} (no such directory)" in str(result.exception)
        assert not (tmp_path / "typo").exists(), args
    registered = run(
        "register", "iris", str(iris_model_path), "--registry", str(typo), registry=False
    )
    assert registered.exit_code == 0, registered.output
    assert "iris" in run("models", "--registry", str(typo), registry=False).stdout


def test_a_pickle_of_code_this_python_cannot_import_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """Through the installed entry point, as the tester met it: a model saved by a script
    that defined its own transformer, and one whose transformer's module is not installed
    here, are refused with exit code 1 and what to do, not a traceback."""
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "mytransforms.py").write_text(
        "from sklearn.base import BaseEstimator, TransformerMixin\n"
        "class Halver(BaseEstimator, TransformerMixin):\n"
        "    def fit(self, x, y=None): return self\n"
        "    def transform(self, x): return x / 2\n"
    )
    (tmp_path / "train.py").write_text(
        "import sys\n"
        "import joblib\n"
        "from sklearn.base import BaseEstimator, TransformerMixin\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "sys.path.insert(0, 'modules')\n"
        "from mytransforms import Halver\n"
        "class Doubler(BaseEstimator, TransformerMixin):\n"
        "    def fit(self, x, y=None): return self\n"
        "    def transform(self, x): return x * 2\n"
        "x, y = load_iris(return_X_y=True)\n"
        "joblib.dump(make_pipeline(Doubler(), LogisticRegression()).fit(x, y), 'main.joblib')\n"
        "joblib.dump(make_pipeline(Halver(), LogisticRegression()).fit(x, y), 'module.joblib')\n"
    )
    trained = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert trained.returncode == 0, trained.stderr
    cases = [
        ("main.joblib", "refers to the class or function 'Doubler' of the script that saved"),
        ("module.joblib", "needs the module 'mytransforms' to be unpickled"),
    ]
    for file, message in cases:
        proc = _installed("register", "m", file, "--registry", "registry", cwd=tmp_path)
        assert proc.returncode == 1, (file, proc.stderr)
        assert message in " ".join(proc.stderr.split()), proc.stderr  # as rich wrapped it
        assert "Traceback" not in proc.stderr


def test_a_classifier_of_two_targets_is_refused(run: Run, tmp_path: Path) -> None:
    """It failed in the database, on classes it could not store (one array per target)."""
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = MultiOutputClassifier(LogisticRegression(max_iter=500))
    joblib.dump(model.fit(x, np.column_stack([y, y > 1])), tmp_path / "two.joblib")
    x.to_csv(tmp_path / "x.csv", index=False)
    result = run(
        "register", "two", str(tmp_path / "two.joblib"), "--reference", str(tmp_path / "x.csv")
    )
    assert isinstance(result.exception, ArtifactError), result.output
    assert "(MultiOutputClassifier) predicts 2 targets at once" in str(result.exception)


def test_a_regressors_target_of_text_is_refused_by_name(run: Run, tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    joblib.dump(LinearRegression().fit(x, y), tmp_path / "regressor.joblib")
    labels = [f"{v} cm" if i >= 3 else str(v) for i, v in enumerate(y)]  # numbers, then not
    x.assign(length=labels).to_csv(tmp_path / "train.csv", index=False)
    result = run(
        "register",
        "regressor",
        str(tmp_path / "regressor.joblib"),
        "--reference",
        str(tmp_path / "train.csv"),
        "--target",
        "length",
    )
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception).startswith(
        "the target column 'length' holds values that are not numbers ('0 cm', '1 cm', "
        "'2 cm': 147 of 150 rows, the first in data row 4), but the model is a regressor"
    )


def test_a_reference_with_its_label_column_gets_a_hint_naming_target(
    run: Run, tmp_path: Path, iris_model_path: Path, iris_frame: pd.DataFrame
) -> None:
    """Training data kept with its labels has one column more than the model takes: it is
    left out, as any column beside the model's named features (an id), and registration
    says how to name it the label."""
    iris_frame.assign(species=load_iris().target).to_csv(tmp_path / "train.csv", index=False)
    args = ("register", "iris", str(iris_model_path), "--reference", str(tmp_path / "train.csv"))
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert (
        "warning: the reference's column 'species' is no feature of the model, left out of "
        "its profile; if it is the label, name it with --target species"
    ) in " ".join(result.stderr.split())
    labelled = run(*args, "--target", "species")
    assert labelled.exit_code == 0 and "warning" not in labelled.stderr, labelled.output


def test_the_target_hint_names_no_column_the_model_does_not_tell(run: Run, tmp_path: Path) -> None:
    """A model fitted on an array has no feature names to tell the label column by."""
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), tmp_path / "iris.joblib")
    columns = ["a", "b", "c", "d"]
    frame = pd.DataFrame(x, columns=columns)
    frame.assign(label=y).to_csv(tmp_path / "train.csv", index=False)
    frame.assign(label=y, other=y).to_csv(tmp_path / "wide.csv", index=False)
    model = str(tmp_path / "iris.joblib")
    result = run("register", "iris", model, "--reference", str(tmp_path / "train.csv"))
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception).endswith(
        "takes 4 features per row; if one column is the label, name it with --target COLUMN"
    )
    # Two columns too many: not a label column alone, so no hint.
    result = run("register", "iris", model, "--reference", str(tmp_path / "wide.csv"))
    assert isinstance(result.exception, InvalidInput), result.output
    assert str(result.exception).endswith("takes 4 features per row")
