"""A drift comparison as one self-contained HTML page: verdicts, scores, overlaid histograms.

No scripts and no external files: the plots are inline SVG, so the report opens anywhere,
attaches to a ticket, and archives as one file.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from modelpilot.monitoring.drift import FeatureDrift
from modelpilot.monitoring.drift_results import figures_apart
from modelpilot.monitoring.feature_histograms import FeatureHistogram, histograms
from modelpilot.monitoring.offline import Comparison
from modelpilot.registry.profile import TOP_CATEGORIES

REFERENCE_COLOR = "#94a3b8"
CURRENT_COLOR = "#2563eb"
DRIFTED_COLOR = "#dc2626"

# Names and category values wrap anywhere (the table's first column, plot titles and notes):
# one unbroken name of 300 characters, common in generated data, pushed every verdict column
# out of sight and the page to 3,200 px.
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f1f5f9;
color:#0f172a}
header{background:#0f172a;color:#f8fafc;padding:18px 32px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
header h1,header p,.card small,.plot h3,.plot p{overflow-wrap:anywhere}
main{padding:24px 32px;max-width:1200px}
.summary{display:flex;gap:16px;margin-bottom:24px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:14px 18px}
.card b{display:block;font-size:22px;margin-top:4px}
.card small{display:block;color:#64748b;font-size:12px;margin-top:2px;max-width:320px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e2e8f0;
border-radius:10px;overflow:hidden;font-size:13px}
th,td{padding:8px 10px;text-align:right;border-bottom:1px solid #f1f5f9}td{white-space:nowrap}
td:first-child{white-space:normal;overflow-wrap:anywhere;min-width:10ch}
th:first-child,td:first-child,td.left{text-align:left}
th{background:#f8fafc;color:#475569;font-weight:600}
.badge{display:inline-block;padding:2px 8px;border-radius:999px;font-size:12px;font-weight:600}
.drifted{background:#fee2e2;color:#b91c1c}.ok{background:#dcfce7;color:#15803d}
.none{background:#e2e8f0;color:#475569}
.wide{overflow-x:auto;border-radius:10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(360px,100%),1fr));gap:16px;
margin-top:24px}
.plot{min-width:0}.plot h3{margin:0 0 6px;font-size:14px}.plot.many{grid-column:1/-1}
.plot p{margin:6px 0 0;color:#64748b;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
.rule{color:#475569;font-size:13px;margin-top:20px;line-height:1.5}
details{margin-top:6px;font-size:12px;color:#475569}summary{cursor:pointer}
details table{margin-top:6px;font-size:12px}details .scroll{max-height:320px;overflow-y:auto}
@media (max-width:600px){header{padding:14px 16px}main{padding:16px}}
"""

MAX_PLOTTED_CATEGORIES = 30
"""A categorical histogram plots at most this many categories, the largest by either sample's
share; the rest are pooled into one bar (their counts are in the table under the plot). A
feature may have up to 1,000 categories, whose labels would overlap into a smear."""


def share_text(share: float) -> str:
    """A share in percent that reads 0% only for none and 100% only for all: "0%" of 2
    features drifted of 500 read as none; under 1% to one significant digit (0.4%)."""
    percent = share * 100
    if percent <= 0 or percent >= 100:
        return f"{percent:.0f}%"
    if percent < 1:
        return f"{percent:.1g}%"
    text = f"{percent:.0f}%"
    return f"{math.floor(percent * 10) / 10:.1f}%" if text == "100%" else text


def render_html(
    comparison: Comparison,
    title: str,
    reference_label: str,
    current_label: str,
) -> str:
    report = comparison.report
    # An empty current file is no rows "in the current data": "the window" is the live
    # monitor's word.
    features = {f.name: _offline(f) for f in report.features}
    if any(f.method != "none" for f in report.features):
        verdict = "Dataset drift" if report.dataset_drift else "No dataset drift"
        drifted = f"{len(report.drifted_features)} / {len(report.features)}"
        share = share_text(report.drifted_share)
    else:
        # Too few rows: no feature was judged. "No dataset drift" and "0 / 6" claimed a
        # finding that was never made; the report's verdict says what there is instead.
        verdict, drifted, share = "No verdict", "-", "-"
    cards = [
        ("Verdict", verdict, shown(_offline_text(report.verdict))),
        ("Drifted features", drifted, ""),
        ("Drifted share", share, ""),
        ("Current rows", f"{report.rows:,}", ""),
        ("Reference rows", f"{comparison.binning.profile.n_rows:,}", ""),
    ]
    plots = [
        _plot(histogram, features[histogram.name])
        for histogram in histograms(comparison.binning, comparison.counts)
    ]
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return "".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
            f"<header><h1>{_e(title)}</h1><p>reference: {_e(reference_label)} &middot; ",
            f"current: {_e(current_label)} &middot; generated {_e(generated)}</p></header><main>",
            "<div class='summary'>",
            *(
                f"<div class='card'>{_e(k)}<b>{_e(v)}</b>"
                + (f"<small>{_e(note)}</small>" if note else "")
                + "</div>"
                for k, v, note in cards
            ),
            "</div>",
            _table(list(features.values())),
            _RULE,
            "<div class='grid'>",
            *plots,
            "</div></main></body></html>",
        ]
    )


