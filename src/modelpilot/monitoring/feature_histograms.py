"""Each feature's bins side by side, reference and window, for the drift report's plots."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from modelpilot.monitoring.binning import ProfileBinning


@dataclass(frozen=True, slots=True)
class FeatureHistogram:
    """One feature's bins side by side: labels, reference counts, current counts."""

    name: str
    kind: str
    labels: list[str]
    reference: np.ndarray
    current: np.ndarray


def histograms(binning: ProfileBinning, counts: np.ndarray) -> list[FeatureHistogram]:
    """Every feature's bins for plotting, in the profile's order; empty edge bins left out."""
    out: list[FeatureHistogram] = []
    for spec in binning.numeric:
        edges = spec.edges
        # A bin whose reference rows all hold its first edge (a value of its own, see
        # ``registry.profile.bin_edges``) is named by that value: a flag's zeros read
        # "0 - 1", and code 3 "3 - 7".
        means, held = spec.points[1:-1], spec.reference[1:-2] > 0
        labels = [f"< {edges[0]:.4g}"]
        labels += [
            f"{lo:.4g}" if lo == hi or (held[i] and means[i] == lo) else f"{lo:.4g} - {hi:.4g}"
            for i, (lo, hi) in enumerate(itertools.pairwise(edges))
        ]
        labels += [f"> {edges[-1]:.4g}", "missing"]
        current = counts[spec.offset : spec.offset + spec.width]
        out.append(
            _histogram(binning.names, spec.index, "numeric", labels, spec.reference, current)
        )
    for category in binning.categorical:
        labels = category.labels
        current = counts[category.offset : category.offset + category.bins]
        out.append(
            _histogram(
                binning.names, category.index, "categorical", labels, category.reference, current
            )
        )
    order = {name: i for i, name in enumerate(binning.names)}
    out.sort(key=lambda h: order[h.name])
    return out


def _histogram(
    names: list[str],
    index: int,
    kind: str,
    labels: list[str],
    reference: np.ndarray,
    current: np.ndarray,
) -> FeatureHistogram:
    # The reference's own bins always show; the edge ones (below or above its range,
    # unseen, missing) only when something fell there.
    first = 1 if kind == "numeric" else 0
    inner = set(range(first, len(labels) - 2))
    keep = [i for i in range(len(labels)) if i in inner or reference[i] or current[i]]
    return FeatureHistogram(
        names[index],
        kind,
        [labels[i] for i in keep],
        reference[keep].astype(np.int64),
        current[keep].astype(np.int64),
    )
