"""A drift comparison as one self-contained HTML page: verdicts, scores, overlaid histograms.

No scripts and no external files: the plots are inline SVG, so the report opens anywhere,
attaches to a ticket, and archives as one file.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence

import numpy as np

from modelpilot.monitoring.binning import FeatureHistogram
from modelpilot.monitoring.drift import FeatureDrift
from modelpilot.monitoring.offline import Comparison
from modelpilot.registry.profile import TOP_CATEGORIES

REFERENCE_COLOR = "#94a3b8"
CURRENT_COLOR = "#2563eb"
DRIFTED_COLOR = "#dc2626"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f1f5f9;
color:#0f172a}
header{background:#0f172a;color:#f8fafc;padding:18px 32px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
main{padding:24px 32px;max-width:1200px}
.summary{display:flex;gap:16px;margin-bottom:24px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:14px 18px}
.card b{display:block;font-size:22px;margin-top:4px}
.card small{display:block;color:#64748b;font-size:12px;margin-top:2px;max-width:320px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e2e8f0;
border-radius:10px;overflow:hidden;font-size:13px}
th,td{padding:8px 10px;text-align:right;border-bottom:1px solid #f1f5f9}
th:first-child,td:first-child,td.left{text-align:left}
th{background:#f8fafc;color:#475569;font-weight:600}
.badge{display:inline-block;padding:2px 8px;border-radius:999px;font-size:12px;font-weight:600}
.drifted{background:#fee2e2;color:#b91c1c}.ok{background:#dcfce7;color:#15803d}
.none{background:#e2e8f0;color:#475569}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:16px;
margin-top:24px}
.plot h3{margin:0 0 6px;font-size:14px}.plot p{margin:6px 0 0;color:#64748b;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
.rule{color:#475569;font-size:13px;margin-top:20px;line-height:1.5}
"""


def render_html(
    comparison: Comparison,
    title: str,
    reference_label: str,
    current_label: str,
) -> str:
    report = comparison.report
    features = {f.name: f for f in report.features}
    if any(f.method != "none" for f in report.features):
        verdict = "Dataset drift" if report.dataset_drift else "No dataset drift"
        drifted = f"{len(report.drifted_features)} / {len(report.features)}"
        share = f"{report.drifted_share:.0%}"
    else:
        # Too few rows: no feature was judged. "No dataset drift" and "0 / 6" claimed a
        # finding that was never made; the report's verdict says what there is instead.
        verdict, drifted, share = "No verdict", "-", "-"
    cards = [
        ("Verdict", verdict, report.verdict),
        ("Drifted features", drifted, ""),
        ("Drifted share", share, ""),
        ("Current rows", f"{report.rows:,}", ""),
        ("Reference rows", f"{comparison.binning.profile.n_rows:,}", ""),
    ]
    plots = [
        _plot(histogram, features[histogram.name])
        for histogram in comparison.binning.histograms(comparison.counts)
    ]
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return "".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
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
            _table(report.features),
            _RULE,
            "<div class='grid'>",
            *plots,
            "</div></main></body></html>",
        ]
    )


_RULE = (
    "<p class='rule'>How to read this: below the minimum row count there is no verdict. "
    "Small samples are judged by significance tests (score = 1 - p-value): for numbers, "
    "two-sample Kolmogorov-Smirnov on the values present and Fisher's exact test of the share "
    "of missing values, the smaller p-value deciding (method ks or missing); for categories, "
    "chi-squared of both samples' counts, with missing values a category of their own, and "
    "Fisher's exact test of the share of rows in categories too rare for it (method chi2 or "
    "rare). Large samples are judged by an effect size (PSI for numbers, Jensen-Shannon "
    "distance for categories, both with a bin for missing values), because on large samples "
    "every test calls a negligible difference significant; a categorical feature's distance "
    "counts once its tests find it past chance, as over many categories and a small "
    "reference it is noise of that size. A reference with more categories than the profile "
    f"names ({TOP_CATEGORIES}) pools the rest as other, where a value it never held counts too. "
    "Wasserstein is in reference standard deviations, with each bin's mass at the mean of its "
    "values (a dash where the reference has no value or no standard deviation). Empty bins "
    "get a probability of 1e-4 before PSI and KL divergence.</p>"
)


