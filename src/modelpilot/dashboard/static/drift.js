// ModelPilot live dashboard: the input-drift card (each feature's evidence as a bar, the drift
// tile, and the table of every feature's verdict). No dependencies, no build step; plain ES2020.
// Loaded after charts.js (window.ModelPilotCharts), whose primitives it draws with, and before
// dashboard.js, which it serves as window.ModelPilotDrift.
'use strict';
(() => {
  const {
    C, isNum, fmtNum, fmtShare, drawEmpty, barChart, describe, $, el, setText, setStat, setBadge, plural, fmtP, fmtPair,
  } = window.ModelPilotCharts;
  // Drift methods decided by a significance test (score 1 - p-value, threshold 1 - its level).
  const TESTS = new Set(['ks', 'missing', 'chi2', 'rare']);
  // The drift chart's bars end here: 3 times the evidence that makes drift.
  const EVIDENCE_CAP = 3;
  // The drift chart's bars at most, fewer on a narrow card (a bar and its label in 28 px):
  // 150 bars' labels overlapped into a grey band. Past that, the chart shows the features with
  // the most evidence, and the table lists them all.
  const MAX_DRIFT_BARS = 20, MIN_DRIFT_BARS = 8, DRIFT_BAR_PX = 28;

  // How far a feature is toward drift, on one scale for every method, where 1 is the line it
  // drifts at: a test's p-value as log p / log α (p = 0.2 against α = 0.00125 reads 0.24, where
  // 1 - p filled 80 % of the chart beside a threshold of 0.999), an effect size as score /
  // threshold; capped at EVIDENCE_CAP. The p-value is the one that decided (1 - score loses
  // the small ones to rounding).
  function evidence(f) {
    if (f.method === 'none') return null;
    if (TESTS.has(f.method)) {
      const alpha = 1 - f.threshold;
      const p = isNum(f.deciding_p_value) ? f.deciding_p_value : 1 - f.score;
      if (!isNum(p) || !(alpha > 0 && alpha < 1)) return null;
      return p <= 0 ? EVIDENCE_CAP : Math.min(EVIDENCE_CAP, Math.log(Math.min(p, 1)) / Math.log(alpha));
    }
    return isNum(f.score) && f.threshold > 0 ? Math.min(EVIDENCE_CAP, Math.max(0, f.score / f.threshold)) : null;
  }
  // Features by their evidence, the most first; those without a verdict last, in the
  // profile's order, as ties are.
  function ranked(feats) {
    const e = (f) => evidence(f) ?? -1;
    return feats.map((f, i) => [f, e(f), i]).sort((a, b) => b[1] - a[1] || a[2] - b[2]).map(([f]) => f);
  }
  // A feature's name as the report and the terminal show it: what the page would not show as
  // written (control characters, a newline folding into a space, the marks that turn the text's
  // direction) as its escape, "new\nline"; the empty name as "(empty)".
  const UNSHOWABLE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
  const ESCAPES = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  const escaped = (c) => ESCAPES[c] ?? (c.charCodeAt(0) < 0x100
    ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const nameOf = (f) => (f.name === '' ? '(empty)' : String(f.name).replace(UNSHOWABLE, escaped));
  // A bar's figure in the method's own terms: the p-value of a test, else the effect size.
  const figure = (f) => (TESTS.has(f.method) ? `p ${fmtP(f.deciding_p_value)}` : `${f.method.toUpperCase()} ${fmtNum(f.score)}`);

  // The drift tile's line: the model's name (cut short, its full name the tooltip: a name of
  // 128 characters filled the tile with seven lines), then what its window shows.
  function setDriftSub(m, text) {
    const name = m ? Object.assign(el('span', 'cut', m.name), { title: m.name }) : '';
    $('stat-drift-sub').replaceChildren(...(m ? [name, ` · ${text}`] : ['—']));
  }

  // Why a version that answered requests has no drift report: the server's reason (no reference
  // profile, or inputs that are no table of features); else, where its predictions are binned on
  // a reference, the profile there is. ("No reference profile" for a model with text inputs
  // registered with one sent its operator to register it again, which changes nothing.)
  function unwatched(m) {
    if (typeof m.drift_unwatched === 'string' && m.drift_unwatched) return m.drift_unwatched;
    return m.predictions && isNum(m.predictions.drift)
      ? 'the model has a reference profile (its predictions are watched against it), but not its inputs' : '';
  }

  // idle: why the model has nothing to show ('No traffic yet'; '' when it has), which
  // dashboard.js decides, for every card alike.
  function renderDrift(m, idle) {
    const drift = m && m.drift;
    const feats = drift && Array.isArray(drift.features) ? drift.features : [];
    const tbody = $('drift-table').querySelector('tbody');
    if (!drift) {
      const reason = m && !idle ? unwatched(m) : '';
      const why = !m ? 'No models loaded' : idle ? idle
        : reason ? 'Input drift not watched for this model' : 'No reference profile for this model';
      setBadge('drift-badge', 'muted', !m ? 'no model' : idle ? idle.toLowerCase()
        : reason ? 'not watched' : 'no reference profile', reason);
      drawEmpty($('chart-drift'), why);
      setStat('stat-drifted', '—', null, '');
      // The reason under the chart, where a line wraps (the table's row does not).
      setText('drift-foot', reason ? `${reason.charAt(0).toUpperCase()}${reason.slice(1)}.` : '—');
      setText('drift-window', '—');
      setDriftSub(m, idle ? idle.toLowerCase() : reason ? 'input drift not watched' : 'no reference');
      const td = Object.assign(el('td', 'empty', `${why}.`), { colSpan: 8 });
      tbody.replaceChildren(el('tr', '', null, td));
      return;
    }
    // A feature the server judged nothing of (method "none": too few rows, or none) has no
    // verdict: neither "ok" nor a score of 0 against a threshold of 0.
    const judged = (f) => f.method !== 'none';
    const counted = feats.filter(judged);
    const nd = counted.filter((f) => f.drifted).length;
    const verdict = typeof drift.verdict === 'string' ? drift.verdict : '';
    const win = isNum(drift.window_rows) ? `window ${plural(drift.window_rows, 'row')}` : '—';
    setText('drift-window', win);
    if (!counted.length) {
      const none = feats.length ? (drift.window_rows ? 'no verdict yet' : 'no rows in the window') : 'no features';
      setBadge('drift-badge', 'muted', none, verdict);
      setStat('stat-drifted', '—', null, '');
      setDriftSub(m, none);
      setText('drift-foot', [win, verdict].filter(Boolean).join(' · '));
      const why = verdict ? verdict.charAt(0).toUpperCase() + verdict.slice(1) : 'No features monitored';
      drawEmpty($('chart-drift'), why);
    } else {
      // An alert fires on any drifted feature; dataset drift needs a share of them. Between the
      // two the badge is amber, never a green "no dataset drift" beside a firing alert.
      const needs = isNum(drift.dataset_share) ? `dataset drift from ${Math.round(drift.dataset_share * 100)} % of features` : '';
      const [kind, text] = drift.dataset_drift ? ['bad', 'dataset drift']
        : nd ? ['warn', `${nd} of ${counted.length} features drifted`] : ['ok', 'no drift'];
      setBadge('drift-badge', kind, text, [verdict, needs].filter(Boolean).join(' · '));
      setStat('stat-drifted', `${nd} / ${counted.length}`, nd, nd ? 'bad' : 'ok');
      const share = fmtShare(drift.drifted_share);
      const of = isNum(drift.dataset_share) ? ` of ${Math.round(drift.dataset_share * 100)} %` : '';
      setDriftSub(m, `share ${share}${of}`);
      // All the features, in the profile's order, where their bars fit (they then stay put from
      // one refresh to the next); else those with the most evidence, the most first.
      const canvas = $('chart-drift');
      const room = Math.max(MIN_DRIFT_BARS, Math.min(MAX_DRIFT_BARS, Math.floor(canvas.clientWidth / DRIFT_BAR_PX)));
      const bars = feats.length <= room ? feats : ranked(feats).slice(0, room);
      const values = bars.map(evidence);
      const unjudged = bars.some((f) => !judged(f)) ? ' · no bar = no verdict' : '';
      const shown = bars.length < feats.length
        ? ` · ${bars.length} of ${feats.length} features shown, those with the most evidence (all in Drift details)` : '';
      setText('drift-foot', `${win} · bar: evidence, 1 = drifts (tests: log p / log α; PSI, JS: score / threshold; `
        + `capped at ${EVIDENCE_CAP}) · red = drifted${unjudged}${shown}`);
      barChart(canvas, {
        labels: bars.map(nameOf), values,
        colors: bars.map((f) => (f.drifted ? C.red : C.blue)), thresholds: bars.map((f, i) => (isNum(values[i]) ? 1 : null)),
        valueFmt: (v, i) => figure(bars[i]), empty: 'No features monitored', max: EVIDENCE_CAP,
        legend: [{ label: 'evidence (1 = drift line)', color: C.blue }, { label: 'drifted', color: C.red },
          { label: 'drift line', color: C.ink, dash: true }],
      });
      const drifted = counted.filter((f) => f.drifted).map(nameOf);
      describe($('chart-drift'), `${nd} of ${counted.length} features drifted${drifted.length ? `: ${drifted.join(', ')}` : ''}`);
    }
    // Drifted features first, the most evidence first; the others stay in the profile's order.
    const worst = ranked(feats.filter((f) => f.drifted));
    tbody.replaceChildren(...[...worst, ...feats.filter((f) => !f.drifted)].map((f) => {
      const tr = el('tr', f.drifted ? 'drifted' : '');
      const has = judged(f);
      // A long name is cut short, the full name its tooltip (see .table td.name).
      tr.append(Object.assign(el('td', 'name', nameOf(f)), { title: nameOf(f) }), el('td', '', has ? f.method || '—' : '—'));
      // A test's p-value against its level α (as 1 - p against 1 - α, p = 0.0003 and α =
      // 0.000025 both read "1.000"); an effect size against its threshold.
      const [score, line] = !has ? ['—', '—'] : TESTS.has(f.method)
        ? [`p ${fmtP(isNum(f.deciding_p_value) ? f.deciding_p_value : 1 - f.score)}`, `α ${fmtP(1 - f.threshold)}`]
        : fmtPair(f.score, f.threshold);
      tr.append(el('td', 'num', score), el('td', 'num', line));
      // The p-value that decided, as /metrics exports it (not the KS or chi-squared test's
      // where the missing-share or rare-category test decided).
      tr.append(el('td', 'num', fmtP(f.deciding_p_value)));
      for (const k of ['js_distance', 'wasserstein']) tr.append(el('td', 'num', fmtNum(f[k])));
      const [cls, text] = !has ? ['muted', 'no verdict'] : f.drifted ? ['bad', 'drifted'] : ['ok', 'ok'];
      const pill = el('span', `pill ${cls}`, text);
      if (f.reason) pill.title = f.reason;
      tr.append(el('td', '', null, pill));
      if (f.kind) tr.title = `${nameOf(f)}: ${f.kind} feature`;
      return tr;
    }));
  }

  window.ModelPilotDrift = Object.freeze({ renderDrift });
})();
