"""Request ids as text over HTTP: a header's bytes read as UTF-8, and ids the answer's
x-request-id header can carry as the body does."""

from __future__ import annotations

import httpx
import pytest

from tests.server.rest.test_v2 import v2_body

ROW = [[5.1, 3.5, 1.4, 0.2]]
PATHS = ("/v2/models/iris/infer", "/predict/iris")


def body(path: str, **extra: object) -> dict[str, object]:
    return v2_body(ROW, **extra) if path.startswith("/v2") else {"data": ROW, **extra}


@pytest.mark.parametrize("path", PATHS)
async def test_a_header_id_in_utf8_is_the_id_it_spells(
    client: httpx.AsyncClient, path: str
) -> None:
    """The tester's ``hdr-é`` (UTF-8, as Go, curl and Node send it) became ``hdr-Ã©``, the
    bytes read as Latin-1, and a label for ``hdr-é`` matched nothing."""
    for request_id in ("hdr-é", "東京-1", "😀id"):
        headers = {"x-request-id": request_id.encode()}
        response = await client.post(path, json=body(path), headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == request_id
        assert "x-request-id" not in response.headers  # beyond ASCII: in the body alone


@pytest.mark.parametrize("path", PATHS)
async def test_a_header_id_not_in_utf8_is_refused(client: httpx.AsyncClient, path: str) -> None:
    headers = {"x-request-id": "hdr-é".encode("latin-1")}
    response = await client.post(path, json=body(path), headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "x-request-id header is not UTF-8" in error and "b'hdr-\\xe9'" in error
    assert "x-request-id" not in response.headers


@pytest.mark.parametrize("path", PATHS)
async def test_an_ascii_header_id_is_echoed(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json=body(path), headers={"x-request-id": "from-header"})
    assert response.status_code == 200
    assert response.json()["id"] == response.headers["x-request-id"] == "from-header"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("request_id", ["  x  ", " x", "x ", " "])
async def test_a_body_id_with_spaces_at_its_ends_is_refused(
    client: httpx.AsyncClient, path: str, request_id: str
) -> None:
    """The answer's header held ``  x  ``, which HTTP reads as ``x``: header and body named
    two ids, and a label for what the header said matched nothing."""
    response = await client.post(path, json=body(path, id=request_id))
    assert response.status_code == 400, response.text
    assert "begins or ends with a space" in response.json()["error"]
    assert "x-request-id" not in response.headers


@pytest.mark.parametrize("path", PATHS)
async def test_a_body_id_with_spaces_inside_is_kept(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json=body(path, id="a b"))
    assert response.status_code == 200
    assert response.json()["id"] == response.headers["x-request-id"] == "a b"
