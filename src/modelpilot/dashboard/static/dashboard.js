// ModelPilot live dashboard: polls GET /api/dashboard every 2 s and draws small canvas charts.
// No dependencies, no build step; plain ES2020.
// Formatting, the chart primitives and the DOM helpers are charts.js's (window.ModelPilotCharts),
// the input-drift card drift.js's (window.ModelPilotDrift) and the prediction distribution card
// predictions.js's (window.ModelPilotPredictions): all loaded first.
'use strict';
(() => {
  const {
    C, BYTE_UNITS,
    isNum, fmtNum, fmtShare, fmtMs, byteUnit, fmtBytes, fmtDuration, fmtClock, fmtSpan, pct, count, tickFmt,
    spacing, spanOf, drawEmpty, lineChart, describe,
    $, el, setText, setStat, setBadge, plural,
  } = window.ModelPilotCharts;
  const { renderPredictions } = window.ModelPilotPredictions;
  const { renderDrift } = window.ModelPilotDrift;
  const API = '/api/dashboard';
  // Whether the server takes traffic: 503 while it drains after SIGTERM (or while a served model
  // is not loaded), when /api/dashboard still answers and the figures look live.
  const READY = '/v2/health/ready';
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  // Quality metrics: scores in [0, 1], higher is better; errors from 0 up, lower is better.
  const SCORE_METRICS = new Set(['accuracy', 'f1', 'auc']);
  const ERROR_METRICS = new Set(['mae', 'rmse', 'mse', 'log_loss']);
  // pick: the model the user chose (else the first), and its version (null: whichever serves).
  // firing: the keys of the alerts firing at the last refresh (null before the first), to tell
  // screen readers what changed.
  const state = { payload: null, pick: { name: null, version: null }, prevSys: null, curSys: null, firing: null };

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
    if (n) {  // each chart's latest figures, for those who hear the page rather than see it
      describe($('chart-throughput'), `latest ${fmtNum(last.rps)} requests per second`);
      describe($('chart-latency'), isNum(last.p99_ms)
        ? `latest p50 ${fmtMs(last.p50_ms)}, p95 ${fmtMs(last.p95_ms)}, p99 ${fmtMs(last.p99_ms)}` : 'no requests in the latest interval');
      describe($('chart-errors'), `latest ${fmtNum(last.server_errors_per_s)} server errors and `
        + `${fmtNum(clientErrors(last))} client errors per second`);
      describe($('chart-system'), `latest CPU ${pct(last.cpu_percent)}, memory ${fmtBytes(last.memory_bytes)}`);
    }
    setStat('stat-rps', isNum(last.rps) ? `${last.rps.toFixed(last.rps >= 1000 ? 0 : 1)} req/s` : '—', last.rps);
    const ts = series.map((s) => s.t).filter(isNum), step = spacing(ts);
    setText('stat-rps-sub', step === null ? (n ? 'latest interval' : '—') : `last ${fmtSpan(step)} window`);
    setText('series-span', n ? `· charts: ${spanOf(ts) || 'latest interval'}` : '');
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
    // The server's figures, as the chart beside them: its serving and monitoring processes',
    // with workers all of them added up (what a container that runs it must hold).
    const workers = isNum(sys.workers) && sys.workers > 1 ? sys.workers : 1;
    const who = workers > 1 ? `${workers} workers` : 'the server';
    setText('stat-cpu-label', workers > 1 ? `CPU · ${who}` : 'Server CPU');
    setStat('stat-cpu', pct(sys.cpu_percent), sys.cpu_percent);
    setText('stat-cpu-sub', `machine ${pct(sys.machine_cpu_percent)}`);
    setText('stat-memory-label', workers > 1 ? `Memory · ${who}` : 'Server memory');
    setStat('stat-memory', fmtBytes(sys.memory_bytes), sys.memory_bytes);
    // With workers the tile counts their supervisor too (in no chart point): say so.
    const supervisor = isNum(sys.supervisor_memory_bytes) ? ` · supervisor ${fmtBytes(sys.supervisor_memory_bytes)}` : '';
    setText('stat-memory-sub', `RSS, monitoring ${fmtBytes(sys.monitor_memory_bytes)}${supervisor} · machine ${pct(sys.memory_percent)}`);
    setText('sys-hint', `CPU % · memory of ${who}, serving and monitoring processes`);
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
    // Rules that hold but wait out MODELPILOT_ALERT_FOR_SECONDS before they fire.
    const pending = Array.isArray(p.pending_alerts) ? p.pending_alerts : [];
    const item = (a, waiting) => {
      const sev = String(a.severity || 'warning').toLowerCase();
      let when = '';
      if (waiting && isNum(a.fires_at) && isNum(p.time)) when = `fires in ${fmtDuration(Math.max(0, a.fires_at - p.time))}`;
      else if (isNum(a.since) && isNum(p.time)) when = `for ${fmtDuration(p.time - a.since)}`;
      const head = el('span', 'rule', a.rule || 'alert', ...(a.model ? [el('span', 'model', ` · ${a.model}`)] : []));
      const li = el('li', waiting ? 'pending' : `sev-${sev}`, null, el('span', 'sev', waiting ? 'pending' : sev), head,
        el('span', 'since', when), ...(waiting ? [] : [el('div', 'msg', a.message || '')]));
      Object.assign(li.dataset, { rule: a.rule || '', model: a.model || '', severity: sev, state: waiting ? 'pending' : 'firing' });
      return li;
    };
    $('alerts').replaceChildren(...alerts.map((a) => item(a, false)), ...pending.map((a) => item(a, true)));
    // The list, in the tab order to be scrolled by keyboard, only while it lists something.
    $('alerts').hidden = alerts.length + pending.length === 0;
    $('alerts-empty').hidden = alerts.length + pending.length > 0;
    const worst = alerts.some((a) => a.severity === 'critical') ? 'bad' : alerts.length ? 'warn' : 'muted';
    setBadge('alerts-count', worst, String(alerts.length), plural(alerts.length, 'active alert'));
    announceAlerts(alerts);
  }

  // Alerts that started or stopped firing since the last refresh, said once in #alerts-news (a
  // status region): the list itself is redrawn on every refresh, and would be read out again.
  // The alerts firing when the page opens are on the list; they are not news.
  const alertKey = (a) => `${a.rule || 'alert'}${a.model ? ` on ${a.model}` : ''}`;
  function announceAlerts(alerts) {
    const now = new Map(alerts.map((a) => [alertKey(a), String(a.severity || 'warning').toLowerCase()]));
    const before = state.firing;
    state.firing = new Set(now.keys());
    if (before === null) return;
    const started = [...now].filter(([k]) => !before.has(k)).map(([k, sev]) => `${k} (${sev})`);
    const stopped = [...before].filter((k) => !now.has(k));
    if (!started.length && !stopped.length) return;
    const news = [started.length ? `Alert firing: ${started.join(', ')}.` : '',
      stopped.length ? `Alert resolved: ${stopped.join(', ')}.` : '', `${plural(alerts.length, 'active alert')}.`];
    setText('alerts-news', news.filter(Boolean).join(' '));
  }

  // ------------------------------------------------------------------ per-model sections
  // One entry per version: after `modelpilot alias` moves traffic, the version it left keeps its
  // report beside the new one's. An option is a version; by default the one that serves (the
  // newest where none says so), followed as the alias moves until the user picks another.
  const keyOf = (m) => `${m.name}:${m.version ?? ''}`;
  const newest = (ms) => ms.reduce((a, b) => (Number(b.version) > Number(a.version) ? b : a), ms[0]);
  function shownModel(models) {
    const names = [...new Set(models.map((m) => m.name))];
    const name = names.includes(state.pick.name) ? state.pick.name : names[0];
    const mine = models.filter((m) => m.name === name);
    if (!mine.length) return null;
    const picked = state.pick.version === null ? null : mine.find((m) => String(m.version) === state.pick.version);
    return picked || mine.find((m) => m.serving) || newest(mine);
  }
  // What the page says of a pick (a link's #model=...) that the server reports nothing of, as
  // it shows another model or version in its place: '' when it shows the one asked for.
  function missingPick(models, shown) {
    const { name, version } = state.pick;
    if (name === null) return '';
    const mine = models.filter((m) => m.name === name);
    const asked = version === null ? name : `${name} v${version}`;
    if (mine.length && (version === null || mine.some((m) => String(m.version) === version))) return '';
    const versions = mine.map((m) => Number(m.version)).sort((a, b) => a - b).map((v) => `v${v}`);
    const known = mine.length ? ` (of ${name}, it has ${versions.join(', ')})` : '';
    const instead = shown ? `Showing ${shown.name}${shown.version ? ` v${shown.version}` : ''} instead.` : '';
    return `The link asks for ${asked}: this server does not serve it and has no figures of it${known}. ${instead}`.trim();
  }
  // The pick in the address (#model=NAME or #model=NAME:VERSION): a link to one version.
  function readHash() {
    const found = /^#model=(.+)$/.exec(window.location.hash);
    if (!found) return;
    let ref;
    try { ref = decodeURIComponent(found[1]); } catch { return; }  // a malformed address: no pick
    const colon = ref.lastIndexOf(':');
    const versioned = colon > 0 && /^[0-9]+$/.test(ref.slice(colon + 1));
    state.pick = versioned ? { name: ref.slice(0, colon), version: ref.slice(colon + 1) } : { name: ref, version: null };
  }
  function choose(key) {
    const models = Array.isArray(state.payload && state.payload.models) ? state.payload.models : [];
    const m = models.find((x) => keyOf(x) === key);
    if (!m) return;
    // Choosing the version that serves means "the one that serves": it follows the alias.
    state.pick = { name: m.name, version: m.serving ? null : String(m.version) };
    const ref = state.pick.version === null ? m.name : key;
    window.history.replaceState(null, '', `#model=${encodeURIComponent(ref)}`);
    syncModelSelect(models);
    renderModel();
  }
  function syncModelSelect(models) {
    const sel = $('model-select');
    const byName = [...models].sort((a, b) => (a.name === b.name ? Number(b.version) - Number(a.version)
      : a.name < b.name ? -1 : 1));
    const text = (m) => `${m.name}${m.version ? ` v${m.version}` : ''}${m.serving ? ' · serving' : ''}`;
    const wanted = byName.map((m) => `${keyOf(m)}=${text(m)}`).join('\n');
    if ([...sel.options].map((o) => `${o.value}=${o.text}`).join('\n') !== wanted) {
      sel.replaceChildren(...byName.map((m) => new Option(text(m), keyOf(m))));
    }
    const shown = shownModel(models);
    if (shown) { sel.value = keyOf(shown); sel.dataset.value = sel.value; } else delete sel.dataset.value;
    $('model-picker').hidden = models.length <= 1;
  }

  // Why a served model has nothing to show ('' where it has): it has answered no requests yet
  // (and no windows were restored from the inference log), or it got requests but answered
  // none, the monitor watching answers: a model failing every request read "no traffic yet".
  function idle(m) {
    if (!m || m.requests || m.drift || m.predictions || m.performance) return '';
    const t = m.traffic;
    return t && isNum(t.requests) && t.requests > 0 ? 'No answers: its requests failed' : 'No traffic yet';
  }
  // Server errors (5xx) of the model's version of late, every request counted (not only the
  // answers the monitor watched): in the rules' window (the last minute), else in the charts'.
  function failing(m) {
    const t = m && m.traffic;
    if (!t) return '';
    if (isNum(t.window_server_errors) && t.window_server_errors > 0) {
      return `failing ${count(t.window_server_errors)} of ${plural(t.window_requests, 'request')} (5xx) in the last ${fmtSpan(t.window_seconds)}`;
    }
    if (isNum(t.server_errors) && t.server_errors > 0) {
      return `failed ${count(t.server_errors)} of ${plural(t.requests, 'request')} (5xx) in the last ${fmtSpan(t.seconds)}`;
    }
    return '';
  }

  function renderPerformance(m) {
    const perf = m && m.performance;
    const canvas = $('chart-accuracy'), concept = $('concept-badge');
    if (!perf) {
      // "In the window", not "yet": labels that came and aged out of the quality window leave
      // it as empty as labels that never came, and late labels are the usual case.
      drawEmpty(canvas, !m ? 'No models loaded' : idle(m) || 'No ground-truth labels in the window');
      setStat('stat-accuracy', '—', null, '');
      setText('stat-accuracy-label', 'Accuracy'); setText('perf-title', 'Accuracy');
      setText('stat-accuracy-sub', 'no labels in the window'); setText('perf-summary', '—');
      concept.hidden = true;
      return;
    }
    const cur = perf.current || {};
    const hist = Array.isArray(perf.history) ? perf.history : [];
    // A point with no metric is a stretch the window held no labels in: a gap in the line.
    const measured = hist.find((x) => Object.keys(x).some((k) => k !== 't')) || {};
    const metric = 'accuracy' in cur ? 'accuracy'
      : Object.keys(cur)[0] || Object.keys(measured).find((k) => k !== 't') || 'accuracy';
    const ref = perf.reference ? perf.reference[metric] : null;
    const label = metric.length <= 4 ? metric.toUpperCase() : metric.charAt(0).toUpperCase() + metric.slice(1);
    const pts = hist.map((x) => [x.t, isNum(x[metric]) ? x[metric] : null]).filter((q) => isNum(q[0]));
    const measuredPts = pts.filter((q) => isNum(q[1]));
    // Errors (MAE, RMSE) from 0 up; scores (accuracy, F1, AUC) zoomed in, within [0, 1].
    const lowerBetter = ERROR_METRICS.has(metric);
    lineChart(canvas, {
      lines: [{ label: metric, color: C.blue, pts }], zero: lowerBetter, points: measuredPts.length,
      min: 0, max: SCORE_METRICS.has(metric) ? 1 : undefined,
      refs: isNum(ref) ? [{ y: ref, label: 'reference', color: C.axis }] : [], empty: 'No performance history yet',
    });
    setText('stat-accuracy-label', label);
    const span = spanOf(pts.map((q) => q[0]));
    setText('perf-title', span ? `${label} · ${span}` : `${label} over time`);
    const v = cur[metric];
    // Red when the server judged the metric degraded, by the thresholds that flag concept
    // drift (and only once the window holds enough labels), never by a rule of its own.
    const worse = Array.isArray(perf.degraded) && perf.degraded.includes(metric);
    setStat('stat-accuracy', fmtNum(v), v, worse ? 'bad' : '');
    if (measuredPts.length) describe(canvas, `latest ${metric} ${fmtNum(v)}${isNum(ref) ? `, reference ${fmtNum(ref)}` : ''}`);
    const labels = isNum(perf.labels) ? `${count(perf.labels)} labels` : '';
    const [kind, verdict, why] = conceptVerdict(m, perf);
    const unjudged = kind === 'muted' ? 'not judged' : '';
    setText('stat-accuracy-sub', [isNum(ref) ? `ref ${fmtNum(ref)}` : '', labels, unjudged].filter(Boolean).join(' · ') || '—');
    const metrics = Object.entries(cur).map(([k, x]) => `${k} ${fmtNum(x)}`).join(' · ');
    setText('perf-summary', [labels, metrics, kind === 'muted' ? why : ''].filter(Boolean).join(' · ') || '—');
    concept.hidden = false;
    setBadge('concept-badge', kind, verdict, why);
  }

  // The quality badge: [kind, text, why]. Green only for a window the server judged: a version
  // with nothing to judge its labels against (no reference figures: quality_unjudged), or a
  // window with too few labels (performance.judged false), showed a green "no concept drift"
  // that no labels could ever turn red. A drift held over such a window stays red.
  function conceptVerdict(m, perf) {
    const reason = typeof perf.reason === 'string' ? perf.reason : '';
    if (m.concept_drift) return ['bad', 'concept drift', reason];
    const never = typeof m.quality_unjudged === 'string' ? m.quality_unjudged : '';
    if (never) return ['muted', 'quality not judged', never];
    const unjudged = typeof perf.unjudged === 'string' && perf.unjudged ? perf.unjudged : reason;
    if (perf.judged === false) return ['muted', 'no verdict yet', unjudged];
    return ['ok', 'no concept drift', ''];
  }

  // Requests since the server started; the cards count their windows, which a restart
  // restores from the inference log (5,113 predictions beside "113 requests"). With the monitor
  // sampling (MODELPILOT_MONITOR_SAMPLE_RATE < 1) it counts only the calls it watched: "202
  // requests since start" of a model that had answered 401 halved its traffic on the page.
  const sampled = (m) => isNum(m.monitor_sample_rate) && m.monitor_sample_rate < 1;
  const SAMPLED_NOTE = 'The monitor watches a share of the model calls (MODELPILOT_MONITOR_SAMPLE_RATE), drawn at '
    + 'random: drift, the prediction distribution and quality see only those. Service figures count every request.';
  function traffic(m) {
    const answered = isNum(m.requests_answered) ? m.requests_answered : null;
    const fails = failing(m), t = m.traffic;
    if (idle(m) && !answered) {
      if (fails) return fails;
      return t && isNum(t.requests) && t.requests > 0
        ? `${plural(t.requests, 'request')} in the last ${fmtSpan(t.seconds)}, none answered` : 'no traffic yet';
    }
    let said = `${plural(m.requests, 'request')} since start`;
    if (sampled(m)) {
      const of = answered === null ? plural(m.requests, 'request') : `${count(m.requests)} of ${plural(answered, 'request')}`;
      said = `${of} watched since start · the monitor samples ${fmtShare(m.monitor_sample_rate)} of calls`;
    }
    return fails ? `${said} · ${fails}` : said;
  }

  function renderModel() {
    const models = Array.isArray(state.payload.models) ? state.payload.models : [];
    const m = shownModel(models);
    setText('model-title', m ? `${m.name}${m.version ? ` v${m.version}` : ''} · ${traffic(m)}` : 'none loaded');
    $('model-title').title = m && sampled(m) ? SAMPLED_NOTE : '';
    // Red while its version fails requests (in the rules' window), as the server's errors are.
    $('model-title').classList.toggle('failing', !!m && isNum((m.traffic || {}).window_server_errors)
      && m.traffic.window_server_errors > 0);
    // Set only when it changes: it is a status region, read out on every change.
    const notice = missingPick(models, m);
    if ($('model-notice').textContent !== notice) setText('model-notice', notice);
    $('model-notice').hidden = !notice;
    renderDrift(m, idle(m));
    renderPredictions(m, idle(m));
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
  // While the server does not answer, the figures on the page are its last ones: greyed out
  // (body[data-connected="false"]) and said to be stale, with the time they are from.
  // ready: false while /v2/health/ready answers 503 (the figures are live, but the server takes
  // no new traffic from load balancers); null where it could not be told.
  function setConnected(ok, why, ready = null) {
    document.body.dataset.connected = String(ok);
    const since = state.payload && isNum(state.payload.time) ? fmtClock(state.payload.time) : null;
    if (!ok) {
      setBadge('conn', 'bad', since ? `disconnected · figures from ${since}` : 'disconnected',
        `Last error: ${why}. Retrying every ${REFRESH_MS / 1000} s.`);
    } else if (ready === false) {
      setBadge('conn', 'warn', 'live · not ready', `${READY} answers 503: the server is shutting down (draining its `
        + 'connections before it stops), or a model it serves is not loaded. Load balancers send it no new traffic.');
    } else {
      setBadge('conn', 'ok', 'live');
    }
  }

  // Whether the server says it is ready: true, false (503), or null (no answer, or no such
  // route where the page is served by an app of its own).
  async function readiness(signal) {
    try {
      const resp = await fetch(READY, { cache: 'no-store', signal, headers: { Accept: 'application/json' } });
      return resp.ok ? true : resp.status === 503 ? false : null;
    } catch {
      return null;
    }
  }

  async function refresh() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let payload = null;
    try {
      const ready = readiness(ctl.signal);
      const resp = await fetch(API, { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'application/json' } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      payload = await resp.json();
      setConnected(true, '', await ready);
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
    readHash();
    window.addEventListener('hashchange', () => { readHash(); if (state.payload) render(state.payload); });
    $('model-select').addEventListener('change', (ev) => choose(ev.target.value));
    document.querySelectorAll('canvas.chart').forEach((c) => drawEmpty(c, 'Connecting…'));
    refresh();
  });
})();
