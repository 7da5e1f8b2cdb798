"""Write docs/settings.md, every ``MODELPILOT_*`` setting with its default and meaning, from
``modelpilot.config.Settings``; ``--check`` fails if the committed page is stale.

python scripts/settings_reference.py          # rewrite docs/settings.md
python scripts/settings_reference.py --check  # CI: exit 1 if it differs
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from modelpilot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "settings.md"
HEAD = """# Settings

Every setting is an environment variable with the `MODELPILOT_` prefix; the command-line flags
of `modelpilot serve` and the other commands override them. A value out of range stops the
command with one line naming the setting, and `serve` warns of a `MODELPILOT_` variable that
names no setting (a typo). This page is generated from
`src/modelpilot/config.py` by `python scripts/settings_reference.py`; the tests check that it
is fresh.

| variable | default | values | meaning |
| --- | --- | --- | --- |
"""
BOUNDS = ((Ge, ">=", "ge"), (Gt, ">", "gt"), (Le, "<=", "le"), (Lt, "<", "lt"))


def render() -> str:
    rows = [_row(name, field) for name, field in Settings.model_fields.items()]
    return HEAD + "".join(rows)


def _row(name: str, field: FieldInfo) -> str:
    meaning = " ".join((field.description or "").split()).replace("``", "`").replace("|", "\\|")
    cells = [f"`MODELPILOT_{name.upper()}`", _default(field.default), _values(field), meaning]
    return "| " + " | ".join(cells) + " |\n"


def _default(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, int) and value >= 1 << 20 and value % (1 << 20) == 0:
        return f"`{value}` ({value >> 20} MiB)"
    return f"`{value}`"


def _values(field: FieldInfo) -> str:
    if typing.get_origin(field.annotation) is typing.Literal:
        choices = typing.get_args(field.annotation)
        return ", ".join(f"`{c}`" for c in choices)
    bounds = [
        f"{sign} {getattr(item, attr)}"
        for item in field.metadata
        for kind, sign, attr in BOUNDS
        if isinstance(item, kind)
    ]
    return ", ".join(bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/settings.md is stale")
    args = parser.parse_args()
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            sys.exit("docs/settings.md is stale: run python scripts/settings_reference.py")
        return
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
