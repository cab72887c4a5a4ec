/* Small SVG line charts for the console: time on x, one or more series, shaded bands (quantile ranges), alert
   thresholds (constant or per window, drawn as dashed red steps) and marked points (drifted windows). Each chart
   carries a text summary for screen readers and its numbers as a table. No library: about 250 lines. */
"use strict";

const EOChart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 240, M = { l: 56, r: 14, t: 12, b: 30 };
  const PALETTE = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a", "#0a7e8c"];

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
    for (const c of children) if (c) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  }

  function yTicks(lo, hi) {
    const step = niceStep(hi - lo, 5);
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    const p = (n) => String(n).padStart(2, "0");
    const hm = p(d.getHours()) + ":" + p(d.getMinutes());
    if (span < 600) return hm + ":" + p(d.getSeconds());
    if (span < 86400) return hm;
    return p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + hm;
  }

  function defaultFormat(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a < 0.001 || a >= 1e5)) return v.toExponential(2);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(3);
  }

  /* Render into `figure` (a <figure class="chart"> with a <figcaption>); returns the <svg>. */
  function render(figure, opts) {
    const caption = figure.querySelector("figcaption");
    for (const node of [...figure.childNodes]) if (node !== caption) figure.removeChild(node);
    const series = (opts.series || []).filter((s) => s.points.some((p) => p.y !== null && p.y !== undefined));
    const bands = (opts.bands || []).filter((b) => b.points.some((p) => p.lo !== null && p.hi !== null));
    const thresholds = opts.thresholds || [];
    const marks = opts.marks || [];
    const fmtY = opts.format || defaultFormat;
    const title = caption ? caption.textContent : "chart";
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "plot" });
    figure.append(root);
    if (!series.length && !bands.length) {
      root.setAttribute("aria-label", title + ": no data in this span");
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata" },
                      opts.empty || "no data in this span"));
      return root;
    }
    // Domains: x over every point; y over points, bands and thresholds (a limit far off the data still shows).
    const xs = [], ys = [];
    for (const s of series) for (const p of s.points) if (p.y !== null && p.y !== undefined) { xs.push(p.x); ys.push(p.y); }
    for (const b of bands) for (const p of b.points) if (p.lo !== null && p.hi !== null) { xs.push(p.x); ys.push(p.lo, p.hi); }
    for (const t of thresholds) {
      if (t.points) for (const p of t.points) { if (p.y !== null && p.y !== undefined) ys.push(p.y); }
      else if (t.y !== null && t.y !== undefined) ys.push(t.y);
    }
    if (opts.yMin !== undefined) ys.push(opts.yMin);
    if (opts.yMax !== undefined) ys.push(opts.yMax);
    const xFirst = Math.min(...xs), xLast = Math.max(...xs);
    let x0 = xFirst, x1 = xLast;
    const pad = opts.xPad || 30;
    if (x1 - x0 < 1e-9) { x0 -= pad; x1 += pad; }
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y1 - y0 < 1e-12) { const d = Math.abs(y0) * 0.1 || 0.1; y0 -= d; y1 += d; }
    else { const d = (y1 - y0) * 0.06; y1 += d; if (opts.yMin === undefined || y0 > opts.yMin) y0 -= d; }
    if (opts.yMin !== undefined) y0 = Math.max(y0, opts.yMin);
    if (opts.yMax !== undefined) y1 = Math.min(y1, opts.yMax);
    const ticks = yTicks(y0, y1);
    y0 = Math.min(y0, ticks[0]); y1 = Math.max(y1, ticks[ticks.length - 1]);
    const X = (x) => M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r);
    const Y = (y) => H - M.b - (y - y0) / (y1 - y0) * (H - M.t - M.b);

    const axis = svg("g", { class: "axis" });
    for (const t of ticks) {
      axis.append(svg("line", { x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t), class: "grid" }));
      axis.append(svg("text", { x: M.l - 6, y: Y(t) + 4, "text-anchor": "end" }, fmtY(t)));
    }
    const span = x1 - x0;
    const nx = Math.min(6, Math.max(2, new Set(xs).size));
    for (let i = 0; i < nx; i++) {
      const t = x0 + span * i / (nx - 1);
      axis.append(svg("line", { x1: X(t), x2: X(t), y1: H - M.b, y2: H - M.b + 4 }));
      axis.append(svg("text", { x: X(t), y: H - M.b + 16, "text-anchor": i === 0 ? "start" : i === nx - 1 ? "end" : "middle" },
                      timeLabel(t, span)));
    }
    axis.append(svg("path", { d: `M${M.l},${M.t}V${H - M.b}H${W - M.r}`, fill: "none" }));
    if (opts.yLabel) axis.append(svg("text", { x: 12, y: M.t + (H - M.t - M.b) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${M.t + (H - M.t - M.b) / 2})` }, opts.yLabel));
    root.append(axis);

    const legend = document.createElement("ul");
    legend.className = "legend";
    const addLegend = (name, color, cls) => {
      const li = document.createElement("li");
      li.textContent = name;
      if (cls) li.className = cls;
      li.style.setProperty("--swatch", color);
      legend.append(li);
    };

    bands.forEach((b, i) => {
      const pts = b.points.filter((p) => p.lo !== null && p.hi !== null);
      const color = b.color || PALETTE[i % PALETTE.length];
      const top = pts.map((p, j) => (j ? "L" : "M") + X(p.x).toFixed(1) + "," + Y(p.hi).toFixed(1)).join("");
      const bottom = pts.slice().reverse().map((p) => "L" + X(p.x).toFixed(1) + "," + Y(p.lo).toFixed(1)).join("");
      if (pts.length === 1) {
        root.append(svg("rect", { x: X(pts[0].x) - 4, width: 8, y: Y(pts[0].hi), height: Math.max(1, Y(pts[0].lo) - Y(pts[0].hi)),
                                  fill: color, "fill-opacity": b.opacity || 0.2, class: "band" }));
      } else {
        root.append(svg("path", { d: top + bottom + "Z", fill: color, "fill-opacity": b.opacity || 0.2, class: "band" }));
      }
      addLegend(b.name, color, "band");
    });

    thresholds.forEach((t) => {
      let d;
      if (t.points) {  // per-window limits: a step line across each window
        const pts = t.points.filter((p) => p.y !== null && p.y !== undefined);
        if (!pts.length) return;
        d = pts.map((p, j) => (j ? "L" : "M") + X(p.x).toFixed(1) + "," + Y(p.y).toFixed(1)).join("");
        if (pts.length === 1) d = `M${M.l},${Y(pts[0].y).toFixed(1)}H${W - M.r}`;
      } else {
        d = `M${M.l},${Y(t.y).toFixed(1)}H${W - M.r}`;
      }
      const path = svg("path", { d, class: "threshold" }, svg("title", {}, t.name));
      root.append(path);
      addLegend(t.name, "#cf222e", "dashed threshold-legend");
    });

    series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      let d = "", pen = false;
      for (const p of s.points) {
        if (p.y === null || p.y === undefined) { pen = false; continue; }
        d += (pen ? "L" : "M") + X(p.x).toFixed(1) + "," + Y(p.y).toFixed(1);
        pen = true;
      }
      root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2,
                                "stroke-dasharray": s.dash ? "5 4" : null, class: "line" }));
      const g = svg("g", { class: "points", "data-series": s.name });
      for (const p of s.points) {
        if (p.y === null || p.y === undefined) continue;
        g.append(svg("circle", { cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 3, fill: color, class: "pt" },
                     svg("title", {}, `${s.name}: ${fmtY(p.y)} at ${timeLabel(p.x, 0)}`)));
      }
      root.append(g);
      addLegend(s.name, color, s.dash ? "dashed" : "");
    });

    if (marks.length) {
      const g = svg("g", { class: "marks" });
      for (const m of marks) {
        g.append(svg("circle", { cx: X(m.x).toFixed(1), cy: Y(m.y).toFixed(1), r: 7, class: "drifted" },
                     svg("title", {}, m.label || "alert")));
      }
      root.append(g);
      addLegend("drifted window", "#cf222e", "");
    }

    figure.append(legend);
    figure.append(table(series, bands, thresholds, fmtY, span));
    const latest = series.length ? series[0].points.filter((p) => p.y !== null && p.y !== undefined).slice(-1)[0] : null;
    root.setAttribute("aria-label", `${title}: ${new Set(xs).size} windows from ${timeLabel(xFirst, span)}`
      + ` to ${timeLabel(xLast, span)}` + (latest ? `; latest ${series[0].name} ${fmtY(latest.y)}` : "")
      + (marks.length ? `; ${marks.length} flagged` : ""));
    return root;
  }

  function table(series, bands, thresholds, fmtY, span) {
    const times = [...new Set([...series.flatMap((s) => s.points.map((p) => p.x)),
                               ...bands.flatMap((b) => b.points.map((p) => p.x))])].sort((a, b) => a - b);
    const cols = [...bands.map((b) => ({ name: b.name, get: (x) => { const p = b.points.find((q) => q.x === x); return p && p.lo !== null ? fmtY(p.lo) + " – " + fmtY(p.hi) : "–"; } })),
                  ...series.map((s) => ({ name: s.name, get: (x) => { const p = s.points.find((q) => q.x === x); return p ? fmtY(p.y) : "–"; } })),
                  ...thresholds.filter((t) => t.points).map((t) => ({ name: t.name, get: (x) => { const p = t.points.find((q) => q.x === x); return p ? fmtY(p.y) : "–"; } }))];
    const details = document.createElement("details");
    details.className = "data";
    const summary = document.createElement("summary");
    summary.textContent = "Data table";
    details.append(summary);
    const tbl = document.createElement("table");
    const head = document.createElement("tr");
    for (const name of ["window start", ...cols.map((c) => c.name)]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      head.append(th);
    }
    tbl.append(head);
    for (const x of times) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = timeLabel(x, span);
      tr.append(th);
      for (const c of cols) {
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = c.get(x);
        tr.append(td);
      }
      tbl.append(tr);
    }
    const constant = thresholds.filter((t) => !t.points);
    details.append(tbl);
    if (constant.length) {
      const p = document.createElement("p");
      p.textContent = "Limits: " + constant.map((t) => `${t.name} = ${fmtY(t.y)}`).join("; ");
      details.append(p);
    }
    return details;
  }

  return { render, PALETTE };
})();
