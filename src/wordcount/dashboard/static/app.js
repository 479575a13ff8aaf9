// wordcount dashboard: renders the snapshots /events streams (server-sent events).
// Every value from the server (job names, paths, words, reasons, worker names) goes into the
// page as text: document.createTextNode / textContent, never as HTML. No dependency, no build.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// el("td", {class: "num"}, "text", node, ...): an element whose children are text or nodes
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function table(headers, rows, numeric) {
  const num = new Set(numeric || []);
  const head = el("tr", {}, ...headers.map((h) => el("th", {}, h)));
  const body = rows.map((r) => el("tr", r.attrs || {}, ...r.cells.map((c, i) =>
    el("td", num.has(i) ? {class: "num"} : {}, c))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function empty(text) { return el("p", {class: "muted"}, text); }

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function clock(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

function secs(s) { return s === null || s === undefined ? "" : Number(s).toFixed(1) + " s"; }

function stateCell(state) { return el("span", {class: "state-" + state}, state); }

function progressCell(j) {
  const total = j.total || 0;
  const bar = el("span", {class: "bar"});
  const done = el("span"); const dead = el("span", {class: "dead"});
  if (total) {
    done.style.width = (100 * j.done / total) + "%";
    dead.style.left = (100 * j.done / total) + "%";
    dead.style.width = (100 * j.dead / total) + "%";
  }
  bar.append(done, dead);
  return el("span", {}, bar, `${j.done}/${total} done, ${j.dead} dead, ${j.pending} held`);
}

function jobLink(name) {
  return el("a", {href: "#job=" + encodeURIComponent(name), class: "job-link"}, name);
}

// -- the overview -------------------------------------------------------------------------

function renderJobs(jobs) {
  if (!jobs.length) return $("jobs").replaceChildren(empty("no job in Redis"));
  const rows = jobs.map((j) => ({
    attrs: {"data-job": j.job},
    cells: [jobLink(j.job), stateCell(j.state), progressCell(j),
            j.reduces ? (j.phase || "map") : "", j.app, j.queue,
            j.tasks_per_s ? j.tasks_per_s + " tasks/s" : "",
            bytes(j.bytes_per_s) + "/s (avg " + bytes(j.avg_bytes_per_s) + "/s)",
            String(j.words), String(j.distinct), `${j.stolen}/${j.backups}/${j.duplicates}`,
            secs(j.seconds)],
  }));
  $("jobs").replaceChildren(table(
    ["job", "state", "progress", "phase", "app", "queue", "rate", "bytes", "words", "distinct",
     "stolen/backups/dup", "time"], rows, [8, 9, 11]));
}

function renderWorkers(workers) {
  if (!workers.length) return $("workers").replaceChildren(empty("no worker registered"));
  const rows = workers.map((w) => ({
    attrs: {"data-worker": w.name},
    cells: [w.name, w.host + ":" + w.pid,
            w.lost ? el("span", {class: "lost"}, "LOST")
              : (w.silent ? el("span", {class: "silent"}, w.state + " (silent)") : w.state),
            w.task ? el("span", {}, jobLink(w.job), " " + w.task) : "",
            w.task_since_ms ? clock(w.task_since_ms) : "",
            secs(w.age_s), String(w.applied), String(w.duplicates), String(w.dead)],
  }));
  $("workers").replaceChildren(table(
    ["worker", "host:pid", "state", "current task", "since", "heartbeat age", "applied",
     "duplicates", "dead"], rows, [5, 6, 7, 8]));
}

function kv(pairs) {
  const dl = el("dl", {class: "kv"});
  for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v));
  return dl;
}

function renderRedis(r) {
  const badge = $("redis-badge");
  badge.textContent = r.reachable ? "Redis up" : "Redis unreachable";
  badge.className = "badge " + (r.reachable ? "ok" : "bad");
  const banner = $("banner");
  banner.hidden = !!r.reachable;
  banner.textContent = r.reachable ? "" : "Redis unreachable at " + r.address + ": " + r.error
    + " (showing the last figures read)";
  const pairs = [["address", r.address], ["reachable", r.reachable ? "yes" : "no"],
    ["run_id", r.run_id || ""], ["role", r.role || ""], ["version", r.version || ""],
    ["uptime", secs(r.uptime_s)],
    ["last RDB save", r.last_save_ms ? clock(r.last_save_ms) + " (" + r.bgsave_status + ", "
      + r.changes_since_save + " changes since)" : "never"]];
  if (r.raft) {
    pairs.push(["raft node", String(r.raft.node_id)], ["raft state", String(r.raft.state)],
      ["raft role", String(r.raft.role)], ["raft term", String(r.raft.current_term)],
      ["raft leader", String(r.raft.leader_id)]);
  }
  const nodes = r.nodes || [];
  $("redis").replaceChildren(kv(pairs), nodes.length ? table(
    ["RedisRaft node", "up", "raft state", "role", "term", "leader", "commit index",
     "last snapshot (index, count)", "uptime", "run_id / error"],
    nodes.map((n) => ({attrs: {"data-node": n.node, class: n.up ? "node-up" : "node-down"},
      cells: [n.node, n.up ? "up" : el("span", {class: "lost"}, "DOWN"),
              n.up ? String(n.state) : "", n.up ? String(n.role) : "",
              n.up ? String(n.current_term) : "", n.up ? String(n.leader_id) : "",
              n.up ? String(n.commit_index) : "",
              n.up ? `${n.snapshot_last_idx} (${n.snapshots_created} made here)` : "",
              n.up ? secs(n.uptime_s) : "", n.up ? (n.run_id || "").slice(0, 8) : n.error]})))
    : "");
}

function renderFeed(list, events, filter) {
  const f = (filter || "").toLowerCase();
  const shown = events.filter((e) => !f || e.text.toLowerCase().includes(f)).reverse();
  list.replaceChildren(...shown.map((e) =>
    el("li", {class: "k-" + e.kind}, el("span", {class: "t"}, clock(e.t)), e.text)));
}

// -- one job --------------------------------------------------------------------------------

// markers (Redis restarts and outages, chaos strikes, workers lost, phases...) as dashed lines
// from y1 to y2 at their time, on the x scale of a chart or the timeline, each labelled where
// the label does not run into the one before; green for a recovery, purple for a phase
const RECOVERED = ["finished", "redis-up", "node-up"];

function drawMarkers(s, markers, x, start, end, y1, y2, labelY) {
  let labelled = -Infinity;
  for (const m of [...markers].sort((a, b) => a.t - b.t)) {
    if (m.t < start || m.t > end) continue;
    const color = RECOVERED.includes(m.kind) ? "#1a7f37"
      : m.kind === "reduce" ? "#6f42c1" : "#c62828";
    const line = svg("line", {x1: x(m.t), y1, x2: x(m.t), y2, class: "marker", stroke: color,
                              "stroke-dasharray": "4 3"});
    line.append(svg("title", {}, clock(m.t) + " " + m.text));
    s.append(line);
    if (x(m.t) - labelled > 7 * m.kind.length) {
      s.append(svg("text", {x: x(m.t) + 3, y: labelY, "font-size": 10, fill: color}, m.kind));
      labelled = x(m.t);
    }
  }
}

function renderChart(doc) {
  const W = 800, H = 220, L = 48, R = 12, T = 12, B = 28;
  const pts = doc.series || [];
  const job = doc.job || {};
  const total = Math.max(job.total || 0, ...pts.map((p) => p[1] + p[2]), 1);
  const start = Math.min(job.created_ms || Infinity, pts.length ? pts[0][0] : Infinity);
  const end = Math.max(pts.length ? pts[pts.length - 1][0] : 0, (start || 0) + 1000);
  const s = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img",
                        "aria-label": "tasks settled over time"});
  if (!pts.length || !isFinite(start)) {
    s.append(svg("text", {x: L, y: H / 2}, "no sample of this job yet"));
    return $("chart").replaceChildren(s);
  }
  const x = (t) => L + (W - L - R) * (t - start) / (end - start);
  const y = (n) => H - B - (H - B - T) * n / total;
  s.append(svg("line", {x1: L, y1: y(0), x2: W - R, y2: y(0), stroke: "#999"}),
           svg("line", {x1: L, y1: y(0), x2: L, y2: T, stroke: "#999"}),
           svg("text", {x: 4, y: y(total) + 4, "font-size": 11}, String(total)),
           svg("text", {x: 4, y: y(0), "font-size": 11}, "0"),
           svg("text", {x: L, y: H - 8, "font-size": 11}, clock(start)),
           svg("text", {x: W - R, y: H - 8, "font-size": 11, "text-anchor": "end"},
               clock(end) + " (+" + ((end - start) / 1000).toFixed(1) + " s)"));
  drawMarkers(s, doc.markers || [], x, start, end, T, y(0), T + 26);  // (under the legend)
  const line = (f, color) => svg("polyline", {fill: "none", stroke: color, "stroke-width": 2,
    points: pts.map((p) => x(p[0]).toFixed(1) + "," + y(f(p)).toFixed(1)).join(" ")});
  s.append(line((p) => p[1] + p[2], "#2457c5"), line((p) => p[2], "#c62828"));
  s.append(svg("text", {x: L + 6, y: T + 10, "font-size": 11, fill: "#2457c5"},
               "settled (done + dead)"),
           svg("text", {x: L + 150, y: T + 10, "font-size": 11, fill: "#c62828"}, "dead"));
  $("chart").replaceChildren(s);
}

