"""What a categorical feature's tests found, in words: which test decides, and its finding."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from modelpilot.monitoring.divergence import compare_categories


class CategoryFinding(NamedTuple):
    """The categorical tests' verdict on a window, before the level is applied."""

    method: str
    """The test that decides (the smaller p-value): ``chi2`` or ``rare``."""
    deciding_p: float
    finding: str
    """What that test found, ending in its p-value."""
    chi_p: float
    rare_p: float


def category_finding(
    reference_counts: np.ndarray,
    current_counts: np.ndarray,
    tail: bool,
    alpha: float,
    fold_rare: bool = True,
) -> CategoryFinding:
    """The categorical tests (see ``divergence.compare_categories``) on a feature's bins, and
    what the deciding one found. With a ``tail`` (the reference's rarer categories pooled, see
    ``category_bins``) rare named categories join it if ``fold_rare``; without, the bin after
    the named categories holds the values the reference never held."""
    rows = int(current_counts.sum())
    other = reference_counts.size - 2  # the tail, else the values the reference never held
    fold_into, unseen = (other if fold_rare else None, None) if tail else (None, other)
    tests = compare_categories(reference_counts, current_counts, fold_into, unseen)
    chi_p, rare_p = tests.chi_p, tests.rare_p
    if rare_p < chi_p:
        within = "" if rare_p < alpha else ", within chance"
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
        finding += f": Fisher's exact test p = {rare_p:.2g}"
        return CategoryFinding("rare", rare_p, finding, chi_p, rare_p)
    if not tail and current_counts[other] and _values_of_their_own(reference_counts):
        # Else "categories as in the reference: chi-squared test p = 1" of a window of ids
        # the reference never held, as if the test had weighed them.
        finding = (
            f"{current_counts[other] / rows:.1%} of rows hold values the reference never had, "
            "as expected where every reference row held a value of its own (an id, a time, "
            "free text), so new ones tell nothing; a change in its missing share, or its "
            f"values recurring, would: Fisher's exact test p = {rare_p:.2g}"
        )
        return CategoryFinding("rare", rare_p, finding, chi_p, rare_p)
    categories = "categories differ from" if chi_p < alpha else "categories as in"
    finding = f"{categories} the reference: chi-squared test p = {chi_p:.2g}"
    return CategoryFinding("chi2", chi_p, finding, chi_p, rare_p)


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
