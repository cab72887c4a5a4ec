/* Search page: query a served collection (dense or hybrid), see why each result ranks where it does, open results
   (a click) and judge them (relevant / not relevant): both are POST /v1/feedback with the search's request id.
   With "compare with", the same query runs on a second collection (another model version) side by side. */
"use strict";

(() => {
  const { api, el, clear, fmt, showError, clearError, status } = EO;
  const $ = (id) => document.getElementById(id);
  const MAX_K = 100;
  let collections = [];
  let listed = false;  // whether `collections` came from the server yet
  let searches = 0;

  function selectedMode() {
    const checked = document.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "dense";
  }

  function fillCollections(select, wanted) {
    const model = $("model").value;
    const keep = wanted !== undefined ? wanted : select.value;
    clear(select);
    const shown = collections.filter((c) => !model || c.model === model);
    for (const c of shown) {
      select.append(el("option", { value: c.name }, `${c.name} (${c.documents} docs, ${c.model})`));
    }
    if (keep && !collections.some((c) => c.name === keep)) {
      // A link may name a collection this server does not serve: keep it selectable, the search says so.
      select.append(el("option", { value: keep }, listed ? `${keep} (not listed by this server)` : keep));
    }
    if (keep && [...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  async function loadLists(params) {
    try {
      const [models, cols] = await Promise.all([api("GET", "/v1/models"), api("GET", "/v1/collections")]);
      collections = cols.data;
      listed = true;
      const modelSelect = $("model");
      const current = modelSelect.value;
      clear(modelSelect).append(el("option", { value: "" }, "any model"));
      for (const m of models.data) modelSelect.append(el("option", { value: m.id }, m.id));
      modelSelect.value = current;
      fillCollections($("collection"), params.get("collection") || undefined);
      fillCollections($("collection-b"), params.get("compare") || (collections[1] && collections[1].name) || undefined);
      if (!collections.length) status("This server serves no collection yet (create one with POST /v1/collections).");
      performance.mark("eo-lists");
      return true;
    } catch (err) {
      showError(err, "Loading the collections");
      return false;
    }
  }

  function fail(input, message) {
    input.setAttribute("aria-invalid", "true");
    $("error").textContent = message;
    input.focus();
  }

  async function runSearch() {
    clearError();
    const qInput = $("q");
    qInput.removeAttribute("aria-invalid");
    $("k").removeAttribute("aria-invalid");
    const query = qInput.value;
    if (!query.trim()) return fail(qInput, "Type a query to search: the query is empty.");
    const k = Number($("k").value);
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) return fail($("k"), `Results must be a whole number from 1 to ${MAX_K}.`);
    const first = $("collection").value;
    if (!first) {
      const model = $("model").value;
      return fail($("collection"), model ? `No served collection was embedded with ${model}: choose another model.`
                                         : "There is no collection to search on this server.");
    }
    const mode = selectedMode();
    const compare = $("compare").checked && $("collection-b").value;
    const names = compare ? [first, $("collection-b").value] : [first];
    const results = $("results");
    results.setAttribute("aria-busy", "true");
    status("Searching…");
    const answers = await Promise.all(names.map((name) => api("POST", `/v1/collections/${encodeURIComponent(name)}/search`,
      { query, k, mode, user: EO.user() }).then((body) => ({ name, body }), (err) => ({ name, err }))));
    clear(results);
    const ok = answers.filter((a) => a.body);
    const idsOf = (a) => (a && a.body ? a.body.data.map((h) => h.id) : null);
    answers.forEach((a, i) => {
      const other = answers.length > 1 ? idsOf(answers[1 - i]) : null;
      results.append(a.body ? renderColumn(a.name, a.body, query, other, answers.length > 1 ? answers[1 - i].name : null)
                            : renderFailure(a.name, a.err));
    });
    const failed = answers.filter((a) => a.err);
    if (failed.length) {
      showError(failed[0].err, `Search in ${failed[0].name}`);
    }
    results.setAttribute("aria-busy", "false");
    searches += 1;
    document.body.dataset.searches = String(searches);
    performance.mark("eo-results");
    status(ok.length ? ok.map((a) => `${a.body.data.length} results from ${a.name} (${a.body.mode})`).join("; ") : "");
    const params = new URLSearchParams({ q: query, collection: first, mode, k: String(k) });
    if (compare) params.set("compare", names[1]);
    history.replaceState(null, "", "?" + params.toString());
    if (mode === "hybrid") ok.forEach((a) => explainColumn(a.name, a.body, query));
  }

  function renderFailure(name, err) {
    return el("div", { class: "column", dataset: { collection: name } },
      el("h3", {}, name), el("p", { class: "muted" }, "No results: " + EO.explain(err) + "."));
  }

  function renderColumn(name, body, query, otherIds, otherName) {
    const list = el("ol", { class: "hits", "aria-label": `Results from ${name}` });
    const top = body.data.length ? Math.max(...body.data.map((h) => h.score)) : 1;
    body.data.forEach((hit, i) => list.append(renderHit(hit, i + 1, body, top, otherIds, otherName)));
    const heading = el("h3", {}, `${name} `, el("span", { class: "muted small" }, `${body.model} · ${body.mode}`));
    const note = body.data.length ? null : el("p", { class: "muted" }, "No document matched.");
    return el("div", { class: "column", dataset: { collection: name, requestId: body.request_id || "" } },
              heading, note, list);
  }

  function scoreBar(value, top, cls) {
    const width = 120, fill = top > 0 ? Math.max(0, Math.min(1, value / top)) * width : 0;
    const NS = "http://www.w3.org/2000/svg";
    const svgEl = document.createElementNS(NS, "svg");
    svgEl.setAttribute("width", width); svgEl.setAttribute("height", 8); svgEl.setAttribute("aria-hidden", "true");
    const bg = document.createElementNS(NS, "rect");
    bg.setAttribute("width", width); bg.setAttribute("height", 8); bg.setAttribute("fill", "#eaeef2");
    const fg = document.createElementNS(NS, "rect");
    fg.setAttribute("width", fill.toFixed(1)); fg.setAttribute("height", 8); fg.setAttribute("class", cls);
    svgEl.append(bg, fg);
    return svgEl;
  }

  function thumb(down) {
    // Drawn, not an emoji: a server's headless browser or a kiosk may have no emoji font.
    const NS = "http://www.w3.org/2000/svg";
    const icon = document.createElementNS(NS, "svg");
    icon.setAttribute("viewBox", "0 0 24 24"); icon.setAttribute("width", "14"); icon.setAttribute("height", "14");
    icon.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", "M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 7.6 6.6C7.2 7 7 7.5 7 8v11c0 1.1.9 2 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.2.2-.5.2-.8v-2z");
    path.setAttribute("fill", "currentColor");
    if (down) path.setAttribute("transform", "rotate(180 12 12)");
    icon.append(path);
    return icon;
  }

  /* A heading for a result: its title when the collection stores one, else the start of its text, cut at a word. */
  function headline(hit) {
    const meta = hit.metadata || {};
    if (typeof meta.title === "string" && meta.title.trim()) return meta.title;
    const text = (hit.text || hit.id).trim();
    if (text.length <= 100) return text;
    const cut = text.slice(0, 100);
    return cut.slice(0, cut.lastIndexOf(" ") > 40 ? cut.lastIndexOf(" ") : 100) + "…";
  }

  function renderHit(hit, rank, body, top, otherIds, otherName) {
    const meta = hit.metadata || {};
    const title = headline(hit);
    const text = el("p", { class: "hit-text collapsed", id: `text-${body.request_id}-${rank}` }, hit.text || "");
    const li = el("li", { class: "hit", dataset: { id: hit.id, rank: String(rank), feedback: "" } });
    const titleButton = el("button", { type: "button", class: "hit-title", "aria-expanded": "false",
                                       "aria-controls": text.id }, title);
    titleButton.addEventListener("click", () => openHit(li, titleButton, text, hit, rank, body));
    const why = el("div", { class: "why" },
      body.mode === "hybrid"
        ? [el("span", {}, `fused score ${fmt(hit.score)} `), scoreBar(hit.score, top, "part-score"),
           el("span", { class: "explain muted" }, " (dense and keyword parts loading…)")]
        : [el("span", {}, `${body.mode === "keyword" ? "BM25" : "cosine similarity"} ${fmt(hit.score)} `),
           scoreBar(hit.score, top, "part-score")]);
    let badge = null;
    if (otherIds) {
      const at = otherIds.indexOf(hit.id);
      badge = at < 0 ? el("span", { class: "badge new" }, `not in ${otherName}'s top ${otherIds.length}`)
        : el("span", { class: "badge " + (at + 1 > rank ? "up" : at + 1 < rank ? "down" : "") },
             `#${at + 1} in ${otherName}`);
    }
    const metaList = el("dl", { class: "meta" });
    for (const [key, value] of Object.entries(meta)) {
      if (key === "title") continue;
      metaList.append(el("div", {}, el("dt", {}, key + ":"), el("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value))));
    }
    const up = el("button", { type: "button", class: "thumb-up", "aria-pressed": "false",
                              "aria-label": `Relevant: ${title}` }, thumb(false), " relevant");
    const down = el("button", { type: "button", class: "thumb-down", "aria-pressed": "false",
                                "aria-label": `Not relevant: ${title}` }, thumb(true), " not relevant");
    up.addEventListener("click", () => judge(li, up, down, "relevant", hit, rank, body));
    down.addEventListener("click", () => judge(li, down, up, "irrelevant", hit, rank, body));
    li.append(
      el("div", { class: "hit-head" }, el("span", { class: "hit-rank" }, `#${rank}`), titleButton, badge),
      el("div", { class: "hit-id" }, hit.id), why, text, metaList.childNodes.length ? metaList : null,
      el("div", { class: "hit-actions" }, up, down));
    return li;
  }

  async function sendFeedback(kind, hit, rank, body) {
    if (!body.request_id) throw new EO.ApiError(0, "this search has no request id (the event log is off)");
    return api("POST", "/v1/feedback", { request_id: body.request_id, kind, doc_id: hit.id, rank, user: EO.user() });
  }

  function noteFeedback(li, kind) {
    const kinds = new Set((li.dataset.feedback || "").split(" ").filter(Boolean));
    kinds.add(kind);
    li.dataset.feedback = [...kinds].join(" ");
  }

  async function openHit(li, button, text, hit, rank, body) {
    const opening = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(opening));
    text.classList.toggle("collapsed", !opening);
    if (!opening || li.classList.contains("clicked")) return;
    li.classList.add("clicked");
    try {
      await sendFeedback("click", hit, rank, body);
      noteFeedback(li, "click");
      status(`Click on result #${rank} (${hit.id}) recorded.`);
    } catch (err) {
      li.classList.remove("clicked");
      showError(err, "Recording the click");
    }
  }

  async function judge(li, pressed, other, kind, hit, rank, body) {
    if (pressed.getAttribute("aria-pressed") === "true") return;
    try {
      await sendFeedback(kind, hit, rank, body);
      pressed.setAttribute("aria-pressed", "true");
      other.setAttribute("aria-pressed", "false");
      noteFeedback(li, kind);
      status(`Result #${rank} (${hit.id}) marked ${kind === "relevant" ? "relevant" : "not relevant"}.`);
    } catch (err) {
      showError(err, "Recording the feedback");
    }
  }

  async function explainColumn(name, body, query) {
    if (!body.data.length) return;
    const column = [...document.querySelectorAll("#results .column")].find((c) => c.dataset.collection === name
      && c.dataset.requestId === (body.request_id || ""));
    try {
      const why = await api("POST", `/v1/collections/${encodeURIComponent(name)}/explain`,
                            { query, ids: body.data.map((h) => h.id) });
      const byId = new Map(why.data.map((d) => [d.id, d]));
      for (const li of column ? column.querySelectorAll("li.hit") : []) {
        const d = byId.get(li.dataset.id);
        const slot = li.querySelector(".explain");
        if (!d || !slot) continue;
        const part = (label, score, rank, contribution, cls) => el("span", { class: cls },
          score === null ? `${label}: not in its top ${why.candidates}` :
          `${label} ${fmt(score)} (#${rank}) adds ${fmt(contribution)}`);
        clear(slot).append(" = ", part("dense", d.dense_score, d.dense_rank, d.dense_part, "why-dense"), " + ",
          why.keyword_available ? part("keyword", d.keyword_score, d.keyword_rank, d.keyword_part, "why-keyword")
                                : "keyword: no keyword index",
          ` (${why.fusion})`);
        slot.classList.remove("muted");
        li.dataset.explained = "true";
      }
    } catch (err) {
      for (const slot of column ? column.querySelectorAll(".explain") : []) slot.textContent = " (parts unavailable: " + EO.explain(err) + ")";
    }
  }

  EO.page(async () => {
    const params = new URLSearchParams(location.search);
    if (params.get("q")) $("q").value = params.get("q");
    if (params.get("k")) $("k").value = params.get("k");
    if (params.get("mode") === "hybrid") document.querySelector('input[name="mode"][value="hybrid"]').checked = true;
    if (params.get("compare")) $("compare").checked = true;
    $("collection-b").disabled = !$("compare").checked;
    $("compare").addEventListener("change", () => { $("collection-b").disabled = !$("compare").checked; });
    $("model").addEventListener("change", () => { fillCollections($("collection")); fillCollections($("collection-b")); });
    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); runSearch(); });
    document.addEventListener("eo:key", () => loadLists(new URLSearchParams(location.search)));
    // A link with a query and a collection searches at once, while the lists load (one round trip less).
    const direct = params.get("q") && params.get("collection");
    if (direct) {
      fillCollections($("collection"), params.get("collection"));
      if (params.get("compare")) fillCollections($("collection-b"), params.get("compare"));
    }
    const searching = direct ? runSearch() : null;
    const loaded = await loadLists(params);
    await searching;
    document.body.dataset.ready = "true";
    if (loaded && params.get("q") && !direct) runSearch();
  });
})();
