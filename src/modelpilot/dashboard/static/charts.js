// ModelPilot live dashboard: number, byte and time formatting, the canvas chart primitives
// (scales, axes, legends, line and bar charts) and the DOM helpers that the cards draw with. No
// dependencies, no build step; plain ES2020. Loaded first, it shares them as
// window.ModelPilotCharts.
'use strict';
(() => {
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
  const C = { blue: '#2563eb', green: '#16a34a', orange: '#f59e0b', red: '#dc2626', purple: '#7c3aed',
    teal: '#0d9488', ink: '#0f172a', grid: '#eef2f7', axis: '#94a3b8', text: '#475569', muted: '#64748b' };
  const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

  // ------------------------------------------------------------------ formatting
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  // compact number: 0.030, 0.00373, 2.22e-5, 1.25, 12.5, 340, 12.3k, 1.20M, 3.4e+12. Under 0.01
  // to significant digits (`digits` of them): in decimals, a regressor of targets near 1e-6 read
  // 0.000 in every figure, bin and reference line.
  function fmtNum(v, digits = 3) {
    if (!isNum(v)) return '—';
    const a = Math.abs(v);
    if (a >= 1e9) return v.toExponential(1);
    if (a >= 1e4) return a >= 1e6 ? (v / 1e6).toFixed(2) + 'M' : (v / 1e3).toFixed(1) + 'k';
    if (a === 0) return '0';
    if (a < 1e-3) return v.toExponential(Math.max(0, digits - 1));
    if (a < 0.01) return v.toPrecision(digits);
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : digits);
  }
  // A share (0.004 of the features) in percent, "0.4 %": none reads 0 % and all 100 %, and
  // nothing between rounds to either (2 of 500 features drifted read "0 %").
  function fmtShare(x) {
    if (!isNum(x)) return '—';
    const p = x * 100;
    if (p <= 0 || p >= 100) return `${Number(p.toFixed(0))} %`;
    if (p < 1) return `${Number(p.toPrecision(1))} %`;
    return `${p.toFixed(0) === '100' ? (Math.floor(p * 10) / 10).toFixed(1) : p.toFixed(0)} %`;
  }
  function fmtMs(ms) {
    if (!isNum(ms)) return '—';
    if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
    return ms.toFixed(ms >= 100 ? 0 : ms >= 10 ? 1 : 2) + ' ms';
  }
  const byteUnit = (b) => Math.max(0, Math.min(BYTE_UNITS.length - 1, Math.floor(Math.log2(Math.max(1, Math.abs(b))) / 10)));
  function fmtBytes(b) {
    if (!isNum(b)) return '—';
    const i = byteUnit(b), v = b / 1024 ** i;
    return (i === 0 ? v.toFixed(0) : v.toFixed(Math.abs(v) >= 100 ? 0 : 1)) + ' ' + BYTE_UNITS[i];
  }
  function fmtDuration(s) {
    if (!isNum(s)) return '—';
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
  }
  const pad2 = (n) => String(n).padStart(2, '0');
  const fmtClock = (t, d = new Date(t * 1000)) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  const pct = (v) => (isNum(v) ? v.toFixed(1) + ' %' : '—');
  const count = (v) => (isNum(v) ? v.toLocaleString('en-US') : '—');
  // A stretch of time: "2 s", "0.5 s", "10 min", "2h 30m".
  const fmtSpan = (s) => (s < 90 ? `${Number(s.toFixed(s < 10 ? 1 : 0))} s` : s < 5400 ? `${Math.round(s / 60)} min` : fmtDuration(s));
  // The time between a series' points (the monitor's interval, MODELPILOT_MONITOR_INTERVAL_SECONDS):
  // the median spacing, which a restart's gap does not move; null under two points.
  function spacing(ts) {
    const steps = ts.slice(1).map((t, i) => t - ts[i]).filter((d) => isNum(d) && d > 0).sort((a, b) => a - b);
    return steps.length ? steps[Math.floor(steps.length / 2)] : null;
  }
  // What a chart of points at these times covers: each holds the interval that ends at it.
  // The server keeps the last 300 of them (ten minutes at the default 2 s), no more.
  function spanOf(ts) {
    const step = spacing(ts);
    return step === null ? '' : `last ${fmtSpan(ts[ts.length - 1] - ts[0] + step)}`;
  }
  function decimalsOf(step, most = 4) {  // as many as the step has: 0.25 needs two, 0.5 one, 5 none
    for (let d = 0; d < most; d++) {
      const x = step * 10 ** d;
      if (Math.abs(x - Math.round(x)) < 1e-6 * Math.max(1, x)) return d;
    }
    return most;
  }
  // An axis label, to the step's decimals; past four of them in exponent form, its mantissa to
  // as many as the step needs there (5e-6, 1.0e-5, 1.5e-5): four decimals drew every tick of
  // a chart of values near 1e-5 as "0.0000".
  function tickFmt(v, step) {
    if (Math.abs(v) >= 1e4) return fmtNum(v);
    const d = decimalsOf(step, 12);
    if (d <= 4) return v.toFixed(d);
    if (v === 0) return '0';
    const e = Math.floor(Math.log10(Math.abs(v)));
    return v.toExponential(Math.min(6, Math.max(0, d + e)));
  }

  // ------------------------------------------------------------------ chart primitives
  function prep(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(160, canvas.clientWidth), h = Math.max(100, canvas.clientHeight);
    const W = Math.round(w * dpr), H = Math.round(h * dpr);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, w, h); ctx.setLineDash([]);
    Object.assign(ctx, { font: `11px ${FONT}`, textBaseline: 'middle' });
    // What the last drawing exposed for tests and scripts (data-ticks, data-labels, ...).
    for (const k of ['message', 'ticks', 'labels', 'values', 'segments', 'inks']) delete canvas.dataset[k];
    return { ctx, w, h };
  }
  // A chart is an image to assistive technology (role="img"): its aria-label is the page's
  // description of it, then what the last drawing showed ("latest 12.5 requests per second").
  function describe(canvas, text) {
    if (canvas.dataset.alt === undefined) canvas.dataset.alt = canvas.getAttribute('aria-label') || '';
    const base = canvas.dataset.alt;
    canvas.setAttribute('aria-label', text ? (base ? `${base}: ${text}` : text) : base);
  }
  function drawEmpty(canvas, msg) {
    const { ctx, w, h } = prep(canvas);
    // Slate 500: 4.8:1 on the white card (the axis grey read 2.6:1).
    ctx.fillStyle = C.muted; ctx.textAlign = 'center'; ctx.font = `13px ${FONT}`;
    ctx.fillText(msg, w / 2, h / 2);
    canvas.dataset.points = '0';
    canvas.dataset.message = msg;
    describe(canvas, msg);
  }
  function niceScale(lo, hi, n = 4, minStep = 0) {  // minStep 1: counts, no ticks between
    const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw)), r = raw / mag;
    const step = Math.max(minStep, (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag);
    const a = Math.floor(lo / step + 1e-9) * step, b = Math.ceil(hi / step - 1e-9) * step;
    const ticks = [];
    for (let v = a; v <= b + step / 2; v += step) ticks.push(Math.abs(v) < step * 1e-6 ? 0 : v);
    return { lo: a, hi: b > a ? b : a + step, step, ticks };
  }
  // bounds: {min, max} that a value can never pass (a score in [0, 1], an error from 0): the
  // axis's margins stop there.
  function scaleOf(values, zero, minSpan, minStep = 0, bounds = {}) {
    // (Numbers near the float's limit would make the span infinite: they are drawn off the chart.)
    const fin = values.filter((v) => isNum(v) && Math.abs(v) < 1e300);
    let lo = fin.length ? Math.min(...fin) : 0, hi = fin.length ? Math.max(...fin) : 1;
    if (zero) { lo = Math.min(0, lo); hi = Math.max(hi, minSpan || 0); }
    if (hi - lo < 1e-12) { const d = Math.abs(hi) * 0.05 || 1; hi += d; if (!zero) lo -= d; }
    else if (!zero) { const d = (hi - lo) * 0.1; lo -= d; hi += d; }
    const min = isNum(bounds.min) ? bounds.min : -Infinity, max = isNum(bounds.max) ? bounds.max : Infinity;
    if (Math.max(lo, min) < Math.min(hi, max)) { lo = Math.max(lo, min); hi = Math.min(hi, max); }
    return niceScale(lo, hi, 4, minStep);
  }
  function hline(ctx, x0, x1, y, color, dash, width = 1) {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash || []);
    ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x1, y); ctx.stroke();
    ctx.setLineDash([]); ctx.lineWidth = 1;
  }
  function drawLegend(ctx, items, x, y) {
    ctx.textAlign = 'left';
    for (const it of items) {
      hline(ctx, x, x + 14, y, it.color, it.dash ? [4, 3] : null, 2);
      ctx.fillStyle = C.text;
      ctx.fillText(it.label, x + 18, y);
      x += 32 + ctx.measureText(it.label).width;
    }
  }
  function yAxis(ctx, s, Y, x0, x1, fmt) {
    ctx.canvas.dataset.ticks = s.ticks.map((v) => (fmt || tickFmt)(v, s.step)).join('|');  // for tests
    for (const v of s.ticks) {
      const y = Math.round(Y(v)) + 0.5;
      hline(ctx, x0, x1, y, C.grid);
      ctx.fillStyle = C.text; ctx.textAlign = 'right';
      ctx.fillText((fmt || tickFmt)(v, s.step), x0 - 6, y);
    }
  }

  // Runs of consecutive points with a value: a point without one (null) is a gap in the line.
  function runsOf(pts) {
    const runs = [[]];
    for (const p of pts) {
      if (isNum(p[0]) && isNum(p[1])) runs[runs.length - 1].push(p);
      else if (runs[runs.length - 1].length) runs.push([]);
    }
    return runs.filter((r) => r.length);
  }

  // o.lines: [{label, color, pts: [[t, y]] (y null: a gap), dash, right, fill}];
  // o.refs: [{y, label, color}]; o.min / o.max: bounds of the left axis's values.
  function lineChart(canvas, o) {
    const all = o.lines.flatMap((l) => l.pts.filter((p) => isNum(p[0]) && isNum(p[1])));
    if (!all.length) return drawEmpty(canvas, o.empty || 'Waiting for data…');
    const { ctx, w, h } = prep(canvas);
    const refs = o.refs || [];
    const hasRight = o.lines.some((l) => l.right);
    // The whole time span, points without a value too: an idle stretch at the end is a gap.
    const ts = o.lines.flatMap((l) => l.pts.map((p) => p[0])).filter(isNum);
    let x0 = Math.min(...ts), x1 = Math.max(...ts);
    if (x1 - x0 < 1e-9) { x0 -= 30; x1 += 30; }
    const ys = (right) => o.lines.filter((l) => !!l.right === right).flatMap((l) => l.pts.map((p) => p[1]));
    const sl = scaleOf([...ys(false), ...refs.map((r) => r.y)], o.zero !== false, o.minSpan, 0, { min: o.min, max: o.max });
    const sr = hasRight ? scaleOf(ys(true), true) : null;
    const widest = Math.max(...sl.ticks.map((v) => ctx.measureText((o.fmt || tickFmt)(v, sl.step)).width));
    const pad = { l: Math.max(48, widest + 12), r: hasRight ? 62 : 16, t: 24, b: 22 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * pw;
    const Y = (y, s) => pad.t + ph - ((y - s.lo) / (s.hi - s.lo)) * ph;
    yAxis(ctx, sl, (v) => Y(v, sl), pad.l, w - pad.r, o.fmt);
    if (sr) {
      ctx.textAlign = 'left';
      for (const v of sr.ticks) ctx.fillText((o.rfmt || tickFmt)(v, sr.step), w - pad.r + 6, Y(v, sr));
    }
    // Ticks a whole second apart at least: labels are to the second, and must not repeat.
    const nx = Math.max(1, Math.min(Math.floor(pw / 90), Math.floor(x1 - x0)));
    ctx.fillStyle = C.text;
    for (let i = 0; i <= nx; i += 1) {
      const t = x0 + ((x1 - x0) * i) / nx;
      ctx.textAlign = i === 0 ? 'left' : i === nx ? 'right' : 'center';
      ctx.fillText(fmtClock(t), X(t), h - pad.b / 2 + 2);
    }
    hline(ctx, pad.l, w - pad.r, pad.t + ph + 0.5, C.axis);
    for (const r of refs) {
      hline(ctx, pad.l, w - pad.r, Y(r.y, sl), r.color, [6, 4], 1.5);
      ctx.fillStyle = C.text; ctx.textAlign = 'right';  // the line's grey is too faint for text
      ctx.fillText(`${r.label} ${fmtNum(r.y)}`, w - pad.r - 4, Y(r.y, sl) - 8);
    }
    const segments = [];
    for (const l of o.lines) {
      const s = l.right ? sr : sl;
      const runs = runsOf(l.pts);
      segments.push(runs.length);
      const base = Y(Math.max(s.lo, 0), s);
      for (const pts of runs) {
        if (l.fill && pts.length > 1) {
          const g = ctx.createLinearGradient(0, pad.t, 0, pad.t + ph);
          g.addColorStop(0, l.color + '33'); g.addColorStop(1, l.color + '05');
          ctx.fillStyle = g;
          ctx.beginPath(); ctx.moveTo(X(pts[0][0]), base);
          for (const p of pts) ctx.lineTo(X(p[0]), Y(p[1], s));
          ctx.lineTo(X(pts[pts.length - 1][0]), base); ctx.closePath(); ctx.fill();
        }
        ctx.strokeStyle = l.color; ctx.lineWidth = 1.8; ctx.lineJoin = 'round'; ctx.setLineDash(l.dash ? [5, 4] : []);
        ctx.beginPath();
        pts.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1], s)) : ctx.moveTo(X(p[0]), Y(p[1], s))));
        ctx.stroke(); ctx.setLineDash([]); ctx.lineWidth = 1;
        if (pts.length === 1) {  // a point between two gaps: a dot, or it would not show
          ctx.fillStyle = l.color;
          ctx.beginPath(); ctx.arc(X(pts[0][0]), Y(pts[0][1], s), 1.8, 0, Math.PI * 2); ctx.fill();
        }
      }
      if (!runs.length) continue;
      const lastRun = runs[runs.length - 1], last = lastRun[lastRun.length - 1];
      ctx.fillStyle = l.color;
      ctx.beginPath(); ctx.arc(X(last[0]), Y(last[1], s), 2.8, 0, Math.PI * 2); ctx.fill();
    }
    drawLegend(ctx, [...o.lines, ...refs.map((r) => ({ ...r, dash: true }))], pad.l, 9);
    canvas.dataset.points = String(o.points ?? Math.max(...o.lines.map((l) => l.pts.length)));
    canvas.dataset.segments = segments.join('|');
  }

  // o: {labels, values (null: no bar), colors, thresholds (per bar, optional), valueFmt, fmt,
  // gap, legend, empty, max (a bound no value passes: the axis stops there)}
  function barChart(canvas, o) {
    const n = o.values.length;
    if (!n) return drawEmpty(canvas, o.empty || 'No data');
    canvas.style.height = '';
    let { ctx, w, h } = prep(canvas);
    const labels = o.labels.map((x, _, __, s = String(x)) => (s.length > 16 ? `${s.slice(0, 7)}…${s.slice(-8)}` : s));
    const maxLw = Math.max(...labels.map((s) => ctx.measureText(s).width));
    const pad = { l: 48, r: 16, t: o.legend ? 26 : 14, b: 22 };
    let slot = (w - pad.l - pad.r) / n;
    const rotate = maxLw > slot - 6;
    if (rotate) {  // 45° labels: make room below and on the left, and grow the canvas to keep the plot area
      const drop = maxLw * 0.72;
      pad.b = 14 + drop;
      pad.l = Math.max(pad.l, drop - slot / 2 + 6);
      slot = (w - pad.l - pad.r) / n;
      canvas.style.height = `${Math.round(h + drop - 8)}px`;
      ({ ctx, w, h } = prep(canvas));
    }
    const ph = h - pad.t - pad.b;
    const showValues = o.valueFmt && Math.max(...o.values.map((v, i) => ctx.measureText(o.valueFmt(v, i)).width)) < slot - 2;
    const s = scaleOf([...o.values, ...(o.thresholds || [])].map((v) => (isNum(v) ? v * 1.08 : v)), true, 0, o.counts ? 1 : 0,
      { max: o.max });
    const Y = (v) => pad.t + ph - ((v - s.lo) / (s.hi - s.lo)) * ph;
    yAxis(ctx, s, Y, pad.l, w - pad.r, o.fmt);
    const bw = Math.min(slot * (1 - (o.gap ?? 0.3)), 56);
    const inks = [];  // where each bar's figure went, for tests: above, inside, halo or none
    for (let i = 0; i < n; i += 1) {
      const v = o.values[i], has = isNum(v);
      const cx = pad.l + slot * i + slot / 2, top = Y(Math.max(has ? v : 0, 0));
      if (has) {
        ctx.fillStyle = o.colors[i % o.colors.length];
        ctx.fillRect(cx - bw / 2, top, bw, Math.max(Y(0) - top, v > 0 ? 1 : 0));
      }
      const th = o.thresholds ? o.thresholds[i] : null;
      if (isNum(th)) {
        const half = Math.min(slot * 0.48, bw / 2 + 6);
        hline(ctx, cx - half, cx + half, Y(th), C.ink, [4, 3], 1.5);
      }
      if (showValues && has) {
        // Above the bar, or inside its top where the axis ends: there in white where the figure
        // fits the bar, else dark on a white halo (white wider than the bar spilled onto the
        // white card, and "p 2.3e-137" read "þ 2.3e-13").
        const text = o.valueFmt(v, i), inside = top - 8 < pad.t + 4, y = inside ? top + 8 : top - 8;
        const ink = !inside ? 'above' : ctx.measureText(text).width <= bw - 4 ? 'inside' : 'halo';
        ctx.textAlign = 'center';
        if (ink === 'halo') {
          Object.assign(ctx, { strokeStyle: '#fff', lineWidth: 3, lineJoin: 'round' });
          ctx.strokeText(text, cx, y); ctx.lineWidth = 1;
        }
        ctx.fillStyle = ink === 'inside' ? '#fff' : C.ink;
        ctx.fillText(text, cx, y);
        inks.push(ink);
      } else inks.push('');
      ctx.fillStyle = C.text;
      if (rotate) {
        ctx.save(); ctx.translate(cx, Y(0) + 8); ctx.rotate(-Math.PI / 4);
        ctx.textAlign = 'right'; ctx.fillText(labels[i], 0, 0); ctx.restore();
      } else {
        ctx.textAlign = 'center'; ctx.fillText(labels[i], cx, Y(0) + pad.b / 2 + 1);
      }
    }
    hline(ctx, pad.l, w - pad.r, Y(0) + 0.5, C.axis);
    if (o.legend) drawLegend(ctx, o.legend, pad.l, 9);
    canvas.dataset.points = String(n);
    canvas.dataset.labels = o.labels.map(String).join('|');
    canvas.dataset.values = o.values.map((v) => (isNum(v) ? String(v) : '')).join('|');
    canvas.dataset.inks = inks.join('|');
  }

  // What dashboard.js uses: the one name this file adds to the page.
  // ------------------------------------------------------------------ DOM helpers and verdicts' numbers
  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text, ...children) {
    const e = Object.assign(document.createElement(tag), { className: cls || '' });
    if (text !== undefined && text !== null) e.textContent = text;
    e.append(...children);
    return e;
  }
  const setText = (id, text) => { $(id).textContent = text; };
  // Text for humans, data-value with the raw number for tests and scripts.
  function setStat(id, text, value, cls) {
    const e = $(id);
    e.textContent = text;
    if (isNum(value)) e.dataset.value = String(value); else delete e.dataset.value;
    if (cls !== undefined) e.className = 'stat-value' + (cls ? ' ' + cls : '');
  }
  // Written only where it changed: #conn is a status region, read out on every change, and a
  // refresh rewrote it every 2 s.
  function setBadge(id, kind, text, title = '') {
    const e = $(id), className = 'badge badge-' + kind;
    if (e.className !== className) e.className = className;
    if (e.textContent !== text) e.textContent = text;
    if (e.title !== title) e.title = title;
  }
  // "1 request", "2 requests".
  const plural = (n, word) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;
  // A p-value or a test's level α as the verdicts quote them: 0.15, 0.00125, 1.9e-76 (not 0.000),
  // to significant digits, so that a p beside its α can be compared (both read "0.001" in
  // three decimals).
  const fmtP = (p) => (!isNum(p) ? '—' : p === 0 ? '0' : p >= 0.001 ? String(Number(p.toPrecision(3)))
    : p.toExponential(1));
  // An effect size beside its threshold: to the same decimals, as many as tell them apart (3 to
  // 6). A score of 1 read "1.00" beside a threshold's "1.000", and 0.19995 read "0.200" beside
  // 0.2's "0.200", marked ok.
  function fmtPair(score, threshold) {
    if (!isNum(score) || !isNum(threshold)) return [fmtNum(score), fmtNum(threshold)];
    let d = 3;
    while (d < 6 && score !== threshold && score.toFixed(d) === threshold.toFixed(d)) d += 1;
    return [score.toFixed(d), threshold.toFixed(d)];
  }

  window.ModelPilotCharts = Object.freeze({
    C, BYTE_UNITS,
    isNum, fmtNum, fmtShare, fmtMs, byteUnit, fmtBytes, fmtDuration, fmtClock, fmtSpan, pct, count, tickFmt,
    spacing, spanOf, drawEmpty, lineChart, barChart, describe,
    $, el, setText, setStat, setBadge, plural, fmtP, fmtPair,
  });
})();
