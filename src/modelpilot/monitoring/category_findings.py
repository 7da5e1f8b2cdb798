"""What a categorical feature's tests found, in words: which test decides, and its finding
(with the test of values recurring among those outside the named categories)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from modelpilot.monitoring.divergence import (
    compare_categories,
    fisher_exact,
    good_turing_unseen_p,
    js_distance,
)
from modelpilot.monitoring.drift_results import p_shown


class UnseenValues(NamedTuple):
    """A window's rows of values that a reference of a pooled tail never held (outside the
    named categories and the tail's sketch: ``registry.category_sketch``), and what the
    reference foretells of them."""

    rows: int
    once: int
    """The reference's values held by one of its rows (of all of them)."""
    twice: int
    total: int
    """The reference's rows (all of them, not the held-out half's)."""
    caught: float
    """The share of new values the sketch tells new (the rest it takes for the tail's)."""

    @property
    def expected_share(self) -> float:
        """The share of a window's rows expected to hold values the reference never held
        (and the sketch tells new) where nothing drifted: Good and Turing's estimate."""
        return self.once * self.caught / self.total if self.total else 0.0

    def p_value(self, rows: int) -> float:
        """One-sided p-value that a window of ``rows`` holds more such rows than one drawn
        as the reference was (``divergence.good_turing_unseen_p``)."""
        return good_turing_unseen_p(self.once, self.twice, self.total, self.rows, rows, self.caught)


class ValueGroups(NamedTuple):
    """A feature's rows by ``registry.profile.category_group`` (a hash of the value), of the
    values present, in the reference and in a window (see ``category_bins``)."""

    reference: np.ndarray
    current: np.ndarray
    reference_other: np.ndarray
    """Of ``reference``, the rows in the other-values bin: the pooled tail's, none where the
    profile named every category."""
    current_other: np.ndarray
    """Of ``current``, the rows of values outside the named categories."""
    unseen: UnseenValues | None = None
    """Of those, the rows the reference never held, where its profile can tell (a sketch of
    its pooled tail); None where it cannot."""


class CategoryFinding(NamedTuple):
    """The categorical tests' verdict on a window, before the level is applied."""

    method: str
    """The test that decides (the smaller p-value): ``chi2`` or ``rare``."""
    deciding_p: float
    finding: str
    """What that test found, ending in its p-value."""
    chi_p: float
    rare_p: float
    test: str
    """The deciding test in words ("chi-squared test")."""
    js_distance: float | None = None
    """Where values recurring decided, Jensen-Shannon over the bins with the values outside
    the named categories split by group (see ``recurring_test``), the shift's effect size:
    over the bins alone, a pooled tail of ids and a window of one of them are alike (0)."""


