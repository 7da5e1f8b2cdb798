"""Plain Python models: a ``.py`` file defining a class with ``predict()`` (and ``load()``).

Importing the file runs it, like unpickling: servers only load registry artifacts whose
sha256 matches the one recorded at registration.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelpilot.errors import ArtifactError, InvalidInput, clipped
from modelpilot.protocol.datatypes import DATATYPES, datatype_of
from modelpilot.registry.signature import TASKS, Signature, TensorSpec
from modelpilot.runtimes.base import Batch, Runtime
from modelpilot.runtimes.tabular import INPUT, feature_names_for, input_spec

_counter = itertools.count()
_import_lock = threading.Lock()


def _model_class(module: Any, path: Path) -> type:
    own = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and callable(getattr(obj, "predict", None))
    ]
    named = [cls for cls in own if cls.__name__ == "Model"]
    if named:
        return named[0]
    if len(own) == 1:
        return own[0]
    names = ", ".join(cls.__name__ for cls in own) or "none"
    raise ArtifactError(
        f"{path.name} must define one class with a predict() method, or name it Model; "
        f"found: {names}"
    )


class PythonRuntime(Runtime):
    """An instance of the user's class; ``predict`` gets the batch's single array (or dict),
    its text as ``str`` (see ``_as_text``)."""

    flavor = "python"

    def __init__(self, instance: Any, signature: Signature | None) -> None:
        self.instance = instance
        self._task = _stated_task(instance)
        if signature is None:  # (a stored one has the task registration settled on)
            declared = getattr(instance, "signature", None)
            if isinstance(declared, dict):
                signature = _declared(declared, type(instance).__name__)
            self.output_assumed = signature is None
            signature = self._with_task(
                signature
                or Signature(
                    inputs=(TensorSpec(INPUT, "FP64", (-1, -1)),),
                    outputs=(TensorSpec("predict", "FP64", (-1,)),),
                )
            )
        self.signature = signature

    @classmethod
    def load(cls, path: Path, signature: Signature | None = None, **options: Any) -> Runtime:
        name = f"modelpilot_user_model_{next(_counter)}"
        # Stored artifacts have no .py suffix, so the loader must be named explicitly.
        loader = importlib.machinery.SourceFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        if spec is None or spec.loader is None:
            raise ArtifactError(f"cannot import {path.name} as Python")
        module = importlib.util.module_from_spec(spec)
        with _import_lock:
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                if isinstance(exc, ModuleNotFoundError) and exc.name:
                    raise ArtifactError(
                        f"importing {path.name} failed: it imports the module {exc.name!r}, "
                        "which this Python does not have; install the package that provides "
                        "it (or add the folder that holds it to PYTHONPATH)"
                    ) from exc
                raise ArtifactError(f"importing {path.name} failed: {exc!r}") from exc
        model_class = _model_class(module, path)
        # The user's own code, run to make the model ready: whatever it raises (a file it
        # reads is missing, a pickle it loads names code this Python lacks) means the model
        # cannot be loaded, and says why.
        step = f"{model_class.__name__}()"
        try:
            instance = model_class()
            if callable(getattr(instance, "load", None)):
                step = f"{model_class.__name__}.load()"
                instance.load()
        except Exception as exc:
            raise ArtifactError(f"{path.name}: {step} failed: {type(exc).__name__}: {exc}") from exc
        return cls(instance, signature)

    def infer_signature(
        self, example: np.ndarray | None = None, feature_names: Sequence[str] | None = None
    ) -> Signature:
        if isinstance(getattr(self.instance, "signature", None), dict) or example is None:
            return self.signature
        try:
            result = self.predict({INPUT: example[:2]})
        except Exception as exc:
            raise InvalidInput(
                f"the model cannot predict on the reference data: {clipped(str(exc))}"
            ) from exc
        outputs = tuple(
            TensorSpec(name, datatype_of(array), (-1, *array.shape[1:]))
            for name, array in result.items()
        )
        width = example.shape[1] if example.ndim == 2 else None
        return self._with_task(
            Signature(
                inputs=(input_spec(width, example),),
                outputs=outputs,
                feature_names=feature_names_for(None, feature_names, width),
            )
        )

    def _with_task(self, signature: Signature) -> Signature:
        """``signature`` with the task the model's class states, if it states one."""
        if self._task is None:
            return signature
        return replace(signature, extra={**signature.extra, "task": self._task})

    def predict(self, batch: Batch, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        batch = {name: _as_text(array) for name, array in batch.items()}
        arg: Any = next(iter(batch.values())) if len(batch) == 1 else batch
        result = self.instance.predict(arg)
        if isinstance(result, dict):
            arrays = {str(k): np.asarray(v) for k, v in result.items()}
        else:
            first = self.signature.outputs[0].name if self.signature.outputs else "predict"
            arrays = {first: np.asarray(result)}
        if outputs:
            return {name: arrays[name] for name in outputs if name in arrays}
        return arrays


def _stated_task(instance: Any) -> str | None:
    """The task the model's class states in a ``task`` attribute, ``"classification"`` or
    ``"regression"``: whole numbers answered by a regressor (counts, whole prices) were
    otherwise watched as one class per value. ArtifactError for text that is neither."""
    task = getattr(instance, "task", None)
    if not isinstance(task, str):  # (none, or an attribute of the model's own by that name)
        return None
    if task not in TASKS:
        raise ArtifactError(
            f"{type(instance).__name__}.task is {task!r}; it says what the model's prediction "
            f"is: {' or '.join(repr(t) for t in TASKS)}"
        )
    return task


def _declared(declared: dict[str, Any], owner: str) -> Signature:
    """The signature a model's class declares, or ArtifactError saying what is wrong with it:
    found when the model is registered, not as a 500 on its first request."""
    where = f"{owner}.signature"
    try:
        signature = Signature.from_dict(declared)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{where} is not a signature ({type(exc).__name__}: {exc}): it is "
            '{"inputs": [...], "outputs": [...]}, each tensor {"name": ..., "datatype": ..., '
            '"shape": [...]}'
        ) from None
    if not signature.inputs or not signature.outputs:
        raise ArtifactError(f"{where} declares no inputs or no outputs")
    task = signature.extra.get("task")
    if task is not None and task not in TASKS:
        raise ArtifactError(
            f"{where}: extra task is {task!r}, not {' or '.join(repr(t) for t in TASKS)}"
        )
    for spec in (*signature.inputs, *signature.outputs):
        if spec.datatype not in DATATYPES:
            raise ArtifactError(
                f"{where}: {spec.name!r} has datatype {spec.datatype!r}, not one of "
                f"{', '.join(sorted(DATATYPES))}"
            )
        if not spec.shape:
            # Requests are batched along the first dimension, and answers split along it.
            raise ArtifactError(
                f"{where}: {spec.name!r} has shape [], but every input and output has a first "
                "dimension of rows: [-1] for one value per row"
            )
    return signature


def _as_text(array: np.ndarray) -> np.ndarray:
    """A ``BYTES`` tensor (an object array of bytes) as the ``str`` its client sent: what a
    Python user compares with ``"red"``, and what a scikit-learn pipeline is given. A tensor
    holding any bytes that are not UTF-8 is binary data (an image sent with the binary
    extension or over gRPC) and stays bytes; other arrays are left as they are."""
    if array.dtype.kind != "O":
        return array
    text = np.empty(array.shape, dtype=object)
    try:
        text.flat[:] = [v.decode() if isinstance(v, bytes) else v for v in array.flat]
    except UnicodeDecodeError:
        return array
    return text