_RULE = (
    "<p class='rule'>How to read this: below the minimum row count there is no verdict. "
    "A feature drifts when an effect size reaches its line (PSI for numbers, Jensen-Shannon "
    "distance for categories, both with a bin for missing values) and, on small samples "
    "(for numbers also on large ones against a small reference, and for categories on any), "
    "significance tests find the difference past chance "
    "(score = 1 - p-value, the p-value shown being that of the test that decided): for "
    "numbers, two-sample Kolmogorov-Smirnov on the values present and Fisher's exact test of "
    "the share of missing values, the smaller p-value deciding (method ks or missing); for "
    "categories, chi-squared of both samples' counts, with missing values a category of their "
    "own, and Fisher's exact test of the share of rows in categories too rare for it (method "
    "chi2 or rare). Where a test finds a difference the effect size calls too small to act "
    "on, the method is psi or js, its score the effect size. On large samples every test "
    "calls a negligible difference significant, and on small ones an effect size is noisy; "
    "over many categories and a small reference a categorical distance is noise of its "
    "line's size. A reference with more categories than the profile "
    f"names ({TOP_CATEGORIES}) pools the rest as other, where a value it never held counts too. "
    "Wasserstein is in reference standard deviations, with each bin's mass at the mean of its "
    "values (a dash where the reference has no value or no standard deviation). Empty bins "
    "get a probability of 1e-4 before PSI and KL divergence.</p>"
)


def _offline_text(text: str) -> str:
    return text.replace("no rows in the window", "no rows in the current data")


def _offline(feature: FeatureDrift) -> FeatureDrift:
    return replace(feature, reason=_offline_text(feature.reason))


def _table(features: Sequence[FeatureDrift]) -> str:
    left = "<th style='text-align:left'>"
    head = (
        f"<div class='wide'><table><tr><th>feature</th>{left}kind</th>{left}verdict</th>"
        f"{left}method</th><th>score</th><th>threshold</th>"
        "<th title='of the test that decided (the one method names)'>p-value</th><th>PSI</th>"
        "<th>JS distance</th><th>KL</th>"
        "<th>Wasserstein</th><th>missing: reference</th><th>missing: current</th>"
        "<th>rows</th></tr>"
    )
    rows = []
    for f in features:
        rows.append(
            "<tr>"
            f"<td>{_name(f.name)}</td><td class='left'>{f.kind}</td>"
            f"<td class='left'>{_badge(f)}</td>"
            f"<td class='left'>{f.method}</td>{_judgement(f)}"
            f"<td>{_p(f.deciding_p_value)}</td><td>{_num(f.psi, 4)}</td>"
            f"<td>{_num(f.js_distance, 4)}</td><td>{_num(f.kl_divergence, 4)}</td>"
            f"<td>{_num(f.wasserstein)}</td><td>{_share(f.reference_missing_share)}</td>"
            f"<td>{_share(f.missing_share)}</td><td>{f.rows:,}</td>"
            "</tr>"
        )
    return head + "".join(rows) + "</table></div>"


def _judgement(feature: FeatureDrift) -> str:
    """The score and threshold cells: none without a verdict (they read 0.0000, 0.0000);
    with the places that keep the two on their sides (a PSI of 0.19996 read "0.2000" beside
    "0.2000", the verdict "ok")."""
    if feature.method == "none":
        return "<td>-</td><td>-</td>"
    score, threshold = figures_apart(feature.score, feature.threshold, 4)
    return f"<td>{score}</td><td>{threshold}</td>"


