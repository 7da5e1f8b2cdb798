"""Parameters that the routes declare and FastAPI reads, where its own reading takes too much."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from modelpilot.registry.refs import version_number


def _version(value: object) -> object:
    if not isinstance(value, str):
        return value  # None, the default; or a number given in Python
    number = version_number(value)
    if number is None:
        raise ValueError("a version is a number (1, 2, 3...) in plain digits")
    return number


VersionNumber = Annotated[int, BeforeValidator(_version)]
"""A version number in a query (``?version=3``): written in ASCII digits alone. Pydantic reads
an ``int`` from more than that: "1_0" as version 10, and "+1", " 1" or "1.0" as version 1."""
