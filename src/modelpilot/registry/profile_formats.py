"""Reading a categorical profile stored by any release: where its pooled tail is, if any, and
the sketch of its values. (The form a whole profile is stored in, JSON and bytes, and its
format versions are ``profile_storage``'s.)"""

from __future__ import annotations

from typing import Any

from modelpilot.registry.category_sketch import TailSketch

LEGACY_OTHER = "__other__"
"""The category under which profiles of earlier releases stored their pooled tail."""
FIRST_TOP_CATEGORIES = 100
"""How many categories the first releases' profiles named before pooling the rest."""


def stored_categories(data: dict[str, Any]) -> tuple[dict[str, int], int | None]:
    """A stored categorical profile's named categories and its pooled tail's rows (None: it
    names every category of the reference).

    Profiles now keep the tail apart, under "other", which their dicts always hold (null
    where nothing was pooled): every category of such a profile is a real value. Earlier
    releases stored the tail as the category "__other__", and a real value of that name
    (pipelines bucket rare categories under it) was taken for one: its feature was read as
    a profile of many categories whose named ones the old guard pooled, and its drift was
    off (JS 0, "register the version again"). Their profiles are told apart by what each
    release did:

    - with ``held_out`` (the releases that chose the named categories on half the rows): a
      tail only in a ``held_out`` profile; in any other, "__other__" was a real value;
    - without it (the first releases): a tail only past ``FIRST_TOP_CATEGORIES`` named
      categories, and only when it held rows; with fewer, "__other__" was a real value.

    (Where a real "__other__" was among the named categories of a profile that also pooled,
    the tail's count overwrote its own: the two are one bin, as they were.)"""
    categories = {str(name): int(n) for name, n in data.get("categories", {}).items()}
    if "other" in data:
        other = data["other"]
        return categories, None if other is None else int(other)
    if LEGACY_OTHER not in categories:
        return categories, None
    if "held_out" in data:
        pooled = bool(data["held_out"])
    else:
        pooled = len(categories) > FIRST_TOP_CATEGORIES and categories[LEGACY_OTHER] > 0
    if not pooled:
        return categories, None
    other = categories.pop(LEGACY_OTHER)
    return categories, other


def stored_sketch(data: dict[str, Any]) -> TailSketch | None:
    """A stored categorical profile's sketch of its pooled tail (see ``TailSketch``); None in
    profiles stored before it, whose values outside the named categories all count with
    the tail, as they did."""
    stored = data.get("tail_sketch")
    return TailSketch.from_dict(stored) if stored else None
