"""A version is written in ASCII digits alone: ``int()`` (and pydantic's ``int``) read "1_0"
as 10, "+1", " 1" and "\u0661" as 1, and fail on more than 4300 digits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from modelpilot.errors import BadRequest
from modelpilot.registry.refs import ModelRef, version_number
from modelpilot.server.rest.errors import install_error_handlers
from modelpilot.server.rest.params import VersionNumber

NOT_NUMBERS = ["1_0", "0_1", "+1", " 1", "1 ", "\u0661", "\u00b9", "1.0", "0x1", "", "9" * 5000]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_what_int_reads_is_no_version_number(text: str) -> None:
    assert version_number(text) is None


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("10", 10), ("007", 7), ("0", 0)])
def test_plain_digits_are(text: str, number: int) -> None:
    assert version_number(text) == number


@pytest.mark.parametrize("text", [t for t in NOT_NUMBERS if t != "1 "])
def test_a_reference_with_such_a_version_is_refused(text: str) -> None:
    """``m:99...9`` (5000 digits) raised ValueError: a traceback from ``predict``. (A
    reference is stripped of the spaces around it: "iris:1 " is version 1.)"""
    with pytest.raises(BadRequest, match="versions are 1, 2, 3"):
        ModelRef.parse(f"iris:{text}")


@pytest.mark.parametrize("version", ["0_1", "+1", " 1", "\u0661", "1.0", "9" * 5000])
async def test_a_url_with_such_a_version_reaches_no_version(
    client: httpx.AsyncClient, version: str
) -> None:
    """Read by int(), each would be version 1, which exists."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}]}
    segment = quote(version, safe="")
    for method, path, sent in [
        ("POST", f"/v2/models/iris/versions/{segment}/infer", body),
        ("POST", f"/predict/iris/versions/{segment}", {"data": [1] * 4}),
        ("GET", f"/v2/models/iris/versions/{segment}", None),
        ("GET", f"/v2/models/iris/versions/{segment}/ready", None),
    ]:
        response = await client.request(method, path, json=sent)
        assert response.status_code in (400, 404), (path, response.text)


@pytest.fixture
async def query_client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/report")
    async def report(version: VersionNumber | None = None) -> dict[str, int | None]:
        return {"version": version}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.mark.parametrize("text", NOT_NUMBERS[:-1])
async def test_a_version_query_in_other_than_digits_is_refused(
    query_client: httpx.AsyncClient, text: str
) -> None:
    """(A query parameter declared ``int`` takes "1_0" as 10.)"""
    response = await query_client.get("/report", params={"version": text})
    assert response.status_code == 422, response.text
    assert "plain digits" in response.json()["error"]


async def test_a_version_query_in_digits_is_read(query_client: httpx.AsyncClient) -> None:
    assert (await query_client.get("/report?version=10")).json() == {"version": 10}
    assert (await query_client.get("/report")).json() == {"version": None}
