"""What ONNX Runtime's memory options and running large batches in chunks of rows cost and
save, side by side, on a wide one-hot pipeline (docs/memory.md).

The model: a scikit-learn pipeline that one-hot encodes five text columns (30,000, 3,000, 300,
30 and 10 categories) beside 495 numeric columns, converted as the server converts it (one
input per feature, float32). Each variant runs an 8,000-row batch three times in a process of
its own, which reports its peak (VmHWM) and what it holds afterwards (VmRSS) over its size
before the batch. The timings run the benchmark's two models (logistic regression and a
random forest of 50 trees of depth 8, 20 features) and the wide one, a row and 64 rows a call,
every option's session in turn in one process, medians over the rounds.

    python bench/onnx_memory.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CATEGORIES = [30_000, 3_000, 300, 30, 10]
FEATURES = 500
ROWS = 8_000

VARIANTS: dict[str, dict[str, Any]] = {
    "arena on (ONNX Runtime's default)": {"arena": True, "same": False, "chunk": None},
    "(a) arena off": {"arena": False, "same": False, "chunk": None},
    "arena kSameAsRequested": {"arena": True, "same": True, "chunk": None},
    "(b) chunks by estimate (the change)": {"arena": True, "same": False, "chunk": "estimate"},
    "(b) chunks of 1,024 rows": {"arena": True, "same": False, "chunk": 1024},
    "(c) chunks by estimate + arena off": {"arena": False, "same": False, "chunk": "estimate"},
    "chunks by estimate + kSameAsRequested": {"arena": True, "same": True, "chunk": "estimate"},
}

_env_arena = False


def session(path: Path, arena: bool, same: bool) -> Any:
    """A session as ``OnnxRuntime.load`` makes one, with the arena ``arena`` and, with
    ``same``, the arena growing by what is asked (kSameAsRequested)."""
    import onnxruntime as ort

    global _env_arena
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena
    if same:
        # Python sets an arena's extend strategy only on an allocator of the environment
        # (the whole process), which a session then opts into.
        if not _env_arena:
            info = ort.OrtMemoryInfo(
                "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
            )
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))
            _env_arena = True
        options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build(folder: Path) -> None:
    """The wide pipeline's graph and the 8,000-row batch (one .npy per input)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from modelpilot.runtimes.convert import sklearn_columns_to_onnx

    rng = np.random.default_rng(0)
    text = [f"t{i}" for i in range(len(CATEGORIES))]
    numbers = [f"x{j}" for j in range(FEATURES - len(CATEGORIES))]

    def frame(rows: int, every: bool = False) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for name, count in zip(text, CATEGORIES, strict=True):
            codes = np.arange(rows) % count if every else rng.integers(0, count, rows)
            columns[name] = [f"c{c}" for c in codes]
        values = rng.normal(size=(rows, len(numbers)))
        columns.update({name: values[:, j] for j, name in enumerate(numbers)})
        return pd.DataFrame(columns)

    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), text),
            ("numbers", StandardScaler(), numbers),
        ]
    ).fit(frame(max(CATEGORIES), every=True))
    sample = frame(2_000)
    y = ((sample["x0"] + (sample["t3"] == "c1")) > 0.3).astype(np.int64)
    model = make_pipeline(
        encode, LogisticRegression(solver="liblinear").fit(encode.transform(sample), y)
    )
    kinds = ["BYTES"] * len(text) + ["FP32"] * len(numbers)
    graph = sklearn_columns_to_onnx(model, [*text, *numbers], kinds, np.float32)
    (folder / "wide.onnx").write_bytes(graph)
    batch = frame(ROWS)
    for name in text:
        np.save(folder / f"{name}.npy", batch[name].to_numpy(dtype=object).reshape(-1, 1))
    for name in numbers:
        np.save(folder / f"{name}.npy", batch[name].to_numpy(np.float32).reshape(-1, 1))


def load_batch(folder: Path) -> dict[str, np.ndarray]:
    names = [f"t{i}" for i in range(len(CATEGORIES))]
    names += [f"x{j}" for j in range(FEATURES - len(CATEGORIES))]
    return {n: np.load(folder / f"{n}.npy", allow_pickle=True) for n in names}


def _status() -> dict[str, float]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS")}


