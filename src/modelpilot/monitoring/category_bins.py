"""A categorical feature's bins: which category each value counts in, and the reference's counts.

The bins are the reference's categories by name, then one for every other value, then one for
missing values. The other-values bin is "unseen" when the profile knows every category of
the reference (a value outside them is new), and "other" when the profile kept only the
most frequent ones and pooled the rest (``FeatureProfile.other``): a value outside the named
ones may then be one of that tail, as likely as it is new, and it counts with the tail. A
profile made
before categories were chosen and counted on separate halves of the reference rows
(``FeatureProfile.held_out``) had its named categories near the cut kept by chance; those go
to that bin too (see ``trusted_count``).

After the bins, the feature's values outside the named categories are counted again by
``category_group`` (a hash of the value), so that a window of one value repeated (a join
that fills every row with "UNKNOWN") can be told from one of many values that each come
once, which the other-values bin alone counts alike (see ``category_findings.recurring_test``).
Where the profile keeps a sketch of its pooled tail's values (``FeatureProfile.tail_sketch``),
the values outside both the named categories and the sketch are counted once more, last: the
reference never held them, and a window of far more of them than the reference's values held
once foretell has drifted (``category_findings.unseen_finding``), where counted with the tail
alone a column of nothing but new ids read "other" as the tail did, and no drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from modelpilot.monitoring.category_findings import UnseenValues, ValueGroups
from modelpilot.registry.category_keys import (
    CATEGORY_GROUPS,
    FALSE,
    TRUE,
    boolean_counts,
    category_group,
    category_key,
    is_boolean,
)
from modelpilot.registry.category_sketch import TailSketch
from modelpilot.registry.profile import FeatureProfile

TRUTHS = {
    **dict.fromkeys(("true", "1", "1.0"), TRUE),
    **dict.fromkeys(("false", "0", "0.0", "-0.0"), FALSE),
}
"""A boolean feature's values as they arrive, as text (lower case), and the category of each:
booleans, 1 and 0 as numbers (a v2 FP64 tensor) and as text, as labels read them."""

CUT_MARGIN = 3.0
"""Standard deviations above the profile's cut that a named category's count must lie to
keep its own bin (see ``trusted_count``)."""


@dataclass(frozen=True, slots=True)
class CategoricalBins:
    """Where a categorical feature's bins lie in the flat count vector, and how to fill them."""

    index: int
    offset: int
    codes: dict[str, int]
    """Each named category's bin; any other value goes to the bin after them."""
    labels: list[str]
    """Every bin's label: the named categories, "unseen" or "other", "missing"."""
    reference: np.ndarray
    tail: bool
    """The profile pooled the reference's rarer categories: a value outside the named ones
    cannot be told unseen."""
    boolean: bool
    """A boolean feature (``FeatureProfile.boolean``): 1.0, "true" and ``True`` are one
    category. Not a feature of text, whose "TRUE" is another category than its "true"."""
    fold_rare: bool = True
    """With a tail, the tests fold rare named categories into it, as their counts may run
    high (``divergence.compare_categories``); not for a ``FeatureProfile.held_out`` profile,
    whose counts are honest: folded, a feature of many about equally common categories had
    them all in one bin with the tail, and a window of a few tail values read as no drift."""
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Each named category's ``category_group``."""
    other_groups: np.ndarray | None = None
    """The reference's rows in the other-values bin by group: none but the tail's, which
    a profile made before it does not know (None: no test of recurring values)."""
    sketch: TailSketch | None = None
    """The pooled tail's values (``FeatureProfile.tail_sketch``): the window's values
    outside the named categories and outside it are counted once more, after the groups,
    as values the reference never held. None without a tail, and in profiles made before
    it, whose values outside the named ones may each be the tail's."""

    @property
    def bins(self) -> int:
        """The bins the tests and plots read (one per label); the window's values outside
        the named categories are counted again after them, by group."""
        return len(self.labels)

    @property
    def width(self) -> int:
        return len(self.labels) + CATEGORY_GROUPS + (self.sketch is not None)

    def value_groups(self, counts: np.ndarray) -> ValueGroups | None:
        """The reference's and the window's rows by group, from the window's ``counts`` of
        this feature (``width`` of them); None where the tail's groups are unknown."""
        if self.other_groups is None:
            return None
        named = self.bins - 2
        outside = counts[self.bins : self.bins + CATEGORY_GROUPS]
        reference = np.bincount(self.groups, self.reference[:named], CATEGORY_GROUPS)
        current = np.bincount(self.groups, counts[:named], CATEGORY_GROUPS)
        unseen = None
        if self.sketch is not None:
            sketch = self.sketch
            new = int(counts[self.bins + CATEGORY_GROUPS])
            unseen = UnseenValues(new, sketch.once, sketch.twice, sketch.rows, sketch.caught)
        return ValueGroups(
            reference.astype(np.int64) + self.other_groups,
            current.astype(np.int64) + outside,
            self.other_groups,
            outside,
            unseen,
        )

    @property
    def other(self) -> int:
        """The bin of values outside the named categories."""
        return len(self.labels) - 2