def category_finding(
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    tail: bool,
    alpha: float,
    fold_rare: bool = True,
    groups: ValueGroups | None = None,
) -> CategoryFinding:
    """The categorical tests (see ``divergence.compare_categories``) on a feature's bins, and
    what the deciding one found. With a ``tail`` (the reference's rarer categories pooled, see
    ``category_bins``) rare named categories join it if ``fold_rare``; without, the bin after
    the named categories holds the values the reference never held.

    Where the window holds values outside the named categories and their ``groups`` are
    known, ``recurring_test`` joins the rare test: its p-value is then the smaller of the two
    times two (Bonferroni within it, as the unseen test joins it), so that each feature
    still has two tests at the level ``drift`` divides. Where the reference pooled a tail and
    kept a sketch of it, the window's values outside both (``ValueGroups.unseen``) are
    weighed too, one-sided against the share the reference's values held once foretell
    (``UnseenValues.p_value``), and the smallest of the three counts times three; where that
    test decides, Jensen-Shannon is taken with the other-values bin split into the tail's
    values and new ones (``_unseen_js``), as the bins alone hide new values in the tail."""
    rows = int(current_counts.sum())
    other = reference_counts.size - 2  # the tail, else the values the reference never held
    fold_into, unseen = (other if fold_rare else None, None) if tail else (None, other)
    tests = compare_categories(reference_counts, current_counts, fold_into, unseen)
    chi_p, rare_p = tests.chi_p, tests.rare_p
    recurring, group, unseen_p = 1.0, -1, 1.0
    if groups is not None and current_counts[other]:
        recurring, group = recurring_test(groups)
        joined = [rare_p, recurring]
        if groups.unseen is not None and groups.unseen.rows:
            unseen_p = groups.unseen.p_value(rows)
            joined.append(unseen_p)
        rare_p = min(len(joined) * min(joined), 1.0)
    if rare_p < chi_p:
        within = "" if rare_p < alpha else ", within chance"
        if (
            groups is not None
            and groups.unseen is not None
            and unseen_p < min(tests.rare_p, recurring)
        ):
            new_values = groups.unseen
            finding = unseen_finding(new_values, rows)
            finding += f"{within}: Fisher's exact test p = {p_shown(rare_p, alpha)}"
            test = "Fisher's exact test of unseen values"
            split = _unseen_js(reference_counts, current_counts, new_values)
            return CategoryFinding("rare", rare_p, finding, chi_p, rare_p, test, split)
        if groups is not None and group >= 0 and recurring < tests.rare_p:
            finding = _recurring_finding(reference_counts, current_counts, groups, group, tail)
            finding += f"{within}: Fisher's exact test p = {p_shown(rare_p, alpha)}"
            test = "Fisher's exact test of values recurring"
            split = _split_js(reference_counts, current_counts, groups)
            return CategoryFinding("rare", rare_p, finding, chi_p, rare_p, test, split)
        if tests.unseen_decides:
            finding = _unseen_finding(reference_counts, current_counts, within)
        else:
            share = current_counts[tests.rare].sum() / rows
            reference_share = reference_counts[tests.rare].sum() / max(reference_counts.sum(), 1)
            pooled = _rare_bins(tests.rare & (reference_counts + current_counts > 0), tail)
            finding = (
                f"{share:.1%} of rows in bins too rare to test one by one ({pooled}), "
                f"against {reference_share:.1%} of the reference's rows{within}"
            )
        finding += f": Fisher's exact test p = {p_shown(rare_p, alpha)}"
        test = "Fisher's exact test of rare categories"
        return CategoryFinding("rare", rare_p, finding, chi_p, rare_p, test)
    if not tail and current_counts[other] and _values_of_their_own(reference_counts):
        # Else "categories as in the reference: chi-squared test p = 1" of a window of ids
        # the reference never held, as if the test had weighed them.
        finding = (
            f"{current_counts[other] / rows:.1%} of rows hold values the reference never had, "
            "as expected where every reference row held a value of its own (an id, a time, "
            "free text), so new ones tell nothing; a change in its missing share, or its "
            f"values recurring, would: Fisher's exact test p = {p_shown(rare_p, alpha)}"
        )
        test = "Fisher's exact test of rare categories"
        return CategoryFinding("rare", rare_p, finding, chi_p, rare_p, test)
    categories = "categories differ from" if chi_p < alpha else "categories as in"
    finding = f"{categories} the reference: chi-squared test p = {p_shown(chi_p, alpha)}"
    return CategoryFinding("chi2", chi_p, finding, chi_p, rare_p, "chi-squared test")


def recurring_test(groups: ValueGroups) -> tuple[float, int]:
    """One-sided p-value that one value (or a few) recurs in the window far more often than
    any of the reference's did, and the group it is in (-1: no group to test).

    Values that the reference never held, or that its profile pooled, all count in one bin,
    however many they are: a window of 2,000 distinct new ids and one of "UNKNOWN" 2,000
    times read alike there, and against a reference of ids of their own both are what the
    unseen test expects (see ``divergence.unseen_test``). So the values are also counted by
    group, a hash of the value (``registry.profile.category_group``): the null hypothesis is
    the drift tests' own, that the reference and the window are drawn from one
    distribution; the groups are fixed before either is seen, so each group's share of rows
    is then the same in both, whatever the values, and a group's rows in the window, given
    its rows in both, are hypergeometric (Fisher's exact test, one-sided toward more in the
    window), as any category's are. Ids, new or not, each come once and spread evenly over
    the groups in both samples (about 1/64 each): no group stands out, and a window of ids
    none of which the reference held stays "no drift". One value repeated lands all its rows
    in one group: 5% of a window of 2,000 rows, against 500 reference ids of which its group
    held 1.6%, is p = 1e-6 in the group, 7e-5 over the 64.

    The group with the least p-value is tested, times the number of groups (Bonferroni),
    among those whose excess of rows over their expected share the window's values outside
    the named categories could make up: a named category's own move is the chi-squared
    test's to weigh, not a value recurring (choosing among the groups can only make fewer
    of them count)."""
    reference, current = groups.reference, groups.current
    total, rows = int(reference.sum()), int(current.sum())
    if total <= 0 or rows <= 0:
        return 1.0, -1
    expected = (reference + current) * rows / (total + rows)
    excess = current - expected
    candidates = np.flatnonzero((excess > 0) & (groups.current_other >= excess))
    best, group = 1.0, -1
    for candidate in candidates:
        p = fisher_exact(
            int(reference[candidate]), total, int(current[candidate]), rows, higher=True
        )
        if p < best or group < 0:
            best, group = p, int(candidate)
    return min(best * reference.size, 1.0), group


