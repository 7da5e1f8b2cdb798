"""A large batch to a wide one-hot graph: ONNX Runtime's memory stays bounded, answers do not
change.

A pipeline that one-hot encodes a text column of 10,000 categories, converted as the server
converts it, is 40 KB per row per dense tensor in ONNX Runtime. 8,000 rows in one call took
some 650 MB over the process's size, and its memory arena kept them; in chunks of rows the
same batch stays under 150 MB. Each batch runs in a process of its own, so that its peak
(VmHWM) and what stays (VmRSS) are its alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelpilot.runtimes.convert import sklearn_columns_to_onnx

CATEGORIES = 10_000
ROWS = 8_000
FEATURES = ["city", "age", "income"]
BOUND_MB = 150
"""What the batch may add to the process, peak and after: its inputs and outputs are a few
MB; ONNX Runtime's dense one-hot of the whole batch alone is 320 MB, and twice that with the
concatenation of the encoded columns."""


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "city": [f"city_{i}" for i in rng.integers(0, CATEGORIES, rows)],
            "age": rng.integers(18, 80, rows).astype(np.float64),
            "income": rng.normal(50.0, 10.0, rows),
        }
    )


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The graph (as the server converts it, float32), the batch, and scikit-learn's
    probabilities for it."""
    folder = tmp_path_factory.mktemp("wide")
    # Every category once for the encoder; the classifier needs no more than a few rows.
    train = _frame(CATEGORIES, seed=0).assign(city=[f"city_{i}" for i in range(CATEGORIES)])
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("numbers", StandardScaler(), FEATURES[1:]),
        ]
    ).fit(train)
    sample = train.sample(1_000, random_state=0)
    y = ((sample["age"] > 50) ^ sample["city"].str.endswith("7")).astype(np.int64)
    classifier = LogisticRegression(solver="liblinear").fit(encode.transform(sample), y)
    model = make_pipeline(encode, classifier)
    graph = folder / "wide.onnx"
    graph.write_bytes(
        sklearn_columns_to_onnx(model, FEATURES, ["BYTES", "FP32", "FP32"], np.float32)
    )
    batch = _frame(ROWS, seed=2)
    np.save(folder / "city.npy", batch["city"].to_numpy(dtype=object).reshape(-1, 1))
    for name in FEATURES[1:]:
        np.save(folder / f"{name}.npy", batch[name].to_numpy(np.float32).reshape(-1, 1))
    return {"graph": graph, "folder": folder, "proba": model.predict_proba(batch)}


_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np
from modelpilot.runtimes.flavors import load_runtime

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS")}

graph, folder, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
names = ["city", "age", "income"]
batch = {n: np.load(folder / f"{n}.npy", allow_pickle=True) for n in names}
runtime = load_runtime("onnx", graph)
runtime.predict({n: a[:1] for n, a in batch.items()})
before = status()["VmRSS"]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # peak (VmHWM) from here on
if mode == "predict":
    out = runtime.predict(batch)
else:  # the whole batch in one call of ONNX Runtime, as before chunks
    wanted = [o.name for o in runtime.session.get_outputs()]
    out = dict(zip(wanted, runtime.session.run(wanted, batch)))
after = status()
np.savez(folder / f"{mode}.npz", **out)
print(json.dumps({"peak_mb": after["VmHWM"] - before, "after_mb": after["VmRSS"] - before,
                  "rows_per_call": getattr(runtime, "_chunk_rows", None)}))
"""


def _run(wide: dict[str, Any], mode: str) -> dict[str, Any]:
    """``mode`` (``predict``, or ``whole`` for one call of the session) in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(wide["graph"]), str(wide["folder"]), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    outputs = np.load(Path(wide["folder"]) / f"{mode}.npz", allow_pickle=True)
    result["outputs"] = {name: outputs[name] for name in outputs.files}
    return result


@pytest.fixture(scope="module")
def predicted(wide: dict[str, Any]) -> dict[str, Any]:
    return _run(wide, "predict")


def test_a_large_batch_to_a_wide_one_hot_graph_stays_within_bounded_memory(
    predicted: dict[str, Any],
) -> None:
    assert predicted["peak_mb"] < BOUND_MB, predicted
    assert predicted["after_mb"] < BOUND_MB, predicted


def test_chunks_answer_as_one_call_on_the_whole_batch(
    wide: dict[str, Any], predicted: dict[str, Any]
) -> None:
    assert predicted["rows_per_call"] is not None and predicted["rows_per_call"] < ROWS // 4
    whole = _run(wide, "whole")["outputs"]
    chunked = predicted["outputs"]
    assert sorted(chunked) == sorted(whole) == ["label", "probabilities"]
    for name, expected in whole.items():
        assert chunked[name].dtype == expected.dtype
        np.testing.assert_array_equal(chunked[name], expected)
    # and they are the pipeline's answers (a float32 graph's, within the parity check's bound)
    np.testing.assert_allclose(chunked["probabilities"], wide["proba"], rtol=1e-4, atol=1e-5)