def _badge(feature: FeatureDrift) -> str:
    if feature.method == "none":
        label = "no rows" if feature.rows == 0 else "too few rows"
        if feature.error is not None:  # its tests failed: said in its reason
            label = "failed"
        return f"<span class='badge none'>{label}</span>"
    if feature.drifted:
        return "<span class='badge drifted'>drifted</span>"
    return "<span class='badge ok'>ok</span>"


def _plot(histogram: FeatureHistogram, drift: FeatureDrift) -> str:
    plotted = _plotted(histogram)
    if histogram.kind == "numeric":
        labels = _bin_labels(plotted.labels)
    else:
        labels = [_short(shown(label)) for label in plotted.labels]
    reference = _shares(plotted.reference)
    current = _shares(plotted.current)
    n = len(labels)
    # Many bins take a row of their own, with room for each label, and steeper labels.
    many = n > _BINS_PER_CARD
    width, top = (max(360, 26 * n), 10) if many else (360, 10)
    tilt = math.radians(60 if many else 35)
    # Labels are rotated to the left of their bar: the first one's reach sets the left
    # margin (a fixed 36 px cut it off at the card's edge), the longest the bottom one.
    reach = [_LABEL_PX * len(label) for label in labels] or [0.0]
    left = 36.0
    for _ in range(2):  # the slot depends on the margin, and the margin on the slot
        slot = (width - left - 8) / max(n, 1)
        left = max(36.0, math.cos(tilt) * reach[0] - slot / 2 + 4)
    slot = (width - left - 8) / max(n, 1)
    bottom = max(44, math.ceil(math.sin(tilt) * max(reach) + 18))
    height = 146 + bottom
    peak = max(float(reference.max(initial=0)), float(current.max(initial=0)), 1e-9)
    bar = max(slot * 0.4, 1.0)
    scale = (height - bottom - top) / peak
    color = DRIFTED_COLOR if drift.drifted else CURRENT_COLOR
    degrees = math.degrees(tilt)
    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='100%' role='img' "
        f"aria-label='{_e(shown(histogram.name))} histogram'>",
        f"<line x1='{left:.1f}' y1='{height - bottom}' x2='{width - 4}' y2='{height - bottom}' "
        "stroke='#cbd5e1'/>",
        f"<text x='{left - 4:.1f}' y='{top + 8}' font-size='10' text-anchor='end' "
        f"fill='#64748b'>{peak:.0%}</text>",
    ]
    for i, label in enumerate(plotted.labels):
        x = left + i * slot + (slot - 2 * bar) / 2
        for j, (share, fill) in enumerate(((reference[i], REFERENCE_COLOR), (current[i], color))):
            h = share * scale
            parts.append(
                f"<rect x='{x + j * bar:.1f}' y='{height - bottom - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{fill}'><title>{_e(shown(label))}: "
                f"{'reference' if j == 0 else 'current'} {share:.1%}</title></rect>"
            )
        cx = left + i * slot + slot / 2
        empty = " font-style='italic'" if histogram.kind == "categorical" and not label else ""
        parts.append(
            f"<text x='{cx:.1f}' y='{height - bottom + 12}' font-size='9' fill='#475569' "
            f"text-anchor='end' transform='rotate(-{degrees:g} {cx:.1f} {height - bottom + 12})'"
            f"{empty}>{_e(labels[i])}</text>"
        )
    parts.append("</svg>")
    legend = (
        f"<div class='legend'><span style='background:{REFERENCE_COLOR}'></span>reference"
        f"<span style='background:{color}'></span>current</div>"
    )
    counts = _counts_table(histogram) if len(plotted.labels) < len(histogram.labels) else ""
    return (
        f"<div class='card plot{' many' if many else ''}'><h3>{_name(histogram.name)} "
        f"{_badge(drift)}</h3>{legend}{''.join(parts)}<p>{_e(drift.reason)}</p>{counts}</div>"
    )


_BINS_PER_CARD = 14
"""More bins than this, and a histogram spans the grid's width."""
_LABEL_PX = 5.4
"""Width of a character of a 9 px label, a little over the average, so that margins hold."""


