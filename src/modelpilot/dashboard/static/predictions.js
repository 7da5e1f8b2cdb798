// ModelPilot live dashboard: the prediction-distribution card (a regression's histogram, a
// classifier's classes, a regressor of several values a row its columns' moments). No
// dependencies, no build step; plain ES2020. Loaded after charts.js (window.ModelPilotCharts),
// whose primitives it draws with, and before dashboard.js, which it serves as
// window.ModelPilotPredictions.
'use strict';
(() => {
  const { C, isNum, fmtNum, count, drawEmpty, barChart, describe, $, setText } = window.ModelPilotCharts;
  // What the card counts: the predictions in the monitor's window (the drift window's rows), not
  // the requests since start that the model's title counts. After a restart the window is
  // restored from the inference log: "5,113 predictions" under "113 requests" read as an error.
  const IN_WINDOW = 'in the window';
  const WINDOW_NOTE = 'Predictions in the monitor\'s window, the rows the drift window holds: the last '
    + 'MODELPILOT_DRIFT_WINDOW_ROWS of them, none older than MODELPILOT_DRIFT_WINDOW_SECONDS. After a restart '
    + 'the window is restored from the inference log: it may hold more predictions than the requests since start.';

  // idle: why the model has nothing to show ('No traffic yet'; '' when it has), which
  // dashboard.js decides, for every card alike.
  function renderPredictions(m, idle) {
    const pr = m && m.predictions;
    const canvas = $('chart-predictions');
    if (!pr) {
      drawEmpty(canvas, !m ? 'No models loaded' : idle || 'No predictions recorded yet');
      setText('pred-kind', '—'); setText('pred-summary', '—'); $('pred-summary').title = '';
      return;
    }
    const reg = pr.kind === 'regression';
    $('pred-summary').title = WINDOW_NOTE;
    if (reg && Array.isArray(pr.columns)) { renderColumns(canvas, pr); return; }
    setText('pred-kind', reg ? 'regression · histogram' : 'classification · classes');
    const n = isNum(pr.count) ? pr.count : 0;
    let shares = '';
    if (reg) {
      // The API sends each edge bin as [n]. Predictions that are no number (NaN, ±inf) are not
      // among pr.count: they count in their own bar, and in the total here.
      const total = (x) => [].concat(x ?? []).reduce((a, b) => a + (isNum(b) ? b : 0), 0);
      const h = pr.histogram || {}, below = total(h.below), above = total(h.above), missing = total(h.missing);
      const notes = [missing ? `${count(missing)} not finite` : '',
        below + above ? `${count(below)} below, ${count(above)} above the reference range` : ''].filter(Boolean);
      setText('pred-summary', `${count(n + missing)} predictions ${IN_WINDOW}${notes.length ? ` (${notes.join('; ')})` : ''} · ${moments(pr)}`);
      renderHistogram(canvas, pr.histogram, below, above, missing);
    } else {
      // A classifier's mean and variance would be those of its class labels: not shown.
      setText('pred-summary', `${count(n)} predictions ${IN_WINDOW}`);
      shares = renderClasses(canvas, pr);
    }
    if (canvas.dataset.points !== '0') describe(canvas, [$('pred-summary').textContent, shares].filter(Boolean).join(' · '));
  }

  // A prediction of several values a row (a regressor of several targets): each column's mean
  // and variance, as /metrics exports them (output="predict[1]"), never one figure of them all,
  // which read as the whole prediction's; no histogram (registration bins no reference
  // predictions of several values a row). The first few columns here, all in the API.
  const COLUMNS_SHOWN = 6;
  function renderColumns(canvas, pr) {
    const cols = pr.columns, past = isNum(pr.unwatched_columns) ? pr.unwatched_columns : 0;
    setText('pred-kind', `regression · ${count(cols.length + past)} values a row`);
    const each = cols.slice(0, COLUMNS_SHOWN).map((c) => `${c.output} ${moments(c)}`);
    const rest = cols.length - Math.min(cols.length, COLUMNS_SHOWN);
    if (rest) each.push(`${count(rest)} more columns in /api/monitoring`);
    if (past) each.push(`${count(past)} columns past the first ${count(cols.length)} unwatched`);
    setText('pred-summary', `${count(isNum(pr.count) ? pr.count : 0)} predictions ${IN_WINDOW} · ${each.join('; ')}`);
    drawEmpty(canvas, 'Several values a row: each column\'s mean and variance below');
    describe(canvas, $('pred-summary').textContent);
  }

  // A regression's mean and variance, from running sums of its finite predictions: one
  // prediction near the float's limit (1e308) overflows them for the whole window, which is
  // said rather than shown as a bare "—".
  function moments(pr) {
    if (!pr.count) return 'no finite predictions';
    if (isNum(pr.mean) && isNum(pr.variance)) return `mean ${fmtNum(pr.mean)} · variance ${fmtNum(pr.variance)}`;
    if (isNum(pr.mean)) return `mean ${fmtNum(pr.mean)} · variance — (too large for a float: predictions past ±1e154)`;
    return 'mean, variance — (too large for a float: predictions near ±1.8e308)';
  }

  // Predictions outside the reference's range count in an edge bar each (orange), and those
  // that are no number in a red one, so that the bars add up to every prediction; the bins
  // between are labelled as ranges (each holds its left edge, the last its right edge too).
  function renderHistogram(canvas, hist, below, above, missing) {
    const counts = hist && Array.isArray(hist.counts) ? hist.counts : [];
    const edges = hist && Array.isArray(hist.edges) ? hist.edges : [];
    if (!counts.length || edges.length !== counts.length + 1) {
      drawEmpty(canvas, hist ? 'No predictions recorded yet' : 'No reference predictions to bin them against');
      return;
    }
    const edge = (i) => fmtNum(edges[i]);
    const nan = missing ? ['not finite'] : [];
    barChart(canvas, {
      labels: [`< ${edge(0)}`, ...counts.map((_, i) => `${edge(i)}–${edge(i + 1)}`), `> ${edge(edges.length - 1)}`, ...nan],
      values: [below, ...counts, above, ...(missing ? [missing] : [])],
      colors: [C.orange, ...counts.map(() => C.teal), C.orange, ...nan.map(() => C.red)], gap: 0.08,
      counts: true, valueFmt: (v) => count(v), empty: 'No predictions recorded yet',
      legend: [{ label: 'in the reference range', color: C.teal }, { label: 'outside it', color: C.orange },
        ...nan.map(() => ({ label: 'not finite (NaN, ±inf)', color: C.red }))],
    });
  }

  // Classes in natural order (class_2 before class_10), a class the model never named last,
  // as are the classes past the 100 counted apart of a model that names none ('(other)');
  // all in one colour, as a colour of their own would mean nothing (and 8 were recycled).
  const POOLED = new Set(['(unknown)', '(other)']);
  const natural = new Intl.Collator('en', { numeric: true }).compare;
  function renderClasses(canvas, pr) {
    const entries = Object.entries(pr.classes || {});
    const numeric = entries.every(([k]) => POOLED.has(k) || isNum(Number(k)));
    const order = numeric ? (a, b) => Number(a) - Number(b) : natural;
    entries.sort(([a], [b]) => POOLED.has(a) - POOLED.has(b) || order(a, b));
    const total = entries.reduce((acc, [, v]) => acc + (isNum(v) ? v : 0), 0) || 1;
    barChart(canvas, { labels: entries.map(([k]) => k), values: entries.map(([, v]) => v),
      colors: entries.map(([k]) => (POOLED.has(k) ? C.orange : C.teal)),
      counts: true, empty: 'No predictions recorded yet',
      valueFmt: (v) => `${((v / total) * 100).toFixed(1)}%` });
    return entries.map(([k, v]) => `${k} ${((v / total) * 100).toFixed(1)}%`).join(', ');
  }

  // What dashboard.js uses: the one name this file adds to the page.
  window.ModelPilotPredictions = Object.freeze({ renderPredictions });
})();