def memory(folder: Path, name: str) -> dict[str, Any]:
    """One variant, in this process (a fresh one: see ``main``)."""
    from modelpilot.runtimes.onnx_rows import bytes_per_row, rows_per_call, run_in_chunks

    variant = VARIANTS[name]
    graph = folder / "wide.onnx"
    batch = load_batch(folder)
    run = session(graph, variant["arena"], variant["same"])
    chunk = variant["chunk"]
    if chunk == "estimate":
        chunk = rows_per_call(bytes_per_row(graph))
    run.run(None, {n: a[:1] for n, a in batch.items()})
    before = _status()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM from here on
    seconds = []
    outputs: list[np.ndarray] = []
    for _ in range(3):
        started = time.perf_counter()
        if chunk is None:
            outputs = run.run(None, batch)
        else:
            outputs = run_in_chunks(lambda part: run.run(None, part), batch, chunk)
        seconds.append(time.perf_counter() - started)
    after = _status()
    np.save(folder / f"out-{list(VARIANTS).index(name)}.npy", outputs[1])
    return {
        "variant": name,
        "rows_per_call": chunk or ROWS,
        "peak_mb": round(after["VmHWM"] - before),
        "after_mb": round(after["VmRSS"] - before),
        "seconds": round(float(np.median(seconds)), 2),
    }


def timings(folder: Path, rounds: int) -> list[dict[str, Any]]:
    """Microseconds a call of a row and of 64 rows, each option's session in turn."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 20))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    models = {
        "logreg": LogisticRegression(max_iter=1000).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(x, y),
    }
    graphs = {"wide": folder / "wide.onnx"}
    feeds: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for name, model in models.items():
        graphs[name] = folder / f"{name}.onnx"
        onx = to_onnx(model, x[:1].astype(np.float32), options={"zipmap": False})
        graphs[name].write_bytes(onx.SerializeToString())
        feeds[name] = {n: {"X": x[:n].astype(np.float32)} for n in (1, 64)}
    batch = load_batch(folder)
    feeds["wide"] = {n: {k: a[:n] for k, a in batch.items()} for n in (1, 64)}
    options = {"arena on": (True, False), "arena off": (False, False)}
    options["kSameAsRequested"] = (True, True)
    sessions = {(m, o): session(graphs[m], *v) for m in graphs for o, v in options.items()}
    calls = {"logreg": 2000, "forest": 500, "wide": 20}
    found: dict[tuple[str, str, int], list[float]] = {}
    for (model, _), run in sessions.items():
        for feed in feeds[model].values():
            run.run(None, feed)
    for _ in range(rounds):
        for (model, option), run in sessions.items():
            for rows, feed in feeds[model].items():
                started = time.perf_counter()
                for _ in range(calls[model]):
                    run.run(None, feed)
                elapsed = (time.perf_counter() - started) / calls[model] * 1e6
                found.setdefault((model, option, rows), []).append(elapsed)
    return [
        {"model": m, "option": o, "rows": r, "us": round(float(np.median(v)), 1)}
        for (m, o, r), v in found.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(memory(args.folder, args.variant)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder)
        results = []
        for name in VARIANTS:
            done = subprocess.run(
                [sys.executable, __file__, "--folder", str(folder), "--variant", name],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(done.stdout.splitlines()[-1]))
        reference = np.load(folder / "out-0.npy")
        print("| variant | rows a call | peak MB | held after MB | s per batch | same answers |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for index, r in enumerate(results):
            same = np.array_equal(np.load(folder / f"out-{index}.npy"), reference)
            print(
                f"| {r['variant']} | {r['rows_per_call']:,} | {r['peak_mb']:,} | "
                f"{r['after_mb']:,} | {r['seconds']} | {'yes' if same else 'NO'} |"
            )
        print()
        options = ("arena on", "arena off", "kSameAsRequested")
        print("| model | rows | " + " | ".join(options) + " |")
        print("| --- | ---: | ---: | ---: | ---: |")
        table: dict[tuple[str, int], dict[str, float]] = {}
        for t in timings(folder, args.rounds):
            table.setdefault((t["model"], t["rows"]), {})[t["option"]] = t["us"]
        for (model, rows), by in table.items():
            cells = " | ".join(f"{by[o]:,} µs" for o in options)
            print(f"| {model} | {rows} | {cells} |")


if __name__ == "__main__":
    main()