def _plotted(histogram: FeatureHistogram) -> FeatureHistogram:
    """``histogram`` as plotted: a categorical one with more than ``MAX_PLOTTED_CATEGORIES``
    named categories keeps the largest (by the larger of their two shares, in the profile's
    order) and pools the rest into one bar, "N more". Its last bins (see ``category_bins``:
    values outside the named categories, "other" or "unseen", then "missing") always show:
    rows there are what drift often looks like."""
    labels = histogram.labels
    named = len(labels)
    if named and labels[named - 1] == "missing":
        named -= 1
    if named and labels[named - 1] in ("other", "unseen"):
        named -= 1
    if histogram.kind != "categorical" or named <= MAX_PLOTTED_CATEGORIES:
        return histogram
    reference, current = _shares(histogram.reference), _shares(histogram.current)
    largest = np.maximum(reference, current)[:named]
    order = np.argsort(-largest, kind="stable")
    keep = np.sort(order[:MAX_PLOTTED_CATEGORIES])
    rest = np.sort(order[MAX_PLOTTED_CATEGORIES:])
    tail = np.arange(named, len(labels))

    def pooled(counts: np.ndarray) -> np.ndarray:
        return np.concatenate([counts[keep], [counts[rest].sum()], counts[tail]]).astype(np.int64)

    return FeatureHistogram(
        histogram.name,
        histogram.kind,
        [
            *(labels[i] for i in keep),
            f"{rest.size} more",
            *(labels[i] for i in tail),
        ],
        pooled(histogram.reference),
        pooled(histogram.current),
    )


def _counts_table(histogram: FeatureHistogram) -> str:
    """Every bin's counts, for a plot that pooled some of them."""
    reference, current = _shares(histogram.reference), _shares(histogram.current)
    rows = "".join(
        f"<tr><td>{_name(label)}</td><td>{int(histogram.reference[i]):,}</td>"
        f"<td>{reference[i]:.1%}</td><td>{int(histogram.current[i]):,}</td>"
        f"<td>{current[i]:.1%}</td></tr>"
        for i, label in enumerate(histogram.labels)
    )
    return (
        f"<details><summary>all {len(histogram.labels):,} bins' counts</summary>"
        "<div class='scroll'><table><tr><th>bin</th><th>reference</th><th>share</th>"
        f"<th>current</th><th>share</th></tr>{rows}</table></div></details>"
    )


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.shape)


_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?")
"""A number in a numeric bin's label ("< -1.5", "0.25 - 3e+05"); not the " - " between."""


def _bin_labels(labels: Sequence[str]) -> list[str]:
    """A numeric histogram's bin labels for its axis, whole, with their numbers to three
    significant digits where those still tell every edge apart (else as the binning wrote
    them, to four): cut to 16 characters, "-0.8258 - -0.5512" read "-0.8258 - -0.55…", and
    half the axis lost its upper edges. The bars' tooltips keep the four digits."""
    numbers = {float(n) for label in labels for n in _NUMBER.findall(label)}
    if len({_three_digits(n) for n in numbers}) < len(numbers):
        return list(labels)
    return [_NUMBER.sub(lambda m: _three_digits(float(m[0])), label) for label in labels]


def _three_digits(value: float) -> str:
    """``value`` to three significant digits, written out below a million: 1230, -0.826."""
    return f"{float(f'{value:.3g}'):g}"


def _short(label: str, limit: int = 16) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _num(value: float | None, places: int | None = None) -> str:
    """``value`` to ``places`` decimals (else 4 significant digits); "-" for none or NaN."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}" if places is None else f"{value:.{places}f}"


def _p(value: float | None) -> str:
    """A p-value: two significant digits (1.9e-76), as the verdicts quote them."""
    return "-" if value is None or math.isnan(value) else f"{value:.2g}"


def _share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
"""What a page does not show as written: control characters (a newline shows as a space,
the page folding white space), the line and paragraph separators, and the marks that set
the direction of the text after them. The terminal's table writes the same as escapes
(``cli.common.terminal_text``); so does the dashboard (``drift.js``)."""
EMPTY = "(empty)"
"""How an empty name or category value is shown (in italics, where the page can)."""


def shown(text: object) -> str:
    """A feature's name or a category's value as the report shows it: what a page would not
    show as written as its escape (``new\\nline``, not "new line", which read as another
    name than the terminal's), and the empty text as ``EMPTY`` (an empty category was a bar
    without a label)."""
    value = str(text)
    if not value:
        return EMPTY
    return _UNSHOWABLE.sub(lambda found: found.group().encode("unicode_escape").decode(), value)


def _name(text: object) -> str:
    """``shown`` as HTML: the empty text in italics, told from a value "(empty)"."""
    return f"<i>{EMPTY}</i>" if not str(text) else _e(shown(text))