// -- operator actions (shown when the dashboard runs with --actions) -------------------------

const ACTIONS = [
  // [action, button text, shown for the job row j, question asked first]
  ["cancel", "Cancel job", (j) => j.state === "running",
   (n) => `Cancel job ${n}? Its workers drop its tasks, and a client waiting for it exits 8.`],
  ["requeue", "Requeue dead letters", (j) => j.dead > 0 && j.state !== "cancelled",
   (n) => `Requeue the dead letters of job ${n}? Fix their cause first, or they are set aside again.`],
  ["delete", "Delete job", (j) => j.state !== "running",
   (n) => `Delete job ${n} and its table from Redis? This cannot be undone.`],
];

async function act(action, name, epoch) {
  const out = $("action-result");
  out.textContent = action + "…";
  try {
    const resp = await fetch("api/jobs/" + encodeURIComponent(name) + "/" + action, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({confirm: name, epoch: epoch}), credentials: "same-origin"});
    const doc = await resp.json();
    out.textContent = doc.ok ? doc.message : "refused: " + doc.error;
    out.className = doc.ok ? "ok" : "bad";
  } catch (e) {
    out.textContent = "the dashboard did not answer: " + e;
    out.className = "bad";
  }
}

function renderActions(j, enabled) {
  const box = $("actions");
  if (!enabled || !j) {
    box.replaceChildren(enabled ? "" : empty("operator actions are off (wordcount dashboard " +
                                             "--actions turns them on)"));
    delete box.dataset.key;
    return;
  }
  const shown = ACTIONS.filter(([, , show]) => show(j));
  // (redrawn only when they change: a button replaced under the pointer loses its click)
  const key = JSON.stringify([j.job, j.epoch, shown.map(([action]) => action)]);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const buttons = shown.map(([action, text, , ask]) => {
    const b = el("button", {type: "button", "data-action": action}, text);
    b.addEventListener("click", () => {
      if (window.confirm(ask(j.job))) act(action, j.job, j.epoch);
    });
    return b;
  });
  box.replaceChildren(...buttons);
}

