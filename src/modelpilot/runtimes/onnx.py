"""ONNX models, served by ONNX Runtime on the CPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError, ModelFailure
from modelpilot.registry.signature import Signature, TensorSpec
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.onnx_rows import (
    WHOLE_ROWS,
    RowsMixed,
    bytes_per_row,
    rows_per_call,
    run_in_chunks,
)

_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _spec(node: Any, kind: str) -> TensorSpec:
    """The spec of an ONNX graph's ``kind`` (``input`` or ``output``) ``node``; ArtifactError
    for a type the protocol has no datatype for, naming which node and why."""
    datatype = _TYPES.get(node.type)
    if datatype is None:
        raise ArtifactError(_unsupported(node.name, node.type, kind))
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


def _unsupported(name: str, onnx_type: str, kind: str) -> str:
    """Why an ONNX ``kind`` ``name`` of ``onnx_type`` cannot be served, and what to do."""
    if onnx_type.startswith("tensor("):
        # bfloat16, float8, int4, complex...: element types the protocol's datatypes lack.
        element = onnx_type[len("tensor(") : -1]
        supported = ", ".join(t[len("tensor(") : -1] for t in _TYPES)
        return (
            f"ONNX {kind} {name!r} has element type {element}, which the Open Inference "
            f"Protocol has no datatype for; this server takes tensors of {supported}: cast "
            f"the {kind} to one of them in the graph (a Cast node)"
        )
    message = (
        f"ONNX {kind} {name!r} has type {onnx_type}, which is not a tensor; the Open "
        "Inference Protocol carries tensors only"
    )
    if kind == "output":
        # skl2onnx's ZipMap output is a sequence of maps, which no tensor protocol carries.
        message += "; convert scikit-learn classifiers with options={'zipmap': False}"
    return message


_CLASS_LABELS = ("classlabels_ints", "classlabels_int64s", "classlabels_strings")
"""The attributes in which ONNX-ML's classifier operators (``LinearClassifier``,
``TreeEnsembleClassifier``, ``SVMClassifier``) hold their classes, in the order of their
scores."""


def graph_classes(path: Path) -> list[Any] | None:
    """The classes an ONNX classifier's graph states, if it states one list of them.

    They are where ONNX-ML's classifier operators keep them (``_CLASS_LABELS``), and, for
    the models skl2onnx converts with no such operator (a neural network, naive Bayes,
    nearest neighbours), the constant array of labels an ``ArrayFeatureExtractor`` picks
    each row's label from by the index of its highest probability (``ArgMax``). Graphs that
    hold several different lists (one-against-the-rest: ``[0, 1]`` per class) or none state
    no classes of the model, and give None."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # ONNX Runtime took the file: this reading is no reason to refuse it
        return None
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = attribute.t
    argmax = {out for node in graph.node if node.op_type == "ArgMax" for out in node.output}
    found: list[list[Any]] = []
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_LABELS:
                labels: list[Any] = list(attribute.ints)
                labels = labels or [v.decode() for v in attribute.strings]
                if labels:
                    found.append(labels)
        if (
            node.op_type == "ArrayFeatureExtractor"
            and len(node.input) == 2
            and node.input[0] in constants
            and node.input[1] in argmax
        ):
            values = numpy_helper.to_array(constants[node.input[0]]).ravel().tolist()
            found.append([v.decode() if isinstance(v, bytes) else v for v in values])
    distinct = {tuple(labels) for labels in found}
    return list(found[0]) if len(distinct) == 1 else None


