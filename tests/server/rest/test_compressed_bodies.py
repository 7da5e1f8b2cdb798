"""Compressed request bodies must be one whole stream: one cut short was reported as invalid
JSON, and bytes after the stream's end were dropped without a word (answered 200)."""

from __future__ import annotations

import gzip
import zlib

import httpx
import orjson
import pytest

BODIES = {
    "/v2/models/iris/infer": orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
            ]
        }
    ),
    "/predict/iris": orjson.dumps({"data": [5.1, 3.5, 1.4, 0.2]}),
}
COMPRESS = {"gzip": gzip.compress, "deflate": zlib.compress}


@pytest.mark.parametrize("path", BODIES)
@pytest.mark.parametrize("encoding", COMPRESS)
async def test_a_whole_stream_is_read(client: httpx.AsyncClient, path: str, encoding: str) -> None:
    body = COMPRESS[encoding](BODIES[path])
    response = await client.post(path, content=body, headers={"content-encoding": encoding})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", BODIES)
@pytest.mark.parametrize("encoding", COMPRESS)
async def test_a_stream_cut_short_is_refused_as_such(
    client: httpx.AsyncClient, path: str, encoding: str
) -> None:
    whole = COMPRESS[encoding](BODIES[path])
    for body in (whole[:-6], whole[: len(whole) // 2], b""):
        response = await client.post(path, content=body, headers={"content-encoding": encoding})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert f"not a whole {encoding} stream: it ends before the stream does" in error
        assert "JSON" not in error


@pytest.mark.parametrize("path", BODIES)
@pytest.mark.parametrize("encoding", COMPRESS)
async def test_bytes_after_the_stream_are_refused(
    client: httpx.AsyncClient, path: str, encoding: str
) -> None:
    compress = COMPRESS[encoding]
    for extra in (b"JUNKJUNK", compress(b"{}")):
        body = compress(BODIES[path]) + extra
        response = await client.post(path, content=body, headers={"content-encoding": encoding})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert f"goes on for {len(extra)} bytes after its {encoding} stream ends" in error
