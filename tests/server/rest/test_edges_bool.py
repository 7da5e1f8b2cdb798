"""BOOL tensors sent as binary data: a byte other than 0 or 1 is a bad request, named."""

from __future__ import annotations

import httpx
import orjson
import pytest

HEADER = orjson.dumps(
    {
        "inputs": [
            {
                "name": "flags",
                "shape": [1, 4],
                "datatype": "BOOL",
                "parameters": {"binary_data_size": 4},
            }
        ]
    }
)


@pytest.mark.parametrize(
    ("raw", "status"), [(b"\x00\x01\x01\x00", 200), (b"\x00\x02\x01\x00", 400)]
)
async def test_binary_bool_bytes(client: httpx.AsyncClient, raw: bytes, status: int) -> None:
    response = await client.post(
        "/v2/models/iris/infer",
        content=HEADER + raw,
        headers={"inference-header-content-length": str(len(HEADER))},
    )
    assert response.status_code == status, response.text
    if status == 400:
        assert "input 'flags': BOOL data must be bytes 0 (false) or 1 (true)" in response.text
