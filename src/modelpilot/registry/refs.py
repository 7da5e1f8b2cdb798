"""Model references as users write them: ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelpilot.errors import BadRequest, quoted

PRODUCTION = "production"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
NAME_RULE = "1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"


def is_name(name: str) -> bool:
    """Whether ``name`` could name a model or an alias (a registry holds no other)."""
    return _NAME.fullmatch(name) is not None  # fullmatch: "$" would let a final newline by


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model or alias name, else raise ``BadRequest``."""
    if not is_name(name) or (name.isdigit() and what == "alias"):
        raise BadRequest(
            f"invalid {what} {quoted(name)}: use {NAME_RULE}"
            + ("; an alias may not be all digits" if what == "alias" else "")
        )
    return name


MAX_VERSION_DIGITS = 100
"""The most digits a version number is read from: far more than any version has, and far
fewer than the 4300 past which ``int()`` refuses to read a number (it raises ValueError)."""


def version_number(text: str) -> int | None:
    """The number ``text`` writes if it is written as version numbers are, in ASCII decimal
    digits alone, else None. ``int()`` reads more as numbers: "1_0" as 10, "+1", " 1" and
    "\u0661" (an Arabic-Indic one) as 1; clients that send those mean no version number."""
    if text.isascii() and text.isdigit() and len(text) <= MAX_VERSION_DIGITS:
        return int(text)
    return None


RESERVED = frozenset({"stats"})
"""Names no new model may take: ``GET /v2/models/stats`` is every model's statistics (Triton's
statistics extension), so a model named so could never be asked for its metadata."""


def check_new_name(name: str) -> str:
    """``check_name`` for a model about to be registered, which may not take a ``RESERVED``
    name either (models registered before keep theirs)."""
    check_name(name)
    if name in RESERVED:
        raise BadRequest(
            f"the model name {quoted(name)} is reserved: GET /v2/models/{name} answers every "
            "model's statistics (Triton's statistics extension); choose another name"
        )
    return name


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A reference to a model version; at most one of ``version`` and ``alias`` is set.

    A bare name means alias ``production``, falling back to the latest version when that alias
    is not set (``is_default`` tells the two apart).
    """

    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def is_default(self) -> bool:
        return self.version is None and self.alias is None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        text = text.strip()
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(check_name(name), alias=check_name(alias, "alias"))
        if ":" in text:
            name, _, version = text.partition(":")
            number = version_number(version)
            if number is None or number < 1:
                raise BadRequest(
                    f"invalid version {quoted(version)} in {quoted(text)}: versions are 1, 2, 3..."
                )
            return cls(check_name(name), version=number)
        return cls(check_name(text))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
