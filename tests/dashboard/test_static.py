"""The page's scripts and stylesheet: each one in the package, served with its media type."""

from __future__ import annotations

import re
from importlib import resources

import httpx
from fastapi import FastAPI

from modelpilot.dashboard import router

STATIC = "/dashboard/static/"


def app() -> FastAPI:
    page = FastAPI()
    page.include_router(router)
    return page


async def test_every_file_the_page_loads_is_served_from_the_package() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://test"
    ) as client:
        html = (await client.get("/dashboard")).raise_for_status().text
        scripts = re.findall(r'<script src="([^"]+)"', html)
        styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
        # No build step: plain scripts, run in document order; drift.js, predictions.js and
        # dashboard.js draw with charts.js's helpers, and dashboard.js calls the others'
        # renderers, so charts.js comes first and dashboard.js last.
        assert scripts == [
            f"{STATIC}charts.js",
            f"{STATIC}drift.js",
            f"{STATIC}predictions.js",
            f"{STATIC}dashboard.js",
        ]
        assert styles == [f"{STATIC}dashboard.css"]
        package = resources.files("modelpilot.dashboard") / "static"
        for url, media in [*((s, "text/javascript") for s in scripts), (styles[0], "text/css")]:
            answer = (await client.get(url)).raise_for_status()
            assert answer.headers["content-type"].startswith(media), url
            assert answer.content == (package / url.removeprefix(STATIC)).read_bytes()
