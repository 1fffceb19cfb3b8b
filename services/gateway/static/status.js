// xmodal status page: polls /v1/status every 2 s and draws the figures as plain SVG (no libraries).
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f5bea", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#06aed4", "#f04438", "#84adff",
  "#3b7c0f", "#b54708", "#535862", "#9e77ed"];
const $ = (id) => document.getElementById(id);
const state = { apiKey: sessionStorage.getItem("xmodal-api-key") || "", lastOk: null, timer: null };

// --- formatting ------------------------------------------------------------------------------
const nf = new Intl.NumberFormat("en-US");
function fmtCount(v) { return v == null ? "–" : nf.format(Math.round(v)); }
function fmtRate(v) { return v == null ? "–" : v >= 100 ? nf.format(Math.round(v)) : v.toFixed(1); }
function fmtSeconds(v) {
  if (v == null) return "–";
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  if (v < 60) return `${v.toFixed(v < 10 ? 2 : 1)} s`;
  const m = Math.floor(v / 60);
  return m < 60 ? `${m}m ${Math.round(v % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
function fmtAxisSeconds(v) { return v === 0 ? "0" : v < 1 ? `${+(v * 1000).toFixed(1)}ms` : `${+v.toFixed(2)}s`; }
function fmtAxisCount(v) { return v >= 10000 ? `${+(v / 1000).toFixed(1)}k` : nf.format(+v.toFixed(2)); }
function ago(seconds) {
  if (seconds < 1) return "now";
  if (seconds < 60) return `${Math.round(seconds)}s ago`;
  return `${Math.round(seconds / 60)}m ago`;
}

// --- SVG helpers ---------------------------------------------------------------------------------
function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function sizeOf(svg) {
  const box = svg.getBoundingClientRect();
  const w = Math.max(240, Math.round(box.width)), h = Math.max(120, Math.round(box.height));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  return { w, h };
}

// A y scale whose gridlines fall on round numbers: step 1, 2, 2.5 or 5 x 10^k, 3 to 5 lines.
function niceScale(v) {
  if (!(v > 0)) return { max: 1, step: 0.25 };
  const rough = v / 4, p = Math.pow(10, Math.floor(Math.log10(rough)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((st) => st >= rough);
  return { max: step * Math.ceil((v * 1.02) / step), step };
}

// series: [{name, color, values}] aligned with times; null values leave gaps.
function lineChart(svg, times, series, { yFormat, window }) {
  const { w, h } = sizeOf(svg);
  const pad = { l: 50, r: 12, t: 8, b: 22 };
  const now = times.length ? times[times.length - 1] : Date.now() / 1000;
  // the x axis spans the samples there are (at least 30 s): a page opened a minute ago is not a thin sliver
  const span = Math.min(window, Math.max(30, times.length ? now - times[0] : window));
  const t0 = now - span;
  const all = series.flatMap((s) => s.values.filter((v) => v != null));
  const { max: yMax, step: yStep } = niceScale(Math.max(0, ...all));
  const x = (t) => pad.l + ((t - t0) / span) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
  for (let i = 0; i * yStep <= yMax + yStep / 1000; i++) {
    const v = i * yStep;
    svg.append(el("line", { class: i ? "grid" : "axis", x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) }));
    svg.append(el("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" }, yFormat(v)));
  }
  const step = [5, 10, 15, 30, 60, 120, 300, 600].find((st) => span / st <= 6) || 600;
  for (let s = 0; s <= span + 0.5; s += step) {
    const label = s === 0 ? "now" : s % 60 ? `-${s}s` : `-${s / 60}m`;
    svg.append(el("text", { x: x(now - s), y: h - 5, "text-anchor": s === 0 ? "end" : "middle" }, label));
  }
  if (!all.length) {
    svg.append(el("text", { class: "nodata", x: (pad.l + w) / 2, y: h / 2, "text-anchor": "middle" }, "no data yet"));
  }
  for (const s of series) {
    let d = "", points = 0, open = false;
    s.values.forEach((v, i) => {
      if (v == null || times[i] < t0) { open = false; return; }
      d += `${open ? "L" : "M"}${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`;
      open = true;
      points += 1;
    });
    const path = el("path", { class: "series", d, stroke: s.color, "data-series": s.name, "data-points": points });
    svg.append(path);
    // a lone point between gaps has no segment to draw: mark it
    s.values.forEach((v, i) => {
      const lone = v != null && (i === 0 || s.values[i - 1] == null) && (i === s.values.length - 1 || s.values[i + 1] == null);
      if (lone && times[i] >= t0) svg.append(el("circle", { cx: x(times[i]), cy: y(v), r: 2.5, fill: s.color }));
    });
  }
}

function legend(box, series, fmt) {
  box.replaceChildren(...series.map((s) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    const last = [...s.values].reverse().find((v) => v != null);
    const value = document.createElement("b");
    value.textContent = last == null ? "–" : fmt(last);
    span.append(swatch, s.label || s.name, value);
    return span;
  }));
}

function barChart(svg, entries) {
  $("dead-empty").hidden = entries.length > 0;
  svg.style.display = entries.length ? "" : "none";  // before measuring: a hidden svg has no width
  if (!entries.length) return;
  const { w } = sizeOf(svg);
  const rowH = 24, labelW = 150, valueW = 54;
  const h = Math.max(120, entries.length * rowH + 8);
  svg.style.height = `${h}px`;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const max = Math.max(...entries.map(([, v]) => v));
  entries.forEach(([reason, v], i) => {
    const yTop = 4 + i * rowH;
    const width = Math.max(2, ((w - labelW - valueW) * v) / max);
    const g = el("g", { "data-reason": reason });
    g.append(el("text", { class: "bar-label", x: labelW - 8, y: yTop + 15, "text-anchor": "end" }, reason));
    g.append(el("rect", { x: labelW, y: yTop + 3, width, height: rowH - 8, rx: 3,
      fill: "#f97066" }));
    g.append(el("text", { class: "bar-value", x: labelW + width + 6, y: yTop + 15 }, fmtCount(v)));
    svg.append(g);
  });
}

// --- rendering ----------------------------------------------------------------------------------
function setNumber(id, text, cls) {
  const node = $(id);
  node.textContent = text;
  node.parentElement.classList.remove("bad", "warn");
  if (cls) node.parentElement.classList.add(cls);
}

function renderNumbers(data) {
  const now = data.now;
  setNumber("total-lag", fmtCount(now.total_lag), now.total_lag > 0 && !now.draining ? "warn" : null);
  $("total-lag-sub").textContent = now.partitions == null ? "Kafka not reachable"
    : `events, ${now.partitions} partitions`;
  const drain = now.total_lag === 0 ? "drained" : now.draining ? fmtSeconds(now.drain_s) : "–";
  setNumber("drain", drain, now.total_lag > 0 && !now.draining ? "bad" : null);
  const paused = now.workers_paused ? `: ${now.workers_paused} paused` : "";
  $("drain-sub").textContent = now.total_lag > 0 && !now.draining ? `not consuming${paused}`
    : `at ${fmtRate(now.consume_rate)} events/s`;
  setNumber("throughput", fmtRate(now.throughput));
  $("throughput-sub").textContent = `events/s · ${fmtRate(now.incoming)}/s in`;
  setNumber("fresh-p50", fmtSeconds(now.freshness_p50));
  setNumber("fresh-p99", fmtSeconds(now.freshness_p99));
  $("fresh-count").textContent = `${fmtCount(now.freshness_count)} events, last ${Math.round(data.window_s / 60)} min`;
  setNumber("dead-total", fmtCount(now.dead_letters_total), now.dead_letters_total > 0 ? "warn" : null);
}

function renderHealth(data) {
  const kafka = $("kafka-pill");
  kafka.textContent = data.kafka.up ? "Kafka up" : "Kafka down";
  kafka.className = `pill ${data.kafka.up ? "ok" : "down"}`;
  kafka.title = data.kafka.error || data.kafka.bootstrap_servers;
  const up = data.workers.filter((w) => w.up).length;
  const workers = $("workers-pill");
  workers.textContent = `Workers ${up}/${data.workers.length} scraped`;
  workers.className = `pill ${up === data.workers.length && up > 0 ? "ok" : "down"}`;
  // paused: consumption stopped after a transient failure (Weaviate away, ...); the worker retries with backoff
  const paused = data.now.workers_paused || 0;
  const pausedPill = $("paused-pill");
  pausedPill.textContent = paused ? `${paused} of ${up} workers paused` : "No worker paused";
  pausedPill.className = `pill ${paused ? "warn" : up > 0 ? "ok" : ""}`;
  pausedPill.dataset.paused = paused;
  const recent = fmtByCause(data.now.retries_interval);
  pausedPill.title = `retries in the last interval: ${recent || "none"}`;
  // offsets that never reached a worker: events lost (0 in a healthy run; each worker's row and log say where)
  const lost = data.now.skipped_offsets || 0;
  const lostPill = $("lost-pill");
  lostPill.hidden = !lost;
  lostPill.textContent = `${fmtCount(lost)} offsets skipped: events lost`;
  const g = data.group;
  $("group-line").textContent = `topic ${g.topic} · group ${g.group} · ${g.state || "?"} · ${g.members ?? "?"} members`;
}

function fmtByCause(counts) {
  return Object.entries(counts || {}).map(([k, v]) => `${k} ${fmtCount(v)}`).join(" · ");
}

// "store_unreachable 3 / 41": retries in the last interval / since the worker started, per cause
function fmtRetries(w) {
  return Object.entries(w.retries || {}).sort((a, b) => b[1] - a[1]).map(([cause, total]) => {
    const recent = w.retries_interval == null ? "…" : fmtCount(w.retries_interval[cause] || 0);
    return `${cause} ${recent} / ${fmtCount(total)}`;
  }).join(" · ");
}

function stateCell(w, now) {
  const td = document.createElement("td");
  if (!w.up) {
    td.textContent = `down: ${w.error}`;
    td.className = "err";
  } else if (w.paused) {
    const badge = document.createElement("span");
    badge.className = "badge paused";
    badge.dataset.cause = w.pause.cause || "";
    badge.textContent = w.pause.text;
    td.append(badge);
    const paused = w.pause.since == null ? null : Math.max(0, now - w.pause.since);
    if (paused != null) td.append(` for ${paused < 60 ? `${Math.round(paused)}s` : fmtSeconds(paused)}`);
  } else {
    td.textContent = "up";
  }
  return td;
}

function renderWorkers(data) {
  $("workers").replaceChildren(...data.workers.map((w) => {
    const tr = document.createElement("tr");
    const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; };
    const where = w.target && w.target !== w.url ? `${w.url} → ${w.target}` : w.url;
    tr.dataset.paused = w.paused ? "true" : "false";
    const state = stateCell(w, data.generated_at);
    if (w.skipped_offsets > 0) {  // offsets that never reached the worker: lost events (streams/offsets.py)
      const lost = document.createElement("span");
      lost.className = "badge lost";
      lost.textContent = `${fmtCount(w.skipped_offsets)} offsets skipped: events lost, see its log`;
      state.append(" ", lost);
    }
    tr.append(cell(where, "url"), state,
      cell(w.last_ok == null ? "never" : ago(data.generated_at - w.last_ok)), cell(fmtByCause(w.events) || "–"),
      cell(fmtRetries(w) || "–", "retries"));
    return tr;
  }));
}

// The gateway's golden queries: green when the last run passed them all, red with each failure otherwise.
function renderGolden(golden) {
  const box = $("golden"), pill = $("golden-pill"), line = $("golden-line");
  const failures = golden?.last?.failed || [];
  $("golden-failures").replaceChildren(...failures.map((f) => {
    const li = document.createElement("li");
    const name = document.createElement("b");
    name.textContent = f.name;
    const reason = document.createElement("span");
    reason.textContent = f.reason;
    li.append(name, reason);
    return li;
  }));
  let state, text, cls = "";
  if (!golden || !golden.configured) {
    state = "unconfigured";
    text = "not configured";
    line.textContent = golden?.hint || "This gateway does not report golden queries.";
  } else if (!golden.last) {
    state = "pending";
    text = "first run pending";
    line.textContent = `${golden.queries} queries from ${golden.file}, checked every ${fmtSeconds(golden.interval_s)}`;
  } else {
    const last = golden.last;
    state = last.ok ? "ok" : "failing";
    cls = last.ok ? "ok" : "down";
    text = last.ok ? `all ${last.total} pass` : `${last.failed.length} of ${last.total} fail`;
    const when = ago(Date.now() / 1000 - last.checked_at);
    const stopped = golden.running ? "" : " · the schedule has stopped: see the gateway's log";
    line.textContent = `${last.passed}/${last.total} passed (${Math.round(last.ratio * 100)}%) · last run ${when}` +
      ` · took ${fmtSeconds(last.took_ms / 1000)} · every ${fmtSeconds(golden.interval_s)} · ${golden.file}${stopped}`;
  }
  box.dataset.state = state;
  box.classList.toggle("ok", state === "ok");
  box.classList.toggle("bad", state === "failing");
  pill.textContent = text;
  pill.className = `pill ${cls}`;
}

// Multi-tenant gateways only: objects per tenant (all of them, or the key's own), and what lag means here.
function renderTenants(tenants) {
  $("tenants").hidden = !tenants;
  if (!tenants) return;
  $("tenant-rows").replaceChildren(...tenants.rows.map((r) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td"), n = document.createElement("td");
    name.textContent = r.tenant;
    n.textContent = fmtCount(r.objects);
    tr.append(name, n);
    return tr;
  }));
  const which = tenants.shown === "all" ? "every tenant" : "this key's tenant";
  $("tenants-line").textContent = `${which}${tenants.error ? ` · ${tenants.error}` : ""} · ${tenants.lag}`;
}

// A model migration (`xmodal migrate`): old -> new model, the new side's progress, which side answers.
function renderMigration(m) {
  $("migration").hidden = !m;
  if (!m) return;
  const serving = m.serving === m.new?.collection ? "new" : m.serving === m.old?.collection ? "old" : "?";
  $("migration-pill").textContent = m.phase ? m.phase.replace("_", " ") : "unknown";
  $("migration-models").textContent = m.old
    ? `${m.alias}.${m.space}: ${m.old.model} (${m.old.collection}) → ${m.new.model} (${m.new.collection}); answering from the ${serving} side with ${m.answering_model}`
    : "";
  const parts = [];
  if (m.total !== undefined) {
    const pct = m.total ? (100 * m.done / m.total).toFixed(1) : "100.0";
    parts.push(`${fmtCount(m.done)} / ${fmtCount(m.total)} events (${pct}%)`);
    parts.push(m.rate == null ? "rate n/a" : `${m.rate.toFixed(1)} events/s`);
    parts.push(m.eta_s == null ? "ETA n/a" : `ETA ${fmtSeconds(m.eta_s)}`);
    parts.push(`${m.members} migration worker(s)`);
  }
  if (m.error) parts.push(m.error);
  $("migration-line").textContent = parts.join(" · ");
}

function render(data) {
  const s = data.series;
  renderHealth(data);
  renderGolden(data.golden);
  renderTenants(data.tenants);
  renderMigration(data.migration);
  renderNumbers(data);
  const parts = Object.keys(s.lag).sort((a, b) => a - b);
  const lagSeries = parts.map((p, i) => ({ name: `p${p}`, label: `partition ${p}`, color: PALETTE[i % PALETTE.length], values: s.lag[p] }));
  lineChart($("chart-lag"), s.t, lagSeries, { yFormat: fmtAxisCount, window: data.window_s });
  legend($("legend-lag"), lagSeries, fmtCount);
  const fresh = [
    { name: "p50", label: "p50", color: PALETTE[0], values: s.freshness_p50 },
    { name: "p99", label: "p99", color: PALETTE[2], values: s.freshness_p99 },
  ];
  lineChart($("chart-fresh"), s.t, fresh, { yFormat: fmtAxisSeconds, window: data.window_s });
  legend($("legend-fresh"), fresh, fmtSeconds);
  const tput = [
    { name: "indexed", label: "indexed", color: PALETTE[1], values: s.throughput },
    { name: "incoming", label: "produced", color: PALETTE[10], values: s.incoming },
  ];
  lineChart($("chart-throughput"), s.t, tput, { yFormat: fmtAxisCount, window: data.window_s });
  legend($("legend-throughput"), tput, (v) => `${fmtRate(v)}/s`);
  barChart($("chart-dead"), Object.entries(data.now.dead_letters).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]));
  renderWorkers(data);
}

// --- polling ------------------------------------------------------------------------------------
async function refresh() {
  try {
    const headers = state.apiKey ? { "X-API-Key": state.apiKey } : {};
    const resp = await fetch("/v1/status", { headers, cache: "no-store" });
    $("auth").hidden = resp.status !== 401;
    if (!resp.ok) {
      // error answers are JSON {"error": {"code", "message"}}: show the gateway's reason (e.g. not_configured)
      const body = await resp.json().catch(() => null);
      throw new Error(body?.error?.message || `HTTP ${resp.status}`);
    }
    const data = await resp.json();
    render(data);
    state.lastOk = Date.now();
    $("updated").textContent = data.sampling
      ? `Updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000}s`
      : "Sampling has stopped: see the gateway's log";
    document.body.dataset.loaded = "true";
  } catch (err) {
    const since = state.lastOk ? ` (last update ${ago((Date.now() - state.lastOk) / 1000)})` : "";
    // fetch rejects with a TypeError when the gateway cannot be reached; other errors carry its answer
    const why = err instanceof TypeError ? `Gateway not answering: ${err.message}` : err.message;
    $("updated").textContent = `${why}${since}`;
  } finally {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

$("api-key-save").addEventListener("click", () => {
  state.apiKey = $("api-key").value.trim();
  sessionStorage.setItem("xmodal-api-key", state.apiKey);
  clearTimeout(state.timer);
  refresh();
});
refresh();
