"""``modelpilot predict``: offline batch scoring of a data file, in chunks, with progress."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modelpilot.cli.common import (
    ArtifactsOption,
    RegistryOption,
    err,
    make_settings,
    progress_bar,
)
from modelpilot.errors import InvalidInput

if TYPE_CHECKING:  # imported where used: --help needs neither pandas nor the engine
    import pandas as pd

    from modelpilot.registry.refs import ModelRef
    from modelpilot.registry.store import Registry


def predict(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="NAME, NAME:VERSION or NAME@ALIAS.")
    ],
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Rows to score: CSV, Parquet or .npy.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write predictions (.csv, .parquet or .npy). "
            "[default: beside INPUT, in its format: rows.csv gives rows.predictions.csv, "
            "rows.parquet rows.predictions.parquet; a .npy input gives a CSV]",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per model call.")] = 10_000,
    registry: RegistryOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Score every row of INPUT with a registered model and write the outputs to a file.

    Columns are matched to the model's features by name when both have names; a .npy file's
    columns are taken in order. Classifiers get a `predict` column and one `predict_proba_<class>`
    column per class. The output appears only once every row is scored: a run stopped by a bad
    row, Ctrl-C (exit code 130) or SIGTERM (exit code 143) leaves no half-written file (and an
    earlier output as it was). Two runs writing the same output at once each write a whole
    file; the last to finish wins. An input without rows (a header alone, an empty partition)
    gives an output of the same columns without rows.
    """
    from modelpilot.registry.refs import ModelRef
    from modelpilot.registry.store import Registry

    ref = ModelRef.parse(model)
    target = output or _beside(input_file)
    if target.resolve() == input_file.resolve():
        raise InvalidInput("--output must not be the input file")
    if not target.parent.is_dir():
        raise InvalidInput(f"cannot write {target}: there is no directory {target.parent}")
    settings = make_settings(registry=registry, artifacts=artifacts)
    reg = Registry.open(settings.registry, settings.artifacts)
    try:
        rows, seconds, version = asyncio.run(
            _score(reg, settings, ref, input_file, target, batch_size)
        )
    except _Terminated:
        err.print("Stopped by SIGTERM.")
        raise typer.Exit(128 + signal.SIGTERM) from None
    finally:
        reg.close()
    rate = rows / seconds if seconds > 0 else float("inf")
    err.print(
        f"Scored {rows:,} {'row' if rows == 1 else 'rows'} with {version} in {seconds:.2f} s "
        f"({rate:,.0f} rows/s) -> {escape(str(target))}",
        highlight=False,
    )


def _beside(input_file: Path) -> Path:
    """The default output: beside the input, in its format (a .npy input, which could hold
    only an array, gets a CSV with its columns named)."""
    suffix = ".parquet" if input_file.suffix.lower() == ".parquet" else ".csv"
    return input_file.with_name(f"{input_file.stem}.predictions{suffix}")


class _Terminated(BaseException):
    """The run was stopped by SIGTERM: a BaseException, as KeyboardInterrupt is, so that no
    ``except Exception`` on the way takes it for an error of the run."""


@contextlib.contextmanager
def _signal_handler(
    signum: int, handler: Callable[[int, FrameType | None], None]
) -> Iterator[None]:
    """``handler`` for ``signum`` while the block runs, the handler before restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a signal handler (and only it receives signals)
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be put back; the default is closest.
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)


async def _score(
    registry: Registry, settings: Any, ref: ModelRef, source: Path, target: Path, chunk: int
) -> tuple[int, float, str]:
    """The run, which SIGTERM (what kill, timeout, Kubernetes and batch schedulers send) stops
    as Ctrl-C does, through the cleanup that removes the hidden file, rather than kill the
    process and leave that file behind: then _Terminated."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received = False

    def stop(signum: int, frame: FrameType | None) -> None:
        # As asyncio.run does on Ctrl-C: cancel the run, to stop at its next await. Raising
        # here instead could land in one of the loop's callbacks, which logs and goes on.
        nonlocal received
        received = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # wakes a loop asleep in select()

    with _signal_handler(signal.SIGTERM, stop):
        try:
            return await _score_all(registry, settings, ref, source, target, chunk)
        except asyncio.CancelledError:
            if received:
                raise _Terminated from None
            raise


