/* Monitoring page: GET /v1/monitor (Project.monitor over the event log) drawn as charts per model version and
   window: latency percentiles with the project's latency limits, error/truncation/empty rates, the top-1 score
   distribution, clicks, and the three drift statistics with their per-window alert thresholds. */
"use strict";

(() => {
  const { api, el, clear, fmt, pct, showError, clearError, status } = EO;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let loads = 0;

  function query() {
    const params = new URLSearchParams({ window_s: $("window").value, min_vectors: $("min-vectors").value });
    if ($("span").value) params.set("last_s", $("span").value);
    if ($("version").value) params.set("model_version", $("version").value);
    return params;
  }

  const short = (v) => (v ? (v.length > 16 ? v.slice(0, 16) + "…" : v) : "(no version)");
  const mid = (w) => (w.quality.start + w.quality.end) / 2;

  function byVersion(report) {
    const groups = new Map();
    for (const w of report.windows) {
      const v = w.quality.model_version;
      if (!groups.has(v)) groups.set(v, []);
      groups.get(v).push(w);
    }
    return groups;
  }

  function draw(report) {
    const groups = byVersion(report);
    const many = groups.size > 1;
    const name = (v, what) => (many ? `${short(v)} ${what}` : what);
    const palette = EOChart.PALETTE;
    const latency = [], rates = [], scores = [], scoreBands = [], clicks = [], mmd = [], auc = [], centroid = [];
    const limits = { mmd: [], auc: [], centroid: [] }, marks = { mmd: [], auc: [], centroid: [] };
    let vi = 0;
    for (const [v, ws] of groups) {
      const c = (j) => palette[(vi * 3 + j) % palette.length];
      const pts = (get) => ws.map((w) => ({ x: mid(w), y: get(w) }));
      latency.push({ name: name(v, "p50"), color: c(0), points: pts((w) => w.quality.latency_ms.p50) },
                   { name: name(v, "p95"), color: c(1), points: pts((w) => w.quality.latency_ms.p95) },
                   { name: name(v, "p99"), color: c(2), dash: true, points: pts((w) => w.quality.latency_ms.p99) });
      rates.push({ name: name(v, "error rate"), color: palette[5], points: pts((w) => w.quality.error_rate) },
                 { name: name(v, "truncation rate"), color: palette[3], points: pts((w) => w.quality.truncation_rate) },
                 { name: name(v, "empty-result rate"), color: palette[6], dash: true, points: pts((w) => w.quality.empty_rate) });
      scoreBands.push({ name: name(v, "top-1 p05–p95"), color: c(0), opacity: 0.15,
                        points: ws.map((w) => ({ x: mid(w), lo: w.quality.top1.p05, hi: w.quality.top1.p95 })) },
                      { name: name(v, "top-1 p25–p75"), color: c(0), opacity: 0.3,
                        points: ws.map((w) => ({ x: mid(w), lo: w.quality.top1.p25, hi: w.quality.top1.p75 })) });
      scores.push({ name: name(v, "top-1 median"), color: c(0), points: pts((w) => w.quality.top1.p50) },
                  { name: name(v, "all returned scores, median"), color: c(1), dash: true, points: pts((w) => w.quality.topk.p50) });
      clicks.push({ name: name(v, "click-through rate"), color: c(0), points: pts((w) => w.quality.ctr) },
                  { name: name(v, "score gap median"), color: c(1), dash: true, points: pts((w) => w.quality.gap_median) });
      const checked = ws.filter((w) => w.drift);
      const dpts = (get) => checked.map((w) => ({ x: mid(w), y: get(w.drift) }));
      mmd.push({ name: name(v, "p-value"), color: c(0), points: dpts((d) => d.mmd_p_value) });
      auc.push({ name: name(v, "AUC"), color: c(0), points: dpts((d) => d.auc) });
      centroid.push({ name: name(v, "shift"), color: c(0), points: dpts((d) => d.centroid_shift) });
      limits.mmd.push({ name: name(v, "α (alert below)"), points: dpts((d) => d.alpha) });
      limits.auc.push({ name: name(v, "AUC threshold"), points: dpts((d) => d.auc_threshold) });
      limits.centroid.push({ name: name(v, "shift threshold"), points: dpts((d) => d.centroid_threshold) });
      for (const w of checked.filter((w) => w.drift.drifted)) {
        const label = `drifted: ${w.drift.votes}/3 tests reject`;
        marks.mmd.push({ x: mid(w), y: w.drift.mmd_p_value, label });
        marks.auc.push({ x: mid(w), y: w.drift.auc, label });
        marks.centroid.push({ x: mid(w), y: w.drift.centroid_shift, label });
      }
      vi += 1;
    }
    const xPad = report.window_s / 2;
    const t = report.thresholds || {};
    const latencyLimits = [["p50_latency_ms", "p50"], ["p95_latency_ms", "p95"], ["p99_latency_ms", "p99"]]
      .filter(([k]) => t[k] !== undefined).map(([k, q]) => ({ name: `${q} limit (criteria: ${k} ≤ ${t[k]})`, y: t[k] }));
    const ms = (v) => (v === null || v === undefined ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
    EOChart.render($("chart-latency"), { series: latency, thresholds: latencyLimits, yMin: 0, format: ms, xPad, yLabel: "ms" });
    EOChart.render($("chart-rates"), { series: rates, yMin: 0, format: (v) => pct(v, 1), xPad });
    EOChart.render($("chart-scores"), { series: scores, bands: scoreBands, format: (v) => fmt(v, 2), xPad,
                                        empty: "no answered searches in this span" });
    EOChart.render($("chart-clicks"), { series: clicks, yMin: 0, format: (v) => fmt(v, 2), xPad });
    const noDrift = "no window had enough query vectors for a drift check";
    EOChart.render($("chart-mmd"), { series: mmd, thresholds: limits.mmd, marks: marks.mmd, yMin: 0, yMax: 1, xPad, empty: noDrift });
    EOChart.render($("chart-auc"), { series: auc, thresholds: limits.auc, marks: marks.auc, xPad, empty: noDrift });
    EOChart.render($("chart-centroid"), { series: centroid, thresholds: limits.centroid, marks: marks.centroid, yMin: 0,
                                          format: (v) => fmt(v, 4), xPad, empty: noDrift });
    return groups;
  }

  function cards(report, groups) {
    const box = clear($("cards"));
    if (!report.windows.length) return;
    const total = report.windows.reduce((n, w) => n + w.quality.requests, 0);
    box.append(card(String(total), "requests in the span"));
    for (const [v, ws] of groups) {
      const last = ws[ws.length - 1].quality;
      const drift = [...ws].reverse().find((w) => w.drift);
      const label = groups.size > 1 ? ` · ${short(v)}` : "";
      box.append(card(last.latency_ms.p95 === null ? "–" : `${last.latency_ms.p95.toFixed(1)} ms`, "p95 latency" + label),
                 card(pct(last.error_rate), "error rate" + label),
                 card(fmt(last.top1.p50, 3), "top-1 score median" + label),
                 card(drift ? (drift.drift.drifted ? `drift (${drift.drift.votes}/3)` : "no drift") : "not checked",
                      "query drift, latest check" + label, drift && drift.drift.drifted ? "bad" : drift ? "ok" : ""));
    }
  }

  function card(value, label, tone) {
    const v = el("div", { class: "value" }, value);
    if (tone) v.append(" ", el("span", { class: "badge " + tone }, tone === "bad" ? "alert" : "ok"));
    return el("div", { class: "card" }, v, el("div", { class: "label" }, label));
  }

  function alerts(report) {
    const list = clear($("alerts"));
    if (!report.logged_alerts.length) { list.append(el("li", { class: "muted" }, "No alerts in this span.")); return; }
    for (const a of report.logged_alerts) list.append(el("li", {}, el("strong", {}, EO.when(a.time) + " "), a.message));
  }

  function versions(report) {
    const select = $("version");
    const keep = select.value;
    const known = new Set([...select.options].map((o) => o.value));
    for (const v of report.versions) if (!known.has(v)) select.append(el("option", { value: v }, short(v)));
    select.value = keep;
  }

  async function load() {
    clearError();
    const minVectors = Number($("min-vectors").value);
    if (!Number.isInteger(minVectors) || minVectors < 10) {
      $("min-vectors").setAttribute("aria-invalid", "true");
      $("error").textContent = "Queries for a drift check must be a whole number of at least 10.";
      $("min-vectors").focus();
      return;
    }
    $("min-vectors").removeAttribute("aria-invalid");
    status("Computing the report…");
    try {
      const report = await api("GET", "/v1/monitor?" + query().toString());
      const groups = draw(report);
      cards(report, groups);
      alerts(report);
      versions(report);
      const checked = report.windows.filter((w) => w.drift).length;
      status(report.windows.length
        ? `${report.windows.length} windows of ${report.window_s} s, ${checked} with a drift check; updated ${new Date().toLocaleTimeString()}.`
        : "No requests in this span yet: run some searches, or widen the span.");
      loads += 1;
      document.body.dataset.loads = String(loads);
      performance.mark("eo-charts");
    } catch (err) {
      showError(err, "Loading the monitoring report");
    }
  }

  EO.page(() => {
    $("monitor-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    for (const id of ["span", "window", "version"]) $(id).addEventListener("change", load);
    $("auto").addEventListener("change", () => {
      clearInterval(timer);
      timer = $("auto").checked ? setInterval(load, 30000) : null;
    });
    document.addEventListener("eo:key", load);
    const params = new URLSearchParams(location.search);
    // A link may carry any span and window (the benchmark and docs link to short ones): add them as choices.
    for (const [id, key, unit] of [["window", "window_s", "s windows"], ["span", "last_s", "s back"]]) {
      const value = params.get(key);
      if (value === null) continue;
      if (![...$(id).options].some((o) => o.value === value)) $(id).append(el("option", { value }, `${value} ${unit}`));
      $(id).value = value;
    }
    if (params.get("min_vectors")) $("min-vectors").value = params.get("min_vectors");
    if (params.get("model_version")) $("version").append(el("option", { value: params.get("model_version") }, short(params.get("model_version"))));
    if (params.get("model_version")) $("version").value = params.get("model_version");
    load();
  });
})();