def _recurring_finding(
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    groups: ValueGroups,
    group: int,
    tail: bool,
) -> str:
    """The finding of ``recurring_test``: the window's values outside the named categories,
    and the share of rows of the group that stood out, against the reference's."""
    rows, total = int(current_counts.sum()), max(int(reference_counts.sum()), 1)
    outside = "outside the reference's named categories" if tail else "the reference never had"
    return (
        f"{groups.current_other.sum() / rows:.1%} of rows hold values {outside}, and "
        f"{groups.current[group] / rows:.1%} of rows fall in one of the {groups.current.size} "
        f"groups that values are hashed into, against {groups.reference[group] / total:.1%} of "
        "the reference's: a value recurring far more often than the reference's did"
    )


def unseen_finding(unseen: UnseenValues, rows: int) -> str:
    """The finding of the unseen test of a reference with a pooled tail: the window's share
    of values the reference never held, against the share its values held once foretell."""
    return (
        f"{unseen.rows / rows:.1%} of rows hold values the reference never had (neither its "
        f"named categories nor its pooled tail), against {unseen.expected_share:.1%} expected "
        "of rows drawn as it was (its rows whose value no other row held)"
    )


def _unseen_js(
    reference_counts: np.ndarray, current_counts: np.ndarray, unseen: UnseenValues
) -> float:
    """Jensen-Shannon distance over the bins with the other-values bin split in two: the
    tail's values and those the reference never held, the reference's rows there split by
    the share of new values it foretells. Over the bins alone, a window of nothing but new
    values moves no more than the named categories' share (0.13 of 14,600 ids' tail)."""
    other = reference_counts.size - 2
    reference = reference_counts.astype(np.float64)
    new = min(unseen.expected_share * reference.sum(), reference[other])
    current = current_counts.astype(np.float64)
    seen = current[other] - unseen.rows
    return js_distance(
        np.concatenate([reference[:other], [reference[other] - new, new], reference[-1:]]),
        np.concatenate([current[:other], [seen, unseen.rows], current[-1:]]),
    )


def _split_js(
    reference_counts: np.ndarray, current_counts: np.ndarray, groups: ValueGroups
) -> float:
    """Jensen-Shannon distance over the bins with the other-values bin split by group."""
    other = reference_counts.size - 2
    return js_distance(
        np.concatenate([reference_counts[:other], groups.reference_other, reference_counts[-1:]]),
        np.concatenate([current_counts[:other], groups.current_other, current_counts[-1:]]),
    )


def _unseen_finding(reference_counts: np.ndarray, current_counts: np.ndarray, within: str) -> str:
    """The finding of the unseen test (``divergence.unseen_test``): the window's share of new
    values against the reference's share of rows whose value it held once, its estimate of
    that share under no drift."""
    unseen = reference_counts.size - 2
    once = int(np.count_nonzero(reference_counts[:unseen] == 1))
    return (
        f"{current_counts[unseen] / current_counts.sum():.1%} of rows hold values the "
        f"reference never had, against {once / max(reference_counts.sum(), 1):.1%} of the "
        f"reference's rows held values it had once{within}"
    )


def _values_of_their_own(reference_counts: np.ndarray) -> bool:
    """Whether every reference row held a value no other row held (``unseen_test``'s case of
    a new value in every fresh row)."""
    named = reference_counts[:-2]
    return bool(named.size) and int(np.count_nonzero(named == 1)) == int(reference_counts.sum())


def _rare_bins(pooled: np.ndarray, tail: bool) -> str:
    """What the rare-category test pooled, in words: of a categorical feature's bins (its
    named categories, then values outside them, then missing values), those ``pooled``."""
    named = int(pooled[:-2].sum())
    parts = [f"{named} of the reference's categories"] if named else []
    if pooled[-2]:
        parts.append(
            "values outside the reference's named categories"
            if tail
            else "values the reference never held"
        )
    if pooled[-1]:
        parts.append("missing values")
    return ", ".join(parts)