// the attempts of the job's tasks, a lane per worker, from the history the Functions keep
const OUTCOME = {done: "#1a7f37", dup: "#8c959f", dead: "#c62828", lost: "#e36209",
                 running: "#2457c5"};

function renderTimeline(tl, markers, job) {
  const attempts = (tl && tl.attempts) || [];
  const box = $("timeline");
  if (!attempts.length) return box.replaceChildren(empty("no attempt in the job's history yet"));
  const workers = tl.workers;
  const now = Date.now();
  const start = Math.min(...attempts.map((a) => a.start), job && job.created_ms || Infinity);
  const end = Math.max(...attempts.map((a) => a.end || now), start + 1000);
  const LANE = 18, L = 150, R = 12, T = 16, W = 900;
  const H = T + LANE * workers.length + 24;
  const x = (t) => L + (W - L - R) * (t - start) / (end - start);
  const s = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img",
                        "aria-label": "task attempts per worker over time"});
  workers.forEach((w, i) => {
    s.append(svg("text", {x: 4, y: T + LANE * i + 13, "font-size": 11}, w.slice(0, 22)),
             svg("line", {x1: L, y1: T + LANE * (i + 1), x2: W - R, y2: T + LANE * (i + 1),
                          stroke: "#eee"}));
  });
  for (const a of attempts) {
    const i = workers.indexOf(a.worker);
    const x1 = x(a.start), x2 = Math.max(x(a.end || now), x1 + 2);
    const bar = svg("rect", {x: x1, y: T + LANE * i + 3, width: x2 - x1, height: LANE - 6,
      fill: OUTCOME[a.outcome] || "#999", "fill-opacity": a.reduce ? 0.55 : 1,
      class: "attempt " + a.outcome + " how-" + a.how + (a.reduce ? " reduce" : " map"),
      stroke: a.how === "take" ? "none" : "#000", "stroke-width": 1,
      "data-task": a.task});
    bar.append(svg("title", {}, `${a.reduce ? "reduce" : "task"} ${a.task} (${a.how || "?"}) by ${a.worker}: `
      + `${clock(a.start)} -> ${a.end ? clock(a.end) : "now"}, ${a.outcome}`
      + (a.counted ? ` (counted in ${a.counted - a.start} ms, committed in `
                     + `${a.end - a.counted} ms)` : "")));
    s.append(bar);
    if (a.counted && a.end && x2 - x(a.counted) >= 1) {  // counted -> committed: the commit
      s.append(svg("rect", {x: x(a.counted), y: T + LANE * i + 3, class: "commit",
        width: x2 - x(a.counted), height: LANE - 6, fill: "#fff", "fill-opacity": 0.45}));
    }
  }
  drawMarkers(s, [...(tl.phases || []).map((p) => ({t: p.t, kind: p.kind, text: p.kind})),
                  ...(markers || [])], x, start, end, 4, H - 20, 12);
  s.append(svg("text", {x: L, y: H - 6, "font-size": 11}, clock(start)),
           svg("text", {x: W - R, y: H - 6, "font-size": 11, "text-anchor": "end"},
               clock(end) + " (+" + ((end - start) / 1000).toFixed(1) + " s)"));
  const legend = el("p", {class: "muted legend"}, ...Object.entries(OUTCOME).map(([k, c]) =>
    el("span", {}, el("span", {class: "swatch"}), k + " ")));
  legend.querySelectorAll(".swatch").forEach((e, i) => {
    e.style.background = Object.values(OUTCOME)[i];
  });
  box.replaceChildren(s, legend, el("p", {class: "muted"},
    "outlined: a steal (the lease of a dead or frozen holder) or a backup copy; lost: an " +
    "attempt that never settled, whose task was stolen from it or settled by another; " +
    "paler: a shuffle job's reduce tasks (after the \"reduce\" marker)"));
}

