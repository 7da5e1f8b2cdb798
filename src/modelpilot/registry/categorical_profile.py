"""A categorical feature's reference counts: which categories it names, what it pools, and the
sketch of the pooled values that tells a new value from one of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelpilot.registry.category_keys import CATEGORY_GROUPS, category_group, category_key
from modelpilot.registry.category_sketch import TailSketch

TOP_CATEGORIES = 1000
"""How many categories a profile names by count: a feature of up to this many has every one
named (a value outside them is unseen); with more, the rest are pooled
(``FeatureProfile.other``)."""


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """What ``count_categories`` found of a column (see ``FeatureProfile.categorical``)."""

    rows: int
    missing: int
    categories: dict[str, int]
    other: int | None = None
    other_groups: tuple[int, ...] = ()
    held_out: bool = False
    tail_sketch: TailSketch | None = None


def count_categories(values: pd.Series) -> CategoryCounts:
    """A column's category counts, each value counted under its ``category_key``.

    A feature of at most ``TOP_CATEGORIES`` categories has them all named. With more, the
    most frequent ``TOP_CATEGORIES`` are named and the rest pooled (``other``); they are
    chosen on one half of the rows and counted on the other (``held_out``). Chosen for
    their own counts, the categories near the cut were those the sample held more often
    by chance, so their counts ran high, and the pooled rest's low, against any fresh
    sample (300 equally frequent cities: held-out rows of the same distribution read as
    drifted at p = 6e-14). Counted on rows that did not choose them, they are an honest
    sample; ``rows`` and ``missing`` are then of those rows, as the counts are.

    The pooled values of all the rows, both halves, go into a ``TailSketch``, with how many
    values all the rows held once and twice: a value outside the named ones and outside the
    sketch is one the reference never held (unseen), and a window holding far more such
    rows than the reference's once-held values foretell has drifted, where counted with the
    tail a column of nothing but new ids read no drift (JS 0.13, under fresh rows' 0.15)."""
    keyed, missing = _category_counts(values)
    if len(keyed) <= TOP_CATEGORIES:
        ranked = sorted(keyed.items(), key=lambda item: -item[1])
        return CategoryCounts(int(values.size), missing, dict(ranked))
    choosing = _choosing_half(values.size)
    chosen, _ = _category_counts(values[choosing])
    named = sorted(chosen, key=lambda key: -chosen[key])[:TOP_CATEGORIES]
    counted, missing = _category_counts(values[~choosing])
    categories = {key: counted.pop(key, 0) for key in named}
    groups = np.zeros(CATEGORY_GROUPS, dtype=np.int64)
    for key, count in counted.items():
        groups[category_group(key)] += count
    held = np.fromiter(keyed.values(), dtype=np.int64, count=len(keyed))
    tail = [key for key in keyed if key not in categories]
    sketch = TailSketch.build(
        tail,
        once=int(np.count_nonzero(held == 1)),
        twice=int(np.count_nonzero(held == 2)),
        rows=int(values.size),
    )
    return CategoryCounts(
        int(values.size - np.count_nonzero(choosing)),
        missing,
        categories,
        # Even 0: the profile has a tail, and a value outside the named ones may be of it.
        other=sum(counted.values()),
        other_groups=tuple(int(n) for n in groups),
        held_out=True,
        tail_sketch=sketch,
    )


def _category_counts(values: pd.Series) -> tuple[dict[str, int], int]:
    """How many of ``values`` are in each category (by ``category_key``), and how many are
    missing."""
    missing = int(values.isna().sum())
    keyed: dict[str, int] = {}
    for value, count in values.dropna().value_counts(sort=False).items():
        key = category_key(value)
        if key is None:  # missing by the monitor's rule though pandas kept it
            missing += int(count)
        else:
            keyed[key] = keyed.get(key, 0) + int(count)
    return keyed, missing


def _choosing_half(rows: int) -> np.ndarray:
    """Which rows choose a feature's named categories (the others count them): half of them,
    drawn by a fixed seed, so that one data set always gives one profile. Not every other row:
    rows sorted by the feature would make the two halves copies of each other, and carry the
    luck of the choice to the counts."""
    choosing = np.zeros(rows, dtype=bool)
    choosing[np.random.default_rng(0).permutation(rows)[: rows // 2]] = True
    return choosing
