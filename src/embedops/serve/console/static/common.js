/* embedops console: what every page shares. The API key (sessionStorage), fetch with the key, messages, DOM
   helpers. Text always goes in through textContent, never innerHTML, so a document or query can never inject
   markup. */
"use strict";

const EO = (() => {
  const KEY = "embedops.apiKey";
  const USER = "embedops.consoleUser";

  class ApiError extends Error {
    constructor(status, message, code, param) {
      super(message);
      this.status = status;
      this.code = code || null;
      this.param = param || null;
    }
  }

  function key() {
    try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }

  function setKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage off: the key lives for this page only */ }
    showKeyState();
    document.dispatchEvent(new CustomEvent("eo:key"));
  }

  /* A per-session pseudonymous user id: feedback and experiments need one, and a person is never identified. */
  function user() {
    try {
      let id = sessionStorage.getItem(USER);
      if (!id) {
        id = "console-" + Math.random().toString(36).slice(2, 10);
        sessionStorage.setItem(USER, id);
      }
      return id;
    } catch (e) { return "console"; }
  }

  /* Call the API. Resolves with the parsed JSON; rejects with ApiError carrying the server's own message. */
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const k = key();
    if (k) headers["Authorization"] = "Bearer " + k;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "cannot reach the server (" + e.message + ")", "network_error");
    }
    let data = null;
    const text = await resp.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!resp.ok) {
      const err = data && data.error ? data.error : {};
      const message = err.message || ("the server answered HTTP " + resp.status);
      throw new ApiError(resp.status, message, err.code, err.param);
    }
    return data;
  }

  function explain(err) {
    if (!(err instanceof ApiError)) return "unexpected problem in the page: " + (err && err.message ? err.message : err);
    if (err.status === 401) return "a valid API key is required: type it in the API key field at the top of the page";
    const tail = err.status ? " (HTTP " + err.status + (err.code ? ", " + err.code : "") + ")" : "";
    let text = err.message + tail;
    if (err.status === 413) text += ". Shorten the input and try again";
    if (err.status === 429 || err.code === "not_ready") text += ". Try again in a few seconds";
    return text;
  }

  /* Show an error in the page's alert region (read out by screen readers), with what was being done. */
  function showError(err, doing) {
    const box = document.getElementById("error");
    const text = (doing ? doing + " failed: " : "") + explain(err);
    if (box) box.textContent = text;
    if (err instanceof ApiError && err.status === 401) {
      const input = document.getElementById("api-key");
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    }
    return text;
  }

  function clearError() {
    const box = document.getElementById("error");
    if (box) box.textContent = "";
  }

  function status(text) {
    const box = document.getElementById("status");
    if (box) box.textContent = text || "";
  }

  /* el("li", {class: "hit", dataset: {id: "x"}, onclick: fn}, "text", child, ...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (typeof value !== "number") return String(value);
    const d = digits === undefined ? 3 : digits;
    if (value !== 0 && Math.abs(value) < Math.pow(10, -d)) return value.toExponential(1);
    return value.toFixed(d);
  }

  function pct(value, digits) {
    if (value === null || value === undefined) return "–";
    return (100 * value).toFixed(digits === undefined ? 1 : digits) + "%";
  }

  function when(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "–";
    return new Date(epochSeconds * 1000).toLocaleString();
  }

  function showKeyState() {
    const state = document.getElementById("key-state");
    if (state) state.textContent = key() ? "key set for this session" : "no key";
  }

  function initKeyForm() {
    const form = document.getElementById("key-form");
    if (!form) return;
    const input = document.getElementById("api-key");
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      input.removeAttribute("aria-invalid");
      setKey(input.value.trim());
      input.value = "";
      clearError();
    });
    document.getElementById("key-forget").addEventListener("click", () => { setKey(""); input.value = ""; });
    showKeyState();
  }

  /* Each page registers its start function; it runs once the DOM is ready (scripts are deferred). */
  function page(start) {
    const run = () => { initKeyForm(); start(); };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  }

  return { ApiError, api, key, setKey, user, showError, clearError, status, el, append, clear, fmt, pct, when,
           explain, page };
})();