def categorical_bins(index: int, offset: int, feature: FeatureProfile) -> CategoricalBins:
    """The bins of ``feature``, laid from ``offset`` in the flat count vector."""
    counts = dict(feature.categories)
    # (A held-out profile has a tail even where its counted rows held none of it.)
    tail = feature.other is not None
    pooled = feature.other or 0
    if tail and counts and not feature.held_out:
        trusted = trusted_count(min(counts.values()))
        pooled += sum(n for n in counts.values() if n < trusted)
        counts = {name: n for name, n in counts.items() if n >= trusted}
    boolean = feature.boolean
    if boolean is None:  # a profile made before it: its words say (it may say "true")
        boolean = not tail and is_boolean(counts)
    if boolean:
        counts = boolean_counts(counts)
    labels = [*counts, "other" if tail else "unseen", "missing"]
    reference = np.array([*counts.values(), pooled, feature.missing], dtype=np.int64)
    codes = {name: i for i, name in enumerate(counts)}
    groups = np.array([category_group(name) for name in counts], dtype=np.int64)
    other_groups: np.ndarray | None = np.zeros(CATEGORY_GROUPS, dtype=np.int64)
    if tail:  # the pooled rest's groups, where the profile kept them (and pooled no more)
        known = len(feature.other_groups) == CATEGORY_GROUPS and pooled == sum(feature.other_groups)
        other_groups = np.array(feature.other_groups, dtype=np.int64) if known else None
    return CategoricalBins(
        index,
        offset,
        codes,
        labels,
        reference,
        tail,
        boolean,
        not feature.held_out,
        groups,
        other_groups,
        feature.tail_sketch if tail and other_groups is not None else None,
    )


def trusted_count(cut: int) -> float:
    """The least count of a named category that keeps its own bin when the profile kept only
    the most frequent categories, counted on the rows that chose them (a profile made before
    ``FeatureProfile.held_out``), ``cut`` being the least count it kept.

    Categories were kept for their counts, so those near the cut were kept partly by luck:
    their counts run high, and the pooled rest's low, against any fresh sample. Where every
    category is about as frequent (300 cities, five rows each) the top 100 held half of the
    reference rows for a third of the categories, and held-out rows from the same
    distribution read as p = 6e-14. A category whose count lies ``CUT_MARGIN`` standard
    deviations (of a Poisson count, its square root) above the cut was kept whatever its
    luck; the others are pooled with the tail, whose count is then honest. Profiles made
    now count on other rows than those that chose, and need no such pooling."""
    root = (CUT_MARGIN + math.sqrt(CUT_MARGIN**2 + 4 * cut)) / 2  # n - 3 sqrt(n) = cut
    return root * root


def category_counts(column: np.ndarray, spec: CategoricalBins) -> np.ndarray:
    """A column's counts in the feature's bins, then its values outside the named
    categories by group, then (with a ``TailSketch``) how many of those the reference never
    held (``spec.width`` counts in all)."""
    slots = category_slots(column, spec)
    counts = np.bincount(slots, minlength=spec.width)
    outside = slots == spec.other
    if outside.any():
        keys, inverse = _distinct_keys(column[outside])
        groups = np.array([category_group(key) for key in keys], dtype=np.int64)
        end = spec.bins + CATEGORY_GROUPS
        counts[spec.bins : end] += np.bincount(groups[inverse], minlength=CATEGORY_GROUPS)
        if spec.sketch is not None:
            new = ~spec.sketch.held(keys)
            counts[end] += int(np.count_nonzero(new[inverse]))
    return counts


def _distinct_keys(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct ``category_key`` of values that are not missing, and each value's index
    among them: each distinct value keyed once (by type too, as in ``category_slots``)."""
    if values.dtype.kind in "fiub":
        distinct, inverse = np.unique(values, return_inverse=True)
        return [category_key(v) or "" for v in distinct], inverse.ravel()
    index: dict[tuple[type, object], int] = {}
    keys: list[str] = []

    def where(value: object) -> int:
        try:
            return index[(type(value), value)]
        except KeyError:
            index[(type(value), value)] = len(keys)
        except TypeError:  # unhashable: a key of its own
            pass
        keys.append(category_key(value) or "")
        return len(keys) - 1

    inverse = np.fromiter(map(where, values), dtype=np.int64, count=values.shape[0])
    return keys, inverse


def category_slots(column: np.ndarray, spec: CategoricalBins) -> np.ndarray:
    """Each value's bin, counted from the feature's first."""
    if column.dtype.kind in "fiub":  # numbers (a float array of all the features): key each once
        values, inverse = np.unique(column, return_inverse=True)
        slots = np.array([_slot(v, spec) for v in values], dtype=np.int64)
        return slots[inverse.ravel()] if values.size else np.zeros(0, dtype=np.int64)
    codes = spec.codes
    # Each distinct value keyed once (by type too: True, 1 and 1.0 are equal as dict keys,
    # and "1" and "1.0" are two categories of a feature of text).
    seen: dict[tuple[type, object], int] = {}

    def slot(value: object) -> int:
        if type(value) is str:
            found = codes.get(value)
            if found is not None:
                return found
        key = (type(value), value)
        try:
            return seen[key]
        except KeyError:
            seen[key] = _slot(value, spec)
            return seen[key]
        except TypeError:  # unhashable
            return _slot(value, spec)

    return np.fromiter(map(slot, column), dtype=np.int64, count=column.shape[0])


def _slot(value: object, spec: CategoricalBins) -> int:
    key = category_key(value)
    if key is None:
        return spec.other + 1
    slot = spec.codes.get(key)
    if slot is None and spec.boolean:
        truth = TRUTHS.get(key.strip().lower())
        slot = spec.codes.get(truth) if truth is not None else None
    return spec.other if slot is None else slot