async def _score_all(
    registry: Registry, settings: Any, ref: ModelRef, source: Path, target: Path, chunk: int
) -> tuple[int, float, str]:
    from modelpilot.cli.predict_tables import (
        empty_outputs,
        input_tensors,
        outputs_frame,
        say_left_out,
    )
    from modelpilot.protocol.types import InferenceRequest
    from modelpilot.serving.engine import InferenceEngine
    from modelpilot.serving.inputs import declared_text
    from modelpilot.tabular import count_rows, iter_table

    engine = InferenceEngine(registry, settings, [ref])
    await engine.start()
    writer = _Writer(target)
    started = time.perf_counter()
    done = 0
    try:
        loaded = await engine.get_model(ref.name)
        version = str(loaded.version)
        signature = loaded.version.signature
        total = count_rows(source)
        with progress_bar() as progress:
            task = progress.add_task(f"scoring with {version}", total=total)
            for frame in iter_table(
                source, chunk, signature.text_features or declared_text(signature)
            ):
                if not done:
                    say_left_out(signature, frame)
                tensors = input_tensors(signature, frame, done)  # checks the columns of no rows too
                if not len(frame):
                    continue
                request = InferenceRequest(inputs=tensors)
                response = await engine.infer(ref.name, request, transport="cli")
                writer.write(outputs_frame(signature, response.outputs))
                done += len(frame)
                progress.update(task, advance=len(frame))
        if not done:  # a header alone, or an empty partition: an output without rows
            writer.write(outputs_frame(signature, empty_outputs(signature)))
        writer.close()
    except BaseException:
        writer.discard()
        raise
    finally:
        await engine.stop()
    return done, time.perf_counter() - started, version


class _Writer:
    """Appends chunks to CSV or Parquet as they come; .npy is written once at the end.

    Into a hidden file beside ``target``, of this writer alone, which ``close`` renames to
    ``target`` and ``discard`` removes: ``target`` is either a whole output or untouched. Two
    runs writing the same target each write a file of their own; the last renamed wins."""

    def __init__(self, target: Path) -> None:
        self.target = target
        suffix = target.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq", ".npy"):
            raise InvalidInput(f"cannot write {target.name}: use .csv, .parquet or .npy")
        self.kind = "parquet" if suffix in (".parquet", ".pq") else suffix[1:]
        self.path = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
        self._file: IO[Any] | None = None  # created at the first write
        self._parquet: Any = None
        self._frames: list[pd.DataFrame] = []

    def _open(self) -> IO[Any]:
        if self._file is None:
            # Not mkstemp, whose files are their owner's alone (0600): the output gets the
            # permissions any new file gets (the umask's). O_EXCL: a name in use is an error,
            # never a file shared with another run.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            # Written through this one handle, not reopened by name for each chunk: a file
            # removed meanwhile is found missing at the end, not begun again without a header.
            text = self.kind == "csv"  # newline="": pandas writes its own line ends
            self._file = open(  # noqa: SIM115 -- open until close() or discard()
                descriptor,
                "w" if text else "wb",
                newline="" if text else None,
                encoding="utf-8" if text else None,
            )
        return self._file

    def write(self, frame: pd.DataFrame) -> None:
        first = self._file is None
        file = self._open()
        if self.kind == "csv":
            frame.to_csv(file, header=first, index=False)
        elif self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(file, table.schema)
            self._parquet.write_table(table)
        else:
            self._frames.append(frame)

    def close(self) -> None:
        """Finishes the file and renames it to the target; an OSError if it is gone."""
        from modelpilot.cli.predict_tables import save_npy

        file = self._open()
        if self._parquet is not None:
            self._parquet.close()
        if self.kind == "npy" and self._frames:
            save_npy(file, self._frames)
        file.flush()
        os.fsync(file.fileno())  # the rows on disk before the name that promises them
        written = os.fstat(file.fileno())
        file.close()
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            there = None
        if there is None or not os.path.samestat(written, there):
            raise FileNotFoundError(
                f"{self.path} was removed while the output was written to it; "
                f"{self.target} is left as it was: run again"
            )
        self.path.replace(self.target)

    def discard(self) -> None:
        # The file is thrown away: an error closing it is no news, and would hide the error
        # (or the Ctrl-C) that stopped the run.
        with contextlib.suppress(Exception):
            if self._parquet is not None:
                self._parquet.close()
        with contextlib.suppress(Exception):
            if self._file is not None:
                self._file.close()
        self.path.unlink(missing_ok=True)


def install(app: typer.Typer) -> None:
    app.command()(predict)
