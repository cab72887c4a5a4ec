/* Experiments and models page: every experiment with its current effect, confidence interval and decision
   (GET /v1/experiments); the registry's versions with lineage, evaluation and gate, its aliases with their history
   (GET /v1/registry); promote and rollback behind a confirmation dialog (POST /v1/registry/promote|rollback, each
   audited); the audit trail (GET /v1/audit). */
"use strict";

(() => {
  const { api, el, clear, fmt, showError, clearError, status } = EO;
  const $ = (id) => document.getElementById(id);
  let pending = null;  // the action the dialog confirms
  let opener = null;   // the button that opened it (focus goes back there)

  function table(headers, rows, caption) {
    const t = el("table", {}, caption ? el("caption", { class: "visually-hidden" }, caption) : null,
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.label || h)))));
    const body = el("tbody");
    for (const row of rows) body.append(row);
    t.append(body);
    return t;
  }

  function ciBar(lo, hi, effect) {
    // The CI of the effect against zero: the decision reads straight off whether the bar crosses the line.
    const NS = "http://www.w3.org/2000/svg", W = 140, H = 16;
    const svgEl = document.createElementNS(NS, "svg");
    svgEl.setAttribute("width", W); svgEl.setAttribute("height", H); svgEl.setAttribute("aria-hidden", "true");
    if (lo === null || hi === null || effect === null) return svgEl;
    const span = Math.max(Math.abs(lo), Math.abs(hi), 1e-9) * 1.1;
    const X = (v) => W / 2 + (v / span) * (W / 2 - 4);
    const mk = (tag, attrs) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; };
    svgEl.append(mk("line", { x1: W / 2, x2: W / 2, y1: 0, y2: H, stroke: "#8c959f" }),
                 mk("line", { x1: X(lo), x2: X(hi), y1: H / 2, y2: H / 2, stroke: lo > 0 ? "#1a7f37" : hi < 0 ? "#cf222e" : "#0969da", "stroke-width": 3 }),
                 mk("circle", { cx: X(effect), cy: H / 2, r: 3.5, fill: "#1b1f24" }));
    return svgEl;
  }

  function renderExperiments(list) {
    const box = clear($("experiments"));
    if (!list.data.length) {
      box.append(el("p", { class: "muted" }, "No experiments yet. Define one with ",
                    el("code", {}, "embedops experiment create"), "; searches then go to POST /v1/experiments/NAME/search."));
      return;
    }
    const rows = list.data.map((e) => {
      const r = e.report;
      const decision = r ? (r.winner === "none" ? el("span", { class: "badge" }, "no decision yet")
                                                : el("span", { class: "badge ok" }, `${r.winner} wins`)) : el("span", { class: "badge bad" }, "no report");
      return el("tr", { dataset: { experiment: e.name } },
        el("th", { scope: "row" }, e.name),
        el("td", {}, el("span", { class: "badge " + (e.status === "running" ? "ok" : "") }, e.status)),
        el("td", {}, `${e.mode}${e.mode === "ab" ? " · " + e.metric : ""} · α ${e.alpha}`),
        el("td", {}, `${e.champion.model} · ${e.champion.collection}`),
        el("td", {}, `${e.challenger.model} · ${e.challenger.collection}`),
        el("td", { class: "num" }, r ? String(r.events) : "–"),
        el("td", { class: "num effect" }, r ? fmt(r.effect, 4) : "–"),
        el("td", { class: "ci" }, r ? [ciBar(r.ci[0], r.ci[1], r.effect), ` [${fmt(r.ci[0], 4)}, ${fmt(r.ci[1], 4)}]`] : "–"),
        el("td", { class: "num" }, r ? fmt(r.p_value, 3) : "–"),
        el("td", { class: "decision" }, decision, el("div", { class: "small muted" }, r ? r.note : (e.error || ""))));
    });
    box.append(table(["experiment", "status", "design", "champion", "challenger", { label: "events", num: true },
                      { label: "effect", num: true }, "95% CI (vs 0)", { label: "p", num: true }, "decision"], rows, "Experiments"));
  }

  function lineage(v) {
    const parts = [];
    if (v.kind) parts.push(v.kind);
    if (v.parent) parts.push(`from ${v.parent}`);
    else if (v.base_model) parts.push(`base ${v.base_model.name || v.base_model.spec || "?"}${v.base_model.version ? " (" + v.base_model.version + ")" : ""}`);
    if (v.data && v.data.examples) parts.push(`${v.data.examples} training examples`);
    if (v.data && v.data.fingerprint) parts.push(`data ${String(v.data.fingerprint).slice(0, 15)}…`);
    return parts.join("; ") || "–";
  }

  function evaluation(v) {
    const e = v.evaluation;
    const out = [];
    if (e && e.before !== null && e.after !== null) {
      out.push(`${e.key_metric} ${fmt(e.before, 4)} → ${fmt(e.after, 4)}` + (e.p_value !== undefined ? ` (p ${fmt(e.p_value, 3)})` : ""));
    }
    if (v.metrics) for (const [k, val] of Object.entries(v.metrics)) out.push(`${k} ${typeof val === "number" ? fmt(val, 4) : val}`);
    return out.join("; ") || "–";
  }

  function renderRegistry(reg) {
    const aliasBox = clear($("aliases"));
    if (!reg.aliases.length) aliasBox.append(el("p", { class: "muted" }, "No aliases yet: promote a version below."));
    else {
      aliasBox.append(table(["alias", "version", "history", "last change", "action"], reg.aliases.map((a) => {
        const last = a.log.length ? a.log[a.log.length - 1] : null;
        const button = el("button", { type: "button", class: "rollback", disabled: a.history.length < 2,
                                      "aria-label": `Roll ${a.alias} back to ${a.history[a.history.length - 2] || "an earlier version"}` }, "Roll back");
        button.addEventListener("click", () => ask(button, { action: "rollback", alias: a.alias, from: a.version,
                                                             to: a.history[a.history.length - 2] }));
        return el("tr", { dataset: { alias: a.alias } }, el("th", { scope: "row" }, a.alias), el("td", { class: "alias-version" }, a.version || "–"),
                  el("td", { class: "small" }, a.history.join(" → ")),
                  el("td", { class: "small" }, last ? `${last.action} at ${last.at}` : "–"), el("td", {}, button));
      }), "Aliases"));
    }
    const versionBox = clear($("versions"));
    if (!reg.versions.length) {
      versionBox.append(el("p", { class: "muted" }, "No registered versions. ", el("code", {}, "embedops train"),
                           " and ", el("code", {}, "embedops models import"), " add them."));
      return;
    }
    versionBox.append(table(["version", "aliases", "lineage", "evaluation", "quality gate", "created", "action"],
      reg.versions.slice().reverse().map((v) => {
        const gate = v.gate ? el("span", { class: "badge " + (v.gate.passed ? "ok" : "bad") }, v.gate.passed ? "passed" : "failed") : el("span", { class: "muted" }, "not measured");
        const button = el("button", { type: "button", class: "promote", "aria-label": `Promote ${v.ref}` }, "Promote…");
        button.addEventListener("click", () => ask(button, { action: "promote", version: v.ref, gateFailed: !!(v.gate && v.gate.passed === false) }));
        return el("tr", { dataset: { ref: v.ref } }, el("th", { scope: "row" }, v.ref),
          el("td", {}, v.aliases.map((a) => el("span", { class: "badge" }, a))), el("td", { class: "small" }, lineage(v)),
          el("td", { class: "small" }, evaluation(v)),
          el("td", { class: "small" }, gate, v.gate && v.gate.summary ? el("div", { class: "muted" }, v.gate.summary) : null),
          el("td", { class: "small" }, v.created_at || "–"), el("td", {}, button));
      }), "Registered versions"));
  }

  function renderAudit(list) {
    const box = clear($("audit"));
    if (!list.data.length) { box.append(el("p", { class: "muted" }, "No administrative actions yet.")); return; }
    box.append(table(["time", "action", "alias", "change", "outcome", "who", "reason"], list.data.map((a) =>
      el("tr", { dataset: { action: a.action, outcome: a.outcome } }, el("td", {}, EO.when(a.time)), el("td", {}, a.action),
         el("td", {}, a.target), el("td", {}, `${a.previous || "–"} → ${a.version || "–"}`),
         el("td", {}, el("span", { class: "badge " + (a.outcome === "done" ? "ok" : "bad") }, a.outcome),
            a.details.error ? el("div", { class: "small muted" }, a.details.error) : null),
         el("td", { class: "small" }, a.actor), el("td", { class: "small" }, a.details.reason || "")))
    , "Audit trail"));
  }

  function ask(button, action) {
    pending = action;
    opener = button;
    const dialog = $("confirm");
    $("confirm-reason").value = "";
    $("confirm-force").checked = false;
    $("confirm-force-field").hidden = !action.gateFailed;
    $("confirm-alias-field").hidden = action.action !== "promote";
    $("confirm-alias").removeAttribute("aria-invalid");
    if (action.action === "promote") {
      $("confirm-title").textContent = `Promote ${action.version}?`;
      $("confirm-text").textContent = `The alias below will point at ${action.version}` +
        (action.gateFailed ? ". Its recorded quality gate FAILED: it is refused unless you tick the box." : ".");
      $("confirm-ok").textContent = "Promote";
    } else {
      $("confirm-title").textContent = `Roll back ${action.alias}?`;
      $("confirm-text").textContent = `${action.alias} will point back at ${action.to} (now ${action.from}).`;
      $("confirm-ok").textContent = "Roll back";
    }
    dialog.showModal();
    (action.action === "promote" ? $("confirm-alias") : $("confirm-reason")).focus();
  }

  function closeDialog() {
    $("confirm").close();
    if (opener && document.contains(opener)) opener.focus();
  }

  async function confirm() {
    const action = pending;
    if (!action) return;
    const reason = $("confirm-reason").value.trim() || null;
    let body, path;
    if (action.action === "promote") {
      const alias = $("confirm-alias").value.trim();
      if (!/^[A-Za-z][\w-]*$/.test(alias)) {
        $("confirm-alias").setAttribute("aria-invalid", "true");
        $("error").textContent = "The alias must start with a letter and hold only letters, digits, '_' or '-'.";
        $("confirm-alias").focus();
        return;
      }
      body = { version: action.version, alias, force: $("confirm-force").checked, reason };
      path = "/v1/registry/promote";
    } else {
      body = { alias: action.alias, reason };
      path = "/v1/registry/rollback";
    }
    pending = null;
    closeDialog();
    clearError();
    status(action.action === "promote" ? `Promoting ${action.version}…` : `Rolling ${action.alias} back…`);
    try {
      const done = await api("POST", path, body);
      status(`${done.alias} now points at ${done.version}` + (done.previous ? ` (was ${done.previous})` : "") +
             (done.audited ? "; recorded in the audit trail." : "; the event log is off, so only the server log records it."));
    } catch (err) {
      status("");
      showError(err, action.action === "promote" ? `Promoting ${action.version}` : `Rolling back ${action.alias}`);
    }
    await loadRegistry();
  }

  async function loadExperiments() {
    try { renderExperiments(await api("GET", "/v1/experiments")); }
    catch (err) { showError(err, "Loading the experiments"); }
  }

  async function loadRegistry() {
    try {
      const [reg, audit] = await Promise.all([api("GET", "/v1/registry"),
        api("GET", "/v1/audit?limit=50").catch((err) => ({ data: [], error: err }))]);
      renderRegistry(reg);
      renderAudit(audit);
      if (audit.error) $("audit").append(el("p", { class: "muted" }, "Audit trail unavailable: " + EO.explain(audit.error)));
      document.body.dataset.registryLoads = String(Number(document.body.dataset.registryLoads || 0) + 1);
    } catch (err) {
      showError(err, "Loading the registry");
    }
  }

  EO.page(async () => {
    $("confirm-form").addEventListener("submit", (ev) => { ev.preventDefault(); confirm(); });
    $("confirm-cancel").addEventListener("click", () => { pending = null; closeDialog(); status("Cancelled."); });
    $("confirm").addEventListener("cancel", () => { pending = null; status("Cancelled."); });  // Escape
    document.addEventListener("eo:key", () => { clearError(); loadExperiments(); loadRegistry(); });
    await Promise.all([loadExperiments(), loadRegistry()]);
    document.body.dataset.ready = "true";
  });
})();