function renderJob(doc, name, actionsOn) {
  $("job-title").replaceChildren("job ", el("span", {id: "job-name"}, name));
  renderActions(doc && doc.job, actionsOn);
  if (!doc) {
    $("job-stats").replaceChildren(empty("this dashboard has not seen this job"));
    for (const id of ["chart", "timeline", "held", "dead", "top"]) $(id).replaceChildren();
    return;
  }
  const j = doc.job;
  $("job-stats").replaceChildren(j ? kv([
    ["state", stateCell(j.state)], ["progress", progressCell(j)],
    ["app / queue", j.app + " / " + j.queue], ["phase", j.reduces ? (j.phase || "map") : "-"],
    ["rate", (j.tasks_per_s || 0) + " tasks/s, " + bytes(j.bytes_per_s) + "/s"],
    ["bytes", bytes(j.done_bytes) + " of " + bytes(j.bytes)],
    ["stolen / backups / duplicates", `${j.stolen} / ${j.backups} / ${j.duplicates}`],
    ["created", clock(j.created_ms)], ["finished", clock(j.finished_ms)],
    ["self-check", doc.check ? el("span", {id: "check", class: doc.check.ok ? "ok" : "bad"},
                                  doc.check.text)
                             : el("span", {id: "check", class: "muted"},
                                  j.state === "done" ? "checking…" : "once it is done")],
  ]) : empty("gone from Redis (deleted, expired, or lost with a restart)"));
  renderChart(doc);
  renderTimeline(doc.timeline, doc.markers, doc.job);
  const held = doc.held || [];
  $("held").replaceChildren(held.length ? table(["task", "path", "worker", "attempt since"],
    held.map((h) => ({cells: [h.task, h.path, h.worker, clock(h.since_ms)]})))
    : empty("none"));
  const dead = doc.dead_letters || [];
  $("dead").replaceChildren(dead.length ? table(["task", "path", "reason"],
    dead.map((d) => ({attrs: {class: "dead-letter"}, cells: [d.task, d.path, d.reason]})))
    : empty("none"));
  const top = doc.top || [];
  $("top").replaceChildren(top.length ? table(["word", "count"],
    top.map(([w, n]) => ({cells: [w, String(n)]})), [1]) : empty("no word yet"));
  renderFeed($("job-events"), doc.events || [], "");
}

// -- the stream and the routes ---------------------------------------------------------------

let source = null;
let last = null;

function route() {
  const m = location.hash.match(/^#job=(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function render(doc) {
  last = doc;
  $("sampled").textContent = doc.sampled_ms ? "sampled " + clock(doc.sampled_ms) : "";
  renderRedis(doc.redis);
  const job = route();
  $("overview").hidden = !!job;
  $("jobpage").hidden = !job;
  if (job) {
    if ("job" in doc) renderJob(doc.job, job, doc.actions);
    return;
  }
  renderJobs(doc.jobs);
  renderWorkers(doc.workers);
  renderFeed($("events"), doc.events, $("event-filter").value);
}

function connect() {
  if (source) source.close();
  const job = route();
  source = new EventSource("events" + (job ? "?job=" + encodeURIComponent(job) : ""));
  source.onopen = () => { $("conn").textContent = "live"; };
  source.onerror = () => { $("conn").textContent = "dashboard unreachable, retrying…"; };
  source.onmessage = (m) => render(JSON.parse(m.data));
}

window.addEventListener("hashchange", () => {
  if (last) render(last);
  connect();
});

document.addEventListener("DOMContentLoaded", () => {
  // the token came once in the query: the server has set its cookie, keep it out of history
  if (new URLSearchParams(location.search).has("token")) {
    history.replaceState(null, "", location.pathname + location.hash);
  }
  $("event-filter").addEventListener("input", () => {
    if (last) renderFeed($("events"), last.events, $("event-filter").value);
  });
  connect();
});
