"""Segment files: records written and read back, files rolled over, swept, found gone."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from modelpilot.monitoring.log_segments import (
    FIELDS,
    Segments,
    UnreadableRecord,
    decode,
    encode,
)


def record(ids: str = '["a"]', packed: bytes | None = b"\x00\x01") -> dict[str, object]:
    return {
        "request_ids": ids,
        "times": "[1.5]",
        "row_counts": "[1]",
        "inputs": "",
        "outputs": '{"y":["cat"]}',
        "packed": packed,
    }


@pytest.mark.parametrize("packed", [b"\x00\x01\xff", b"", None])
def test_a_record_reads_back_as_written(packed: bytes | None) -> None:
    fields = record(packed=packed)
    assert decode(encode(fields)) == fields
    assert set(decode(encode(fields))) == set(FIELDS)


def test_a_record_cut_short_is_refused() -> None:
    data = encode(record())
    with pytest.raises(struct.error, match="cut short"):
        decode(data[:-1])


def test_records_are_read_by_place_whole_or_one_field(tmp_path: Path) -> None:
    segments = Segments(tmp_path / "segments")
    first = segments.append(encode(record('["a", "b"]')))
    second = segments.append(encode(record('["c"]', packed=None)))
    assert first.segment == second.segment and second.offset == first.length
    assert segments.read(second) == record('["c"]', packed=None)
    assert segments.read(first, only="request_ids") == {"request_ids": '["a", "b"]'}
    assert segments.read(second, only="packed") == {"packed": None}
    segments.close()


def test_a_full_segment_makes_way_for_a_new_one(tmp_path: Path) -> None:
    segments = Segments(tmp_path / "segments", segment_bytes=100)
    places = [segments.append(encode(record(f'["r{i}"]'))) for i in range(5)]
    names = [p.segment for p in places]
    assert len(set(names)) > 1 and names == sorted(names)  # named in order of writing
    assert [segments.read(p, only="request_ids") for p in places] == [
        {"request_ids": f'["r{i}"]'} for i in range(5)
    ]
    segments.close()


def test_sweeping_deletes_what_nothing_refers_to_and_writing_goes_on(tmp_path: Path) -> None:
    directory = tmp_path / "segments"
    mine, other = Segments(directory, segment_bytes=100), Segments(directory)
    old = [mine.append(encode(record())) for _ in range(3)]
    kept = other.append(encode(record('["kept"]')))
    assert other.sweep({kept.segment, old[-1].segment}) == len({p.segment for p in old}) - 1
    assert mine.read(old[0]) is None  # its file has gone: the batch was trimmed
    assert mine.read(old[-1]) is not None
    other.sweep({kept.segment})  # the file ``mine`` was writing to goes as well
    after = mine.append(encode(record('["after"]')))  # so it starts another
    assert after.segment != old[-1].segment
    assert mine.read(after, only="request_ids") == {"request_ids": '["after"]'}
    assert sorted(p.name for p in directory.iterdir()) == sorted({kept.segment, after.segment})
    mine.close()
    other.close()


def test_a_reader_that_never_wrote_creates_nothing(tmp_path: Path) -> None:
    segments = Segments(tmp_path / "segments")
    assert segments.sweep(set()) == 0
    assert not (tmp_path / "segments").exists()


def test_a_record_that_never_reached_the_disk_is_unreadable_and_says_where(
    tmp_path: Path,
) -> None:
    """After a machine crash a committed row may point at zeros or at a file cut short: the
    log skips such a batch, and says which file holds it (``UnreadableRecord``); a file that
    is gone is a batch trimmed (None), which is no error."""
    segments = Segments(tmp_path / "segments")
    zeroed = segments.append(encode(record()))
    cut = segments.append(encode(record('["cut"]')))
    segments.close()
    path = tmp_path / "segments" / zeroed.segment
    data = bytearray(path.read_bytes())
    data[: zeroed.length] = bytes(zeroed.length)
    path.write_bytes(bytes(data[: cut.offset + cut.length // 2]))
    for only in (None, "request_ids", "packed"):
        for place in (zeroed, cut):
            with pytest.raises(UnreadableRecord, match=f"{path}, the record at byte"):
                segments.read(place, only)
    path.unlink()
    assert segments.read(zeroed) is None


def test_text_overwritten_with_bytes_that_are_not_utf8_is_unreadable(tmp_path: Path) -> None:
    segments = Segments(tmp_path / "segments")
    place = segments.append(encode(record('["abcdefgh"]')))
    segments.close()
    path = tmp_path / "segments" / place.segment
    data = bytearray(path.read_bytes())
    at = data.index(b"abcdefgh")
    data[at : at + 4] = b"\xff\xfe\xff\xfe"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableRecord, match="byte 0"):
        segments.read(place, "request_ids")
