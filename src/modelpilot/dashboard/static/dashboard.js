// ModelPilot live dashboard: polls GET /api/dashboard every 2 s and draws small canvas charts.
// No dependencies, no build step; plain ES2020.
'use strict';
(() => {
  const API = '/api/dashboard';
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
  const C = { blue: '#2563eb', green: '#16a34a', orange: '#f59e0b', red: '#dc2626', purple: '#7c3aed',
    teal: '#0d9488', ink: '#0f172a', grid: '#eef2f7', axis: '#94a3b8', text: '#475569' };
  const PALETTE = [C.blue, C.teal, C.purple, C.orange, '#db2777', '#0891b2', '#65a30d', '#9333ea'];
  const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  // Drift methods whose score lies in [0, 1] (1 - p-value for the tests, Jensen-Shannon);
  // PSI has no upper bound.
  const BOUNDED_SCORES = new Set(['ks', 'missing', 'chi2', 'rare', 'js']);
  // Quality metrics: scores in [0, 1], higher is better; errors from 0 up, lower is better.
  const SCORE_METRICS = new Set(['accuracy', 'f1', 'auc']);
  const ERROR_METRICS = new Set(['mae', 'rmse', 'mse', 'log_loss']);
  const state = { payload: null, model: null, prevSys: null, curSys: null };
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ formatting
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  function fmtNum(v, digits = 3) {  // compact number: 0.030, 1.25, 12.5, 340, 12.3k, 1.20M, 3.4e+12
    if (!isNum(v)) return '—';
    const a = Math.abs(v);
    if (a >= 1e9) return v.toExponential(1);
    if (a >= 1e4) return a >= 1e6 ? (v / 1e6).toFixed(2) + 'M' : (v / 1e3).toFixed(1) + 'k';
    return a === 0 ? '0' : v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : digits);
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
  function decimalsOf(step) {  // as many as the step has: 0.25 needs two, 0.5 one, 5 none
    for (let d = 0; d < 4; d++) {
      const x = step * 10 ** d;
      if (Math.abs(x - Math.round(x)) < 1e-6 * Math.max(1, x)) return d;
    }
    return 4;
  }
  const tickFmt = (v, step) => (Math.abs(v) >= 1e4 ? fmtNum(v) : v.toFixed(decimalsOf(step)));

  // ------------------------------------------------------------------ DOM helpers
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
  function setBadge(id, kind, text, title = '') {
    const e = $(id);
    Object.assign(e, { className: 'badge badge-' + kind, textContent: text, title });
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
    for (const k of ['message', 'ticks', 'labels', 'values', 'segments']) delete canvas.dataset[k];
    return { ctx, w, h };
  }
  function drawEmpty(canvas, msg) {
    const { ctx, w, h } = prep(canvas);
    ctx.fillStyle = C.axis; ctx.textAlign = 'center'; ctx.font = `13px ${FONT}`;
    ctx.fillText(msg, w / 2, h / 2);
    canvas.dataset.points = '0';
    canvas.dataset.message = msg;
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
      ctx.fillStyle = r.color; ctx.textAlign = 'right';
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
      if (showValues && has) {  // above the bar, or inside its top where the axis ends
        const inside = top - 8 < pad.t + 4;
        ctx.fillStyle = inside ? '#fff' : C.ink; ctx.textAlign = 'center';
        ctx.fillText(o.valueFmt(v, i), cx, inside ? top + 8 : top - 8);
      }
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
  }

  // ------------------------------------------------------------------ service-wide sections
  function renderService(p) {
    const series = Array.isArray(p.series) ? p.series : [];
    const n = series.length, last = series[n - 1] || {};
    const pts = (k, f = (v) => v) => series.map((s) => [s.t, isNum(s[k]) ? f(s[k]) : null]);
    lineChart($('chart-throughput'), { lines: [{ label: 'requests/s', color: C.blue, pts: pts('rps'), fill: true }], points: n });
    // An interval without requests has no latency (null): a gap, not a fall to 0 ms.
    lineChart($('chart-latency'), {
      lines: [{ label: 'p50', color: C.green, pts: pts('p50_ms') }, { label: 'p95', color: C.orange, pts: pts('p95_ms') },
        { label: 'p99', color: C.red, pts: pts('p99_ms') }],
      fmt: (v, st) => tickFmt(v, st) + ' ms', points: n, empty: n ? 'No requests in the window' : undefined,
    });
    // The server's failures (5xx) are the alarming figure, as for the error-rate alert; the
    // clients' (4xx: bad input, unknown models) are drawn beside them, in grey.
    const clientErrors = (s) => (isNum(s.errors_per_s) && isNum(s.server_errors_per_s)
      ? Math.max(0, s.errors_per_s - s.server_errors_per_s) : null);
    lineChart($('chart-errors'), {
      lines: [{ label: '5xx/s (server)', color: C.red, pts: pts('server_errors_per_s'), fill: true },
        { label: '4xx/s (client)', color: C.axis, pts: series.map((s) => [s.t, clientErrors(s)]), dash: true }],
      points: n,
    });
    const mem = series.map((s) => s.memory_bytes).filter(isNum);
    const unit = byteUnit(mem.length ? Math.max(...mem) : 0), div = 1024 ** unit;
    lineChart($('chart-system'), {
      lines: [{ label: 'CPU %', color: C.purple, pts: pts('cpu_percent'), fill: true },
        { label: 'memory (RSS)', color: C.teal, pts: pts('memory_bytes', (v) => v / div), right: true }],
      fmt: (v, st) => tickFmt(v, st) + '%', rfmt: (v, st) => `${tickFmt(v, st)} ${BYTE_UNITS[unit]}`, minSpan: 10, points: n,
    });
    setStat('stat-rps', isNum(last.rps) ? `${last.rps.toFixed(last.rps >= 1000 ? 0 : 1)} req/s` : '—', last.rps);
    setStat('stat-p99', fmtMs(last.p99_ms), last.p99_ms);
    const short = isNum(last.p95_ms) && last.p95_ms < 1000 && isNum(last.p50_ms);
    setText('stat-p50-p95', !n ? '—' : !isNum(last.p99_ms) ? 'no requests'
      : short ? `p50 ${fmtMs(last.p50_ms).slice(0, -3)} · p95 ${fmtMs(last.p95_ms)}`
        : `p50 ${fmtMs(last.p50_ms)} · p95 ${fmtMs(last.p95_ms)}`);
    const e = last.server_errors_per_s, client = clientErrors(last);
    setStat('stat-errors', isNum(e) ? `${fmtNum(e, 2)} /s` : '—', e, isNum(e) && e > 0 ? 'bad' : '');
    const sub = $('stat-errors-sub');
    sub.textContent = `5xx · 4xx ${isNum(client) ? `${fmtNum(client, 2)} /s` : '—'}`;
    if (isNum(client)) sub.dataset.value = String(client); else delete sub.dataset.value;
  }

  function renderSystem(p) {
    const sys = p.system || {};
    // The server's figures, as the chart beside them: with workers, all of them added up.
    const workers = isNum(sys.workers) && sys.workers > 1 ? sys.workers : 1;
    const who = workers > 1 ? `${workers} workers` : 'this process';
    setText('stat-cpu-label', workers > 1 ? `CPU · ${who}` : 'Process CPU');
    setStat('stat-cpu', pct(sys.cpu_percent), sys.cpu_percent);
    setText('stat-cpu-sub', `machine ${pct(sys.machine_cpu_percent)}`);
    setText('stat-memory-label', workers > 1 ? `Memory · ${who}` : 'Process memory');
    setStat('stat-memory', fmtBytes(sys.memory_bytes), sys.memory_bytes);
    setText('stat-memory-sub', `RSS · machine ${pct(sys.memory_percent)}`);
    setText('sys-hint', `CPU % · memory of ${who}`);
    if (!state.curSys || state.curSys.time !== p.time) { state.prevSys = state.curSys; state.curSys = { time: p.time, sys }; }
    const prev = state.prevSys, dt = prev ? p.time - prev.time : 0;
    const io = (k) => {
      const ok = prev && dt > 0 && isNum(sys[k]) && isNum(prev.sys[k]);
      return ok ? `${fmtBytes(Math.max(0, (sys[k] - prev.sys[k]) / dt))}/s` : fmtBytes(sys[k]);
    };
    const rows = [['Machine CPU', pct(sys.machine_cpu_percent)], ['Machine memory', pct(sys.memory_percent)],
      ['Disk read', io('disk_read_bytes')],
      ['Disk write', io('disk_write_bytes')], ['Net in / out', `${io('net_recv_bytes')} / ${io('net_sent_bytes')}`]];
    $('sys-details').replaceChildren(...rows.map(([k, v]) => el('div', '', null, el('dt', '', k), el('dd', '', v))));
  }

  function renderAlerts(p) {
    const alerts = Array.isArray(p.alerts) ? p.alerts : [];
    $('alerts').replaceChildren(...alerts.map((a) => {
      const sev = String(a.severity || 'warning').toLowerCase();
      const since = isNum(a.since) && isNum(p.time) ? `for ${fmtDuration(p.time - a.since)}` : '';
      const head = el('span', 'rule', a.rule || 'alert', ...(a.model ? [el('span', 'model', ` · ${a.model}`)] : []));
      const li = el('li', `sev-${sev}`, null, el('span', 'sev', sev), head, el('span', 'since', since),
        el('div', 'msg', a.message || ''));
      Object.assign(li.dataset, { rule: a.rule || '', model: a.model || '', severity: sev });
      return li;
    }));
    $('alerts-empty').hidden = alerts.length > 0;
    const worst = alerts.some((a) => a.severity === 'critical') ? 'bad' : alerts.length ? 'warn' : 'muted';
    setBadge('alerts-count', worst, String(alerts.length));
  }

  // ------------------------------------------------------------------ per-model sections
  function syncModelSelect(models) {
    const sel = $('model-select');
    const names = models.map((m) => m.name);
    if (!names.includes(state.model)) state.model = names[0] ?? null;
    if ([...sel.options].map((o) => o.value).join('\n') !== names.join('\n')) {
      sel.replaceChildren(...models.map((m) => new Option(m.version ? `${m.name} (v${m.version})` : m.name, m.name)));
    }
    if (state.model !== null) sel.value = state.model;
    $('model-picker').hidden = models.length <= 1;
  }

  // A served model with nothing to show: it has answered no requests yet (and no windows
  // were restored from the inference log).
  const idle = (m) => !!m && !m.requests && !m.drift && !m.predictions && !m.performance;

  function renderDrift(m) {
    const drift = m && m.drift;
    const feats = drift && Array.isArray(drift.features) ? drift.features : [];
    const tbody = $('drift-table').querySelector('tbody');
    if (!drift) {
      const why = !m ? 'No models loaded' : idle(m) ? 'No traffic yet' : 'No reference profile for this model';
      setBadge('drift-badge', 'muted', !m ? 'no model' : idle(m) ? 'no traffic yet' : 'no reference profile');
      drawEmpty($('chart-drift'), why);
      setStat('stat-drifted', '—', null, '');
      ['drift-foot', 'drift-window'].forEach((id) => setText(id, '—'));
      setText('stat-drift-sub', m ? `${m.name} · ${idle(m) ? 'no traffic yet' : 'no reference'}` : '—');
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
    const win = isNum(drift.window_rows) ? `window ${count(drift.window_rows)} rows` : '—';
    setText('drift-window', win);
    if (!counted.length) {
      const none = feats.length ? (drift.window_rows ? 'no verdict yet' : 'no rows in the window') : 'no features';
      setBadge('drift-badge', 'muted', none, verdict);
      setStat('stat-drifted', '—', null, '');
      setText('stat-drift-sub', `${m.name} · ${none}`);
      setText('drift-foot', [win, verdict].filter(Boolean).join(' · '));
      const why = verdict ? verdict.charAt(0).toUpperCase() + verdict.slice(1) : 'No features monitored';
      drawEmpty($('chart-drift'), why);
    } else {
      setBadge('drift-badge', drift.dataset_drift ? 'bad' : 'ok', drift.dataset_drift ? 'dataset drift' : 'no dataset drift', verdict);
      setStat('stat-drifted', `${nd} / ${counted.length}`, nd, nd ? 'bad' : 'ok');
      const share = isNum(drift.drifted_share) ? `${(drift.drifted_share * 100).toFixed(0)} %` : '—';
      setText('stat-drift-sub', `${m.name} · share ${share}`);
      const unjudged = feats.length > counted.length ? ' · no bar = no verdict' : '';
      setText('drift-foot', `${win} · dashed tick = per-feature threshold · red = drifted${unjudged}`);
      barChart($('chart-drift'), {
        labels: feats.map((f) => f.name), values: feats.map((f) => (judged(f) ? f.score : null)),
        colors: feats.map((f) => (f.drifted ? C.red : C.blue)), thresholds: feats.map((f) => (judged(f) ? f.threshold : null)),
        valueFmt: (v) => fmtNum(v), empty: 'No features monitored',
        // Tests' 1 - p-value and Jensen-Shannon lie in [0, 1]: the axis ends at 1. PSI does not.
        max: counted.every((f) => BOUNDED_SCORES.has(f.method)) ? 1 : undefined,
        legend: [{ label: 'score', color: C.blue }, { label: 'drifted', color: C.red }, { label: 'threshold', color: C.ink, dash: true }],
      });
    }
    tbody.replaceChildren(...feats.map((f) => {
      const tr = el('tr', f.drifted ? 'drifted' : '');
      const has = judged(f);
      tr.append(el('td', '', f.name), el('td', '', has ? f.method || '—' : '—'));
      for (const k of ['score', 'threshold', 'p_value', 'js_distance', 'wasserstein']) {
        tr.append(el('td', 'num', !has && (k === 'score' || k === 'threshold') ? '—' : fmtNum(f[k])));
      }
      const [cls, text] = !has ? ['muted', 'no verdict'] : f.drifted ? ['bad', 'drifted'] : ['ok', 'ok'];
      const pill = el('span', `pill ${cls}`, text);
      if (f.reason) pill.title = f.reason;
      tr.append(el('td', '', null, pill));
      if (f.kind) tr.title = `${f.name}: ${f.kind} feature`;
      return tr;
    }));
  }

  function renderPredictions(m) {
    const pr = m && m.predictions;
    const canvas = $('chart-predictions');
    if (!pr) {
      drawEmpty(canvas, !m ? 'No models loaded' : idle(m) ? 'No traffic yet' : 'No predictions recorded yet');
      setText('pred-kind', '—'); setText('pred-summary', '—');
      return;
    }
    const reg = pr.kind === 'regression';
    setText('pred-kind', reg ? 'regression · histogram' : 'classification · classes');
    const stats = `mean ${fmtNum(pr.mean)} · variance ${fmtNum(pr.variance)}`;
    setText('pred-summary', `${count(pr.count)} predictions · ${stats}`);
    if (reg) renderHistogram(canvas, pr, stats);
    else renderClasses(canvas, pr);
  }

  // Predictions outside the reference's range count in an edge bar each (orange), so that the
  // bars add up to the predictions counted; the bins between are labelled as ranges (each holds
  // its left edge, the last its right edge too).
  function renderHistogram(canvas, pr, stats) {
    const hist = pr.histogram;
    const counts = hist && Array.isArray(hist.counts) ? hist.counts : [];
    const edges = hist && Array.isArray(hist.edges) ? hist.edges : [];
    if (!counts.length || edges.length !== counts.length + 1) {
      drawEmpty(canvas, hist ? 'No predictions recorded yet' : 'No reference predictions to bin them against');
      return;
    }
    const total = (x) => [].concat(x ?? []).reduce((a, b) => a + (isNum(b) ? b : 0), 0);  // the API sends [n]
    const below = total(hist.below), above = total(hist.above);
    const edge = (i) => fmtNum(edges[i]);
    barChart(canvas, {
      labels: [`< ${edge(0)}`, ...counts.map((_, i) => `${edge(i)}–${edge(i + 1)}`), `> ${edge(edges.length - 1)}`],
      values: [below, ...counts, above], colors: [C.orange, ...counts.map(() => C.teal), C.orange], gap: 0.08,
      counts: true, valueFmt: (v) => count(v), empty: 'No predictions recorded yet',
      legend: [{ label: 'in the reference range', color: C.teal }, { label: 'outside it', color: C.orange }],
    });
    if (below + above) {
      const outside = `${count(below)} below, ${count(above)} above the reference range`;
      setText('pred-summary', `${count(pr.count)} predictions (${outside}) · ${stats}`);
    }
  }

  function renderClasses(canvas, pr) {
    const entries = Object.entries(pr.classes || {});
    if (entries.every(([k]) => isNum(Number(k)))) entries.sort((a, b) => Number(a[0]) - Number(b[0]));
    const total = entries.reduce((acc, [, v]) => acc + (isNum(v) ? v : 0), 0) || 1;
    barChart(canvas, { labels: entries.map(([k]) => k), values: entries.map(([, v]) => v), colors: PALETTE,
      counts: true, empty: 'No predictions recorded yet',
      valueFmt: (v) => `${((v / total) * 100).toFixed(1)}%` });
  }

  function renderPerformance(m) {
    const perf = m && m.performance;
    const canvas = $('chart-accuracy'), concept = $('concept-badge');
    if (!perf) {
      drawEmpty(canvas, !m ? 'No models loaded' : idle(m) ? 'No traffic yet' : 'No ground-truth labels yet');
      setStat('stat-accuracy', '—', null, '');
      setText('stat-accuracy-label', 'Accuracy'); setText('perf-title', 'Accuracy');
      setText('stat-accuracy-sub', 'no labels yet'); setText('perf-summary', '—');
      concept.hidden = true;
      return;
    }
    const cur = perf.current || {};
    const hist = Array.isArray(perf.history) ? perf.history : [];
    const metric = 'accuracy' in cur ? 'accuracy'
      : Object.keys(cur)[0] || Object.keys(hist[0] || {}).find((k) => k !== 't') || 'accuracy';
    const ref = perf.reference ? perf.reference[metric] : null;
    const label = metric.length <= 4 ? metric.toUpperCase() : metric.charAt(0).toUpperCase() + metric.slice(1);
    const pts = hist.map((x) => [x.t, x[metric]]).filter((q) => isNum(q[0]) && isNum(q[1]));
    // Errors (MAE, RMSE) from 0 up; scores (accuracy, F1, AUC) zoomed in, within [0, 1].
    const lowerBetter = ERROR_METRICS.has(metric);
    lineChart(canvas, {
      lines: [{ label: metric, color: C.blue, pts }], zero: lowerBetter, points: pts.length,
      min: 0, max: SCORE_METRICS.has(metric) ? 1 : undefined,
      refs: isNum(ref) ? [{ y: ref, label: 'reference', color: C.axis }] : [], empty: 'No performance history yet',
    });
    setText('stat-accuracy-label', label);
    setText('perf-title', `${label} over time`);
    const v = cur[metric];
    // Red when the server judged the metric degraded, by the thresholds that flag concept
    // drift (and only once the window holds enough labels), never by a rule of its own.
    const worse = Array.isArray(perf.degraded) && perf.degraded.includes(metric);
    setStat('stat-accuracy', fmtNum(v), v, worse ? 'bad' : '');
    const labels = isNum(perf.labels) ? `${count(perf.labels)} labels` : '';
    setText('stat-accuracy-sub', [isNum(ref) ? `ref ${fmtNum(ref)}` : '', labels].filter(Boolean).join(' · ') || '—');
    const metrics = Object.entries(cur).map(([k, x]) => `${k} ${fmtNum(x)}`).join(' · ');
    setText('perf-summary', [labels, metrics].filter(Boolean).join(' · ') || '—');
    concept.hidden = false;
    setBadge('concept-badge', m.concept_drift ? 'bad' : 'ok', m.concept_drift ? 'concept drift' : 'no concept drift');
  }

  function renderModel() {
    const models = Array.isArray(state.payload.models) ? state.payload.models : [];
    const m = models.find((x) => x.name === state.model) || null;
    const traffic = idle(m) ? 'no traffic yet' : `${count(m && m.requests)} requests`;
    setText('model-title', m ? `${m.name}${m.version ? ` v${m.version}` : ''} · ${traffic}` : 'none loaded');
    renderDrift(m);
    renderPredictions(m);
    renderPerformance(m);
  }

  function render(p) {
    state.payload = p;
    setText('stat-uptime', fmtDuration(p.uptime_seconds));
    setText('stat-updated', isNum(p.time) ? fmtClock(p.time) : '—');
    renderService(p);
    renderSystem(p);
    renderAlerts(p);
    syncModelSelect(Array.isArray(p.models) ? p.models : []);
    renderModel();
  }

  // ------------------------------------------------------------------ polling
  function setConnected(ok, why) {
    document.body.dataset.connected = String(ok);
    setBadge('conn', ok ? 'ok' : 'bad', ok ? 'live' : 'disconnected');
    $('conn').title = ok ? '' : `Last error: ${why}. Retrying every ${REFRESH_MS / 1000} s.`;
  }

  async function refresh() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let payload = null;
    try {
      const resp = await fetch(API, { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'application/json' } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      payload = await resp.json();
      setConnected(true);
    } catch (err) {
      setConnected(false, (err && err.message) || String(err));
    }
    clearTimeout(timer);
    try {
      if (payload) { render(payload); document.body.dataset.updated = String(payload.time); }
    } catch (err) {
      console.error('dashboard render failed:', err);
    }
    setTimeout(refresh, REFRESH_MS);
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (state.payload) render(state.payload); }, 150);
  });
  document.addEventListener('DOMContentLoaded', () => {
    $('model-select').addEventListener('change', (ev) => {
      state.model = ev.target.value;
      if (state.payload) renderModel();
    });
    document.querySelectorAll('canvas.chart').forEach((c) => drawEmpty(c, 'Connecting…'));
    refresh();
  });
})();