def _table(features: Sequence[FeatureDrift]) -> str:
    left = "<th style='text-align:left'>"
    head = (
        f"<table><tr><th>feature</th>{left}kind</th>{left}verdict</th>{left}method</th>"
        "<th>score</th>"
        "<th>threshold</th><th>p-value</th><th>PSI</th><th>JS distance</th><th>KL</th>"
        "<th>Wasserstein</th><th>missing: reference</th><th>missing: current</th>"
        "<th>rows</th></tr>"
    )
    rows = []
    for f in features:
        rows.append(
            "<tr>"
            f"<td>{_e(f.name)}</td><td class='left'>{f.kind}</td><td class='left'>{_badge(f)}</td>"
            f"<td class='left'>{f.method}</td>{_judgement(f)}"
            f"<td>{_num(f.p_value)}</td><td>{_num(f.psi, 4)}</td>"
            f"<td>{_num(f.js_distance, 4)}</td><td>{_num(f.kl_divergence, 4)}</td>"
            f"<td>{_num(f.wasserstein)}</td><td>{_share(f.reference_missing_share)}</td>"
            f"<td>{_share(f.missing_share)}</td><td>{f.rows:,}</td>"
            "</tr>"
        )
    return head + "".join(rows) + "</table>"


def _judgement(feature: FeatureDrift) -> str:
    """The score and threshold cells: none without a verdict (they read 0.0000, 0.0000)."""
    if feature.method == "none":
        return "<td>-</td><td>-</td>"
    return f"<td>{feature.score:.4f}</td><td>{feature.threshold:.4f}</td>"


def _badge(feature: FeatureDrift) -> str:
    if feature.method == "none":
        label = "no rows" if feature.rows == 0 else "too few rows"
        return f"<span class='badge none'>{label}</span>"
    if feature.drifted:
        return "<span class='badge drifted'>drifted</span>"
    return "<span class='badge ok'>ok</span>"


def _plot(histogram: FeatureHistogram, drift: FeatureDrift) -> str:
    width, height, left, bottom, top = 360, 190, 36, 44, 10
    reference = _shares(histogram.reference)
    current = _shares(histogram.current)
    n = len(histogram.labels)
    peak = max(float(reference.max(initial=0)), float(current.max(initial=0)), 1e-9)
    slot = (width - left - 8) / max(n, 1)
    bar = max(slot * 0.4, 1.0)
    scale = (height - bottom - top) / peak
    color = DRIFTED_COLOR if drift.drifted else CURRENT_COLOR
    parts = [
        f"<svg viewBox='0 0 {width} {height}' width='100%' role='img' "
        f"aria-label='{_e(histogram.name)} histogram'>",
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 4}' y2='{height - bottom}' "
        "stroke='#cbd5e1'/>",
        f"<text x='{left - 4}' y='{top + 8}' font-size='10' text-anchor='end' fill='#64748b'>"
        f"{peak:.0%}</text>",
    ]
    for i, label in enumerate(histogram.labels):
        x = left + i * slot + (slot - 2 * bar) / 2
        for j, (share, fill) in enumerate(((reference[i], REFERENCE_COLOR), (current[i], color))):
            h = share * scale
            parts.append(
                f"<rect x='{x + j * bar:.1f}' y='{height - bottom - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{fill}'><title>{_e(label)}: "
                f"{'reference' if j == 0 else 'current'} {share:.1%}</title></rect>"
            )
        cx = left + i * slot + slot / 2
        parts.append(
            f"<text x='{cx:.1f}' y='{height - bottom + 12}' font-size='9' fill='#475569' "
            f"text-anchor='end' transform='rotate(-35 {cx:.1f} {height - bottom + 12})'>"
            f"{_e(_short(label))}</text>"
        )
    parts.append("</svg>")
    legend = (
        f"<div class='legend'><span style='background:{REFERENCE_COLOR}'></span>reference"
        f"<span style='background:{color}'></span>current</div>"
    )
    return (
        f"<div class='card plot'><h3>{_e(histogram.name)} {_badge(drift)}</h3>{legend}"
        f"{''.join(parts)}<p>{_e(drift.reason)}</p></div>"
    )


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.shape)


def _short(label: str, limit: int = 16) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _num(value: float | None, places: int | None = None) -> str:
    """``value`` to ``places`` decimals (else 4 significant digits); "-" for none or NaN."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}" if places is None else f"{value:.{places}f}"


def _share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
