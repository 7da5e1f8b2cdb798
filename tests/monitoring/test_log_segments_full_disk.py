"""Segment files when writes fail: a failed append is taken back and leaves no file behind, and
the empty files earlier releases left are swept.

A full disk is stood in for by the size limit of a process (RLIMIT_FSIZE, in a child process
of its own): past it the kernel takes part of a write and then refuses the rest (EFBIG), as a
disk that fills in the middle of a record does (ENOSPC)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelpilot.monitoring.log_segments import Place, Segments, encode

resource = pytest.importorskip("resource")

HELPER = r"""
import json, resource, signal, sys
from pathlib import Path
from modelpilot.monitoring.log_segments import Segments, encode

def record(ids, size):
    return encode({"request_ids": ids, "times": "[1.5]", "row_counts": "[1]",
                   "inputs": "x" * size, "outputs": "{}", "packed": None})

directory, before, limit, tries = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), 5
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not the process
segments = Segments(directory)
places = [segments.append(record('["before"]', before))] if before else []
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
errors = []
for i in range(tries):
    try:
        segments.append(record(f'["failed{i}"]', 10_000))
    except OSError as exc:
        errors.append(exc.errno)
files = {p.name: p.stat().st_size for p in directory.glob("*")} if directory.exists() else {}
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
places.append(segments.append(record('["after"]', 10)))
segments.close()
print(json.dumps({
    "errors": errors,
    "files_while_failing": files,
    "places": [[p.segment, p.offset, p.length] for p in places],
    "files": sorted(p.name for p in directory.iterdir()),
}))
"""


@dataclass
class Outcome:
    errors: list[int]
    files_while_failing: dict[str, int]
    places: list[Place]
    files: list[str]


def run_full(directory: Path, before: int, limit: int) -> Outcome:
    """Append a record of ``before`` bytes (if any), then try five of 10 kB past a file size
    limit of ``limit`` bytes, then one more once the limit is lifted."""
    result = subprocess.run(
        [sys.executable, "-c", HELPER, str(directory), str(before), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(result.stdout)
    return Outcome(
        out["errors"], out["files_while_failing"], [Place(*p) for p in out["places"]], out["files"]
    )


def test_appends_that_fail_on_a_new_file_leave_no_file_behind(tmp_path: Path) -> None:
    """Each try used to leave a file of its own (136 in two minutes on a full disk)."""
    directory = tmp_path / "segments"
    out = run_full(directory, before=0, limit=4096)
    assert out.errors == [errno.EFBIG] * 5
    assert out.files_while_failing == {}
    (place,) = out.places
    assert out.files == [place.segment]
    assert place.segment.endswith("-000001.seg") and place.offset == 0  # its name free again
    assert Segments(directory).read(place, "request_ids") == {"request_ids": '["after"]'}


def test_appends_that_fail_midway_are_cut_back_and_the_file_goes_on(tmp_path: Path) -> None:
    """Part of the first failed record reaches the file (up to the limit): it is cut off, and
    the next append that succeeds goes on in the same file, right after the last record."""
    directory = tmp_path / "segments"
    out = run_full(directory, before=100, limit=4096)
    assert out.errors == [errno.EFBIG] * 5
    first, after = out.places
    assert out.files_while_failing == {first.segment: first.length}
    assert after.segment == first.segment and after.offset == first.length
    assert out.files == [first.segment]
    assert (directory / first.segment).stat().st_size == first.length + after.length
    segments = Segments(directory)
    assert segments.read(first, "request_ids") == {"request_ids": '["before"]'}
    assert segments.read(after, "request_ids") == {"request_ids": '["after"]'}


def test_empty_files_left_from_before_are_swept_as_a_writer_starts_a_file(
    tmp_path: Path,
) -> None:
    """An earlier release left an empty file per failed append; they hold no batch."""
    directory = tmp_path / "segments"
    directory.mkdir()
    left = [directory / f"1471-f7aedb943cf4-{n:06d}.seg" for n in range(2, 138)]
    for path in left:
        path.touch()
    other = Segments(directory)
    kept = other.append(encode(record_fields('["kept"]')))
    other.close()
    assert sorted(p.name for p in directory.iterdir()) == [kept.segment]
    assert other.read(kept, "request_ids") == {"request_ids": '["kept"]'}


def record_fields(ids: str) -> dict[str, object]:
    return {
        "request_ids": ids,
        "times": "[1.5]",
        "row_counts": "[1]",
        "inputs": "",
        "outputs": "{}",
        "packed": None,
    }