class OnnxRuntime(Runtime):
    """An ONNX graph in an ``onnxruntime.InferenceSession`` (thread-safe for ``run``)."""

    flavor = "onnx"

    def __init__(
        self, session: Any, signature: Signature | None, size: int, path: Path | None = None
    ) -> None:
        self.session = session
        self._size = size
        self._path = path
        self._inputs = {node.name: _spec(node, "input") for node in session.get_inputs()}
        # The session's inputs and outputs; the classes the graph states are read only where
        # a signature is inferred to be stored (a graph of 10 MB takes some 70 ms to read,
        # which every load of a model converted for speed would pay again).
        self.signature = signature or self._session_signature()
        # Large batches run in chunks of rows (onnx_rows) where every input and output is a
        # tensor of rows; how many rows a chunk takes is read off the graph on first need.
        self._chunkable = path is not None and all(
            node.shape and not isinstance(node.shape[0], int)
            for node in (*session.get_inputs(), *session.get_outputs())
        )
        self._chunk_rows: int | None = None
        self._chunk_rows_known = False

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        try:
            import onnxruntime as ort
        except ImportError:
            from modelpilot.errors import MissingExtra

            raise MissingExtra("onnxruntime", "onnx") from None
        so = ort.SessionOptions()
        # A graph ORT already optimized (cached by an earlier load) needs no second pass.
        so.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if options.get("optimized")
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        if options.get("save_optimized"):
            so.optimized_model_filepath = str(options["save_optimized"])
        so.intra_op_num_threads = int(options.get("intra_op_threads", 1))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ArtifactError(f"{path.name} is not a valid ONNX model: {exc}") from exc
        return cls(session, signature, path.stat().st_size, path)

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        signature = self._session_signature()
        width = signature.n_features
        if feature_names and signature.is_tabular and width in (None, len(feature_names)):
            signature = replace(signature, feature_names=tuple(feature_names))
        classes = self._classes(signature)
        if classes:
            signature = replace(signature, extra={"classes": classes})
        return signature

    def _session_signature(self) -> Signature:
        """The inputs and outputs ONNX Runtime reads off the graph."""
        inputs = tuple(self._inputs.values())
        outputs = tuple(_spec(node, "output") for node in self.session.get_outputs())
        return Signature(inputs=inputs, outputs=outputs, allow_nan=False)

    def _classes(self, signature: Signature) -> list[Any] | None:
        """A classifier's classes, in the order of its probabilities' columns, as its graph
        states them (see ``graph_classes``); None for other models, or where the graph
        does not say them once.

        Without them a label is not checked against the classes, and no AUC is measured: the
        probabilities' columns are no classes that labels could be matched to."""
        proba = signature.probabilities
        label = signature.main_output
        if proba is None or label is None or self._path is None:
            return None
        if not (label.datatype == "BYTES" or label.datatype.startswith(("INT", "UINT"))):
            return None
        classes = graph_classes(self._path)
        if classes is None or proba.shape[1] not in (-1, len(classes)):
            return None
        text = [isinstance(c, str) for c in classes]
        if any(text) != (label.datatype == "BYTES") or any(text) != all(text):
            return None  # classes of another kind than the labels the model gives
        return classes

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        wanted = list(outputs) or [spec.name for spec in self.signature.outputs]
        feed = {}
        for name, array in batch.items():
            if self._inputs[name].datatype == "BYTES":
                array = np.array(
                    [v.decode() if isinstance(v, bytes) else v for v in array.ravel()], dtype=object
                ).reshape(array.shape)
            feed[name] = array
        first = next(iter(feed.values()), None)  # its rows decide (a 0-d one has none)
        try:
            if self._chunkable and first is not None and first.shape[:1] > (WHOLE_ROWS,):
                results = self._run_large(wanted, feed)
            else:
                results = self.session.run(wanted, feed)
        except Exception as exc:
            raise ModelFailure(f"ONNX Runtime failed: {exc}") from exc
        return {name: np.asarray(value) for name, value in zip(wanted, results, strict=True)}

    def _run_large(self, wanted: list[str], feed: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """The session's outputs ``wanted`` for a large batch, in chunks of rows so that ONNX
        Runtime's intermediates (and the arena that keeps them) stay bounded; how many rows a
        chunk takes is read off the graph once, by the first large batch."""
        if not self._chunk_rows_known:
            # Racing threads read the graph twice at worst, and agree.
            assert self._path is not None
            self._chunk_rows = rows_per_call(bytes_per_row(self._path))
            self._chunk_rows_known = True
        rows = self._chunk_rows
        lengths = {array.shape[0] if array.ndim else 0 for array in feed.values()}
        if rows is None or len(lengths) != 1 or rows >= lengths.pop():
            return self.session.run(wanted, feed)  # type: ignore[no-any-return]
        try:
            return run_in_chunks(lambda chunk: self.session.run(wanted, chunk), feed, rows)
        except RowsMixed:
            # A graph that mixes its rows: it runs whole from now on, as it always did.
            self._chunkable = False
            return self.session.run(wanted, feed)  # type: ignore[no-any-return]

    @property
    def memory_bytes(self) -> int:
        return self._size
