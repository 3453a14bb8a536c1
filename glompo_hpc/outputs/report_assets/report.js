// glompo-hpc report: plots, timeline and table drawn from the JSON in #run-data. No libraries,
// no network: the page must open offline from a file. Written for glompo_hpc.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const STATE_COLOURS = {alive: "#2a2", stopped: "#d80", converged: "#26c", crashed: "#c22", forced: "#c22", other: "#888"};
  const fmt = (v) => (v === null || v === undefined) ? "-" : (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0))
    ? v.toExponential(4) : String(+v.toPrecision(7));
  const clock = (t) => (t === null || t === undefined) ? "-" : new Date(t * 1000).toLocaleString();
  const hms = (t) => (t === null || t === undefined) ? "-" : new Date(t * 1000).toLocaleTimeString();
  // loops, not Math.min(...xs): spreading 10^5 values overflows the call stack
  const minOf = (xs) => xs.reduce((a, b) => (b < a ? b : a), Infinity);
  const maxOf = (xs) => xs.reduce((a, b) => (b > a ? b : a), -Infinity);
  const t0 = minOf(data.sessions.concat(data.optimizers.map((o) => o.t_start).filter((t) => t !== null)));
  const el = (tag, attrs, text) => { const e = document.createElement(tag); Object.assign(e, attrs || {});
    if (text !== undefined) e.textContent = text; return e; };

  function fillList(id, pairs) {
    const dl = document.getElementById(id);
    for (const [k, v] of pairs) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
  }

  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1, step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  // A line chart on a canvas: drag selects an x range (zoom), double-click resets, hover shows the nearest point.
  class Chart {
    constructor(canvas, tip, series, logBox) {
      Object.assign(this, {canvas, tip, series, logBox, log: false, drag: null, pad: {l: 70, r: 12, t: 10, b: 34}});
      const xs = series.flatMap((s) => s.x);
      this.full = xs.length ? [minOf(xs), maxOf(xs)] : [0, 1];
      if (this.full[0] === this.full[1]) this.full = [this.full[0] - 1, this.full[1] + 1];
      this.view = this.full.slice();
      logBox.addEventListener("change", () => { this.log = logBox.checked; this.draw(); });
      canvas.addEventListener("mousedown", (e) => { this.drag = {x0: this.px(e), x1: this.px(e)}; });
      canvas.addEventListener("mousemove", (e) => this.move(e));
      canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      window.addEventListener("mouseup", () => this.release());
      canvas.addEventListener("dblclick", () => { this.view = this.full.slice(); this.draw(); });
      this.draw();
    }
    px(e) { const r = this.canvas.getBoundingClientRect(); return (e.clientX - r.left) * this.canvas.width / r.width; }
    py(e) { const r = this.canvas.getBoundingClientRect(); return (e.clientY - r.top) * this.canvas.height / r.height; }
    ty(v) { return this.log ? Math.log10(v) : v; }
    visible() {  // [series, i] pairs inside the x view (and > 0 on a log scale)
      const out = [];
      this.series.forEach((s, k) => s.x.forEach((x, i) => {
        if (x >= this.view[0] && x <= this.view[1] && (!this.log || s.y[i] > 0)) out.push([k, i]); }));
      return out;
    }
    draw() {
      const c = this.canvas.getContext("2d"), W = this.canvas.width, H = this.canvas.height, p = this.pad;
      c.clearRect(0, 0, W, H);
      const pts = this.visible();
      const ys = pts.map(([k, i]) => this.ty(this.series[k].y[i]));
      let lo = ys.length ? minOf(ys) : 0, hi = ys.length ? maxOf(ys) : 1;
      if (lo === hi) { lo -= 1; hi += 1; }
      this.yr = [lo, hi];
      const sx = (x) => p.l + (x - this.view[0]) / (this.view[1] - this.view[0]) * (W - p.l - p.r);
      const sy = (y) => H - p.b - (y - lo) / (hi - lo) * (H - p.t - p.b);
      Object.assign(this, {sx, sy});
      c.strokeStyle = "#ccc"; c.fillStyle = "#444"; c.font = "12px sans-serif"; c.lineWidth = 1;
      for (const v of niceTicks(lo, hi, 6)) {
        c.beginPath(); c.moveTo(p.l, sy(v)); c.lineTo(W - p.r, sy(v)); c.stroke();
        c.textAlign = "right"; c.fillText(this.log ? "1e" + v : fmt(v), p.l - 4, sy(v) + 4);
      }
      for (const v of niceTicks(this.view[0], this.view[1], 8)) {
        c.textAlign = "center"; c.fillText(fmt(v), sx(v), H - p.b + 16);
      }
      c.fillText("evaluation (call id)", (W + p.l) / 2, H - 4);
      c.save(); c.beginPath(); c.rect(p.l, p.t, W - p.l - p.r, H - p.t - p.b); c.clip();
      let drawn = 0;
      this.series.forEach((s, k) => {
        c.strokeStyle = s.colour; c.lineWidth = s.width || 1; c.beginPath();
        let first = true, lastY = null;
        s.x.forEach((x, i) => {
          if (this.log && !(s.y[i] > 0)) { first = true; return; }
          const X = sx(x), Y = sy(this.ty(s.y[i]));
          if (first) c.moveTo(X, Y); else { if (s.step) c.lineTo(X, lastY); c.lineTo(X, Y); }
          first = false; lastY = Y; drawn += 1;
        });
        c.stroke();
      });
      c.restore();
      if (this.drag && Math.abs(this.drag.x1 - this.drag.x0) > 2) {
        c.fillStyle = "rgba(60,120,220,0.15)";
        c.fillRect(Math.min(this.drag.x0, this.drag.x1), p.t, Math.abs(this.drag.x1 - this.drag.x0), H - p.t - p.b);
      }
      this.canvas.dataset.pointsDrawn = String(drawn);
      this.canvas.dataset.view = this.view.join(",");
    }
    move(e) {
      if (this.drag) { this.drag.x1 = this.px(e); this.draw(); return; }
      const X = this.px(e), Y = this.py(e);
      let best = null, bestD = 400;  // within 20 px
      for (const [k, i] of this.visible()) {
        const s = this.series[k], dx = this.sx(s.x[i]) - X, dy = this.sy(this.ty(s.y[i])) - Y, d = dx * dx + dy * dy;
        if (d < bestD) { best = [k, i]; bestD = d; }
      }
      if (!best) { this.tip.style.display = "none"; return; }
      const s = this.series[best[0]], r = this.canvas.getBoundingClientRect();
      this.tip.textContent = `${s.name}: evaluation ${s.x[best[1]]}, fx ${fmt(s.y[best[1]])}`;
      this.tip.style.left = (e.clientX - r.left + 12) + "px"; this.tip.style.top = (e.clientY - r.top + 12) + "px";
      this.tip.style.display = "block";
    }
    release() {
      if (!this.drag) return;
      const W = this.canvas.width, p = this.pad, [a, b] = [this.drag.x0, this.drag.x1].sort((u, v) => u - v);
      this.drag = null;
      if (b - a > 5) {
        const x = (P) => this.view[0] + (Math.min(Math.max(P, p.l), W - p.r) - p.l) / (W - p.l - p.r) * (this.view[1] - this.view[0]);
        this.view = [x(a), x(b)];
      }
      this.draw();
    }
  }

  function timeline() {
    if (!isFinite(t0)) { document.getElementById("timeline").textContent = "no optimizer has started yet"; return; }
    const opts = data.optimizers, W = 900, row = Math.max(2, Math.min(14, 400 / Math.max(opts.length, 1)));
    const H = 30 + row * opts.length + 20;
    const ends = opts.map((o) => o.t_end).concat(data.checkpoints.map((c) => c.time), [Date.now() / 1000])
      .filter((t) => t !== null);
    const t1 = data.running ? maxOf(ends) : maxOf(ends.slice(0, -1).concat([t0 + 1]));
    const sx = (t) => 50 + (t - t0) / Math.max(t1 - t0, 1e-9) * (W - 60);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const add = (tag, attrs, title) => { const e = document.createElementNS(ns, tag);
      for (const k in attrs) e.setAttribute(k, attrs[k]);
      if (title) { const t = document.createElementNS(ns, "title"); t.textContent = title; e.appendChild(t); }
      svg.appendChild(e); return e; };
    opts.forEach((o, j) => {
      const end = o.t_end === null ? t1 : o.t_end, why = o.stopper ? "stopper: " + o.stopper : o.end;
      add("rect", {x: sx(o.t_start), y: 20 + j * row, width: Math.max(sx(end) - sx(o.t_start), 1), height: Math.max(row - 1, 1),
        fill: STATE_COLOURS[o.state] || "#888", class: "opt-bar"},
        `optimizer ${o.id} (${o.type}): ${o.state}; started ${clock(o.t_start)}` +
        (o.t_end === null ? "" : `, ended ${clock(o.t_end)}: ${why}`));
    });
    data.sessions.forEach((t, k) => add("line", {x1: sx(t), x2: sx(t), y1: 10, y2: H - 18, stroke: "#000",
      "stroke-dasharray": "4 3", class: "session-line"}, `session ${k + 1} started ${clock(t)}`));
    data.checkpoints.filter((c) => c.time !== null).forEach((c) => add("line", {x1: sx(c.time), x2: sx(c.time), y1: 10,
      y2: H - 18, stroke: "#26c", class: "checkpoint-line"}, `checkpoint ${c.name} at ${c.f_counter ?? "?"} evaluations, ${clock(c.time)}`));
    for (const v of niceTicks(0, t1 - t0, 8)) {
      const t = add("text", {x: sx(t0 + v), y: H - 4, "text-anchor": "middle", "font-size": 11}); t.textContent = v + " s";
    }
    document.getElementById("timeline").appendChild(svg);
  }

  function table() {
    const body = document.querySelector("#opt-table tbody");
    const rows = data.optimizers.map((o) => ({...o, why: o.state === "alive" ? "" : (o.stopper ? "stopper: " + o.stopper : o.end)}));
    const render = () => {
      body.textContent = "";
      for (const o of rows) {
        const tr = el("tr");
        tr.appendChild(el("td", {className: "num"}, String(o.id)));
        tr.appendChild(el("td", {}, o.type));
        tr.appendChild(el("td", {className: o.state}, o.state));
        tr.appendChild(el("td", {className: "num", title: o.best === null ? "" : String(o.best)}, o.best === null ? "-" : String(o.best)));
        tr.appendChild(el("td", {className: "num"}, o.evals.toLocaleString("en")));
        tr.appendChild(el("td", {title: clock(o.t_start)}, hms(o.t_start)));
        tr.appendChild(el("td", {title: clock(o.t_end)}, hms(o.t_end)));
        tr.appendChild(el("td", {}, o.why));
        body.appendChild(tr);
      }
    };
    document.querySelectorAll("#opt-table th").forEach((th) => th.addEventListener("click", () => {
      const key = th.dataset.key, numeric = th.dataset.type === "num";
      const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      document.querySelectorAll("#opt-table th").forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      rows.sort((a, b) => {
        const u = a[key], v = b[key];
        if (u === null || u === undefined) return 1;  // missing values last either way
        if (v === null || v === undefined) return -1;
        return dir * (numeric ? u - v : String(u).localeCompare(String(v)));
      });
      render();
    }));
    render();
  }

  function events() {
    const ul = document.getElementById("events");
    const items = data.sessions.map((t, k) => [t, `session ${k + 1} started ${clock(t)}` + (k ? " (resumed: requeue)" : "")])
      .concat(data.checkpoints.map((c) => [c.time ?? Infinity,
        `checkpoint ${c.name}: ${c.f_counter ?? "?"} evaluations` + (c.time ? `, ${clock(c.time)}` : " (no longer on disk)")]));
    items.sort((a, b) => a[0] - b[0]);
    for (const [, text] of items) ul.appendChild(el("li", {}, text));
    if (!items.length) ul.appendChild(el("li", {}, "none"));
  }

  document.getElementById("title").textContent = "glompo-hpc report: " + data.title;
  document.getElementById("subtitle").textContent = `${data.workdir}; read ${data.generated}` +
    (data.running ? " while the run was in progress" : "");
  fillList("outcome", data.outcome);
  fillList("settings", data.settings);
  const charts = {
    best: new Chart(document.getElementById("best-chart"), document.getElementById("best-tip"),
      [{name: "best so far", x: data.best.x, y: data.best.y, colour: "#c22", width: 2, step: true}],
      document.getElementById("best-log")),
    trajectories: new Chart(document.getElementById("traj-chart"), document.getElementById("traj-tip"),
      data.optimizers.map((o, k) => ({name: `optimizer ${o.id} (${o.type})`, x: o.x, y: o.y,
        colour: `hsl(${(k * 137.5) % 360},65%,45%)`})), document.getElementById("traj-log")),
  };
  timeline();
  table();
  events();
  window.glompoReport = {charts, data};
})();
