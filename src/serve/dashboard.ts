// The dashboard page (GET /): one self-contained HTML document, no external assets. It polls
// /health and /v1/strata/events every 2 s and streams completions from /v1/completions.
// Everything from the swarm is inserted as text nodes, never as HTML.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>strata swarm</title>
<style>
  :root { --bg:#0f1419; --panel:#171e26; --line:#263140; --text:#d9e1ea; --dim:#8393a7; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text); font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 22px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
  header .model { font-family:ui-monospace,Menlo,Consolas,monospace; color:var(--accent); }
  header .status { margin-left:auto; font-size:13px; }
  .pill { display:inline-block; padding:1px 9px; border-radius:10px; font-size:12px; font-weight:600; }
  .pill.ok { background:#12361d; color:var(--ok); } .pill.bad { background:#3d1416; color:var(--bad); } .pill.warn { background:#3a2c0b; color:var(--warn); }
  main { display:grid; grid-template-columns: minmax(0,3fr) minmax(0,2fr); gap:16px; padding:16px 22px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; min-width:0; overflow-x:auto; }
  section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.8px; color:var(--dim); margin:0 0 10px; font-weight:600; }
  .wide { grid-column: 1 / -1; }
  #coverage { display:flex; align-items:flex-end; gap:2px; height:120px; border-bottom:1px solid var(--line); }
  #coverage .bar { flex:1; min-width:3px; border-radius:2px 2px 0 0; position:relative; }
  #coverage .bar.none { background:var(--bad) !important; height:100% !important; opacity:.35; }
  .axis { display:flex; justify-content:space-between; color:var(--dim); font-size:11px; margin-top:3px; }
  .legend { color:var(--dim); font-size:12px; margin-top:6px; }
  #spans { margin-top:12px; display:grid; gap:3px; }
  #spans .row { position:relative; height:14px; background:#0d1218; border-radius:3px; }
  #spans .seg { position:absolute; top:0; bottom:0; border-radius:3px; font-size:10px; line-height:14px; padding-left:4px; color:#0b0f14; overflow:hidden; white-space:nowrap; }
  table { width:100%; border-collapse:collapse; font-size:13px; }
  th { text-align:left; color:var(--dim); font-weight:500; border-bottom:1px solid var(--line); padding:4px 6px; }
  td { border-bottom:1px solid #1d2631; padding:4px 6px; white-space:nowrap; }
  td.wrap { white-space:normal; }
  .hop { white-space:nowrap; }
  .swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin:0 3px 0 8px; vertical-align:-1px; }
  td.mono, .mono { font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12px; }
  .state-online { color:var(--ok); } .state-draining { color:var(--warn); } .state-joining { color:var(--accent); }
  .empty { color:var(--dim); font-style:italic; }
  textarea { width:100%; min-height:70px; background:#0d1218; color:var(--text); border:1px solid var(--line); border-radius:6px; padding:8px; font:13px ui-monospace,Menlo,Consolas,monospace; resize:vertical; }
  .controls { display:flex; gap:10px; align-items:center; margin:8px 0; flex-wrap:wrap; color:var(--dim); font-size:12px; }
  .controls input[type=number] { width:70px; background:#0d1218; color:var(--text); border:1px solid var(--line); border-radius:4px; padding:3px 5px; }
  button { background:var(--accent); color:#04111f; border:0; border-radius:5px; padding:6px 14px; font-weight:600; cursor:pointer; }
  button.secondary { background:#2d3846; color:var(--text); }
  button:disabled { opacity:.5; cursor:default; }
  #output { white-space:pre-wrap; word-break:break-word; background:#0d1218; border:1px solid var(--line); border-radius:6px; padding:8px; min-height:60px; font:13px ui-monospace,Menlo,Consolas,monospace; }
  #genstats { color:var(--dim); font-size:12px; margin-top:6px; }
  .error { color:var(--bad); }
</style>
</head>
<body>
<header>
  <h1>strata</h1>
  <span class="model" id="model">…</span>
  <span id="summary" class="legend"></span>
  <span class="status"><span id="status" class="pill warn">connecting</span> <span id="updated" class="legend"></span></span>
</header>
<main>
  <section class="wide">
    <h2>Coverage per block <span class="legend">(height: throughput, tok/s; colour: replicas<span id="swatches"></span>)</span></h2>
    <div id="coverage"></div>
    <div class="axis"><span>block 0</span><span id="lastblock"></span></div>
    <div class="legend" id="coverage-legend"></div>
    <div id="spans"></div>
  </section>
  <section class="wide">
    <h2>Peers</h2>
    <table id="peers"><thead><tr><th>peer</th><th>span</th><th>state</th><th>tok/s</th><th>latency</th><th>cache tokens</th><th>dtype</th><th>version</th><th>last seen</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Try it</h2>
    <textarea id="prompt">Once upon a time</textarea>
    <div class="controls">
      <label>max tokens <input id="maxTokens" type="number" min="1" value="32"></label>
      <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0"></label>
      <label><input id="chat" type="checkbox"> chat</label>
      <button id="go">Generate</button>
      <button id="stop" class="secondary" disabled>Stop</button>
    </div>
    <div id="output"></div>
    <div id="genstats"></div>
  </section>
  <section>
    <h2>Recent re-routes</h2>
    <table id="reroutes"><thead><tr><th>when</th><th>failed peer</th><th>reason</th><th>blocks</th><th>replacement</th><th>recovery</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Recent requests</h2>
    <table id="requests"><thead><tr><th>when</th><th>id</th><th>endpoint</th><th>outcome</th><th>tokens</th><th>first token</th><th>duration</th><th>route</th><th>re-routes</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function el (tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "style") Object.assign(e.style, v); else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}
const shortId = (id) => "…" + String(id).slice(-8);
const fmt = (n) => n >= 100 ? n.toFixed(0) : n.toFixed(1);
const ago = (iso) => { const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000)); return s < 120 ? s + "s ago" : Math.round(s / 60) + "m ago"; };
const PALETTE = ["#f85149", "#2f6fb3", "#3b8fd8", "#58a6ff", "#79c0ff", "#a5d6ff"];
const replicaColour = (n) => PALETTE[Math.min(n, PALETTE.length - 1)];
const STATE_COLOUR = { online: "#3fb950", draining: "#d29922", joining: "#58a6ff" };
function fillRows (tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { className: "empty", colSpan: columns }, empty))]));
}

function renderHealth (h) {
  $("model").textContent = h.model;
  const online = h.peers.filter((p) => p.state === "online").length;
  $("summary").textContent = h.numBlocks + " blocks · " + h.peers.length + " peers (" + online + " online)";
  const ok = h.numBlocks > 0 && h.missingBlocks.length === 0;
  $("status").className = "pill " + (ok ? "ok" : "bad");
  $("status").textContent = ok ? "all blocks covered" : (h.numBlocks === 0 ? "no peers found" : h.missingBlocks.length + " blocks uncovered");
  $("updated").textContent = "updated " + new Date(h.generatedAt).toLocaleTimeString();
  const maxT = Math.max(1e-9, ...h.blocks.map((b) => b.throughput));
  $("coverage").replaceChildren(...h.blocks.map((b) => el("div", {
    className: "bar" + (b.peers === 0 ? " none" : ""),
    title: "block " + b.index + ": " + b.peers + " peers, " + fmt(b.throughput) + " tok/s",
    "data-block": String(b.index),
    style: { height: Math.max(4, 100 * b.throughput / maxT) + "%", background: replicaColour(b.peers) }
  })));
  $("lastblock").textContent = h.numBlocks > 0 ? "block " + (h.numBlocks - 1) : "";
  const replicas = h.blocks.map((b) => b.peers);
  $("coverage-legend").textContent = h.blocks.length === 0 ? "no blocks known yet"
    : "replicas per block " + Math.min(...replicas) + "–" + Math.max(...replicas) + " · weakest " + fmt(Math.min(...h.blocks.map((b) => b.throughput))) + " tok/s"
      + (h.missingBlocks.length ? " · uncovered: " + h.missingBlocks.join(", ") : "");
  const n = Math.max(1, h.numBlocks);
  $("spans").replaceChildren(...h.peers.map((p) => el("div", { className: "row", title: p.peerId + " [" + p.start + ", " + p.end + ") " + p.state },
    el("div", { className: "seg", style: { left: (100 * p.start / n) + "%", width: (100 * (p.end - p.start) / n) + "%", background: STATE_COLOUR[p.state] || "#888" } }, shortId(p.peerId)))));
  fillRows($("peers").tBodies[0], h.peers.map((p) => el("tr", { "data-peer-id": p.peerId },
    el("td", { className: "mono", title: p.peerId + "\\n" + p.multiaddrs.join("\\n") }, shortId(p.peerId)),
    el("td", { className: "mono" }, "[" + p.start + ", " + p.end + ")"),
    el("td", { className: "state-" + p.state }, p.state),
    el("td", {}, fmt(p.throughput)),
    el("td", {}, p.latencyMs.toFixed(1) + " ms"),
    el("td", {}, String(p.cacheTokensLeft)),
    el("td", {}, p.dtype),
    el("td", { className: "mono" }, p.version),
    el("td", {}, ago(p.lastSeen)))), "no reachable peers", 9);
}

/** a chain of hops; each hop stays on one line */
const hops = (list) => list.flatMap((h, i) => [...(i > 0 ? [" → "] : []), el("span", { className: "hop", title: h.peer }, shortId(h.peer) + "[" + h.start + "," + h.end + ")")]);

function renderEvents (ev) {
  fillRows($("reroutes").tBodies[0], ev.reroutes.slice(0, 10).map((r) => el("tr", {},
    el("td", {}, new Date(r.at).toLocaleTimeString()),
    el("td", { className: "mono", title: r.failedPeer }, shortId(r.failedPeer)),
    el("td", {}, r.reason),
    el("td", { className: "mono" }, "[" + r.start + ", " + r.end + ")"),
    el("td", { className: "mono wrap" }, ...hops(r.replacement)),
    el("td", {}, r.recoveryMs.toFixed(0) + " ms"))), "no re-routes", 6);
  fillRows($("requests").tBodies[0], ev.requests.slice(0, 10).map((r) => el("tr", {},
    el("td", {}, new Date(r.at).toLocaleTimeString()),
    el("td", { className: "mono", title: r.id }, r.id.slice(0, 14)),
    el("td", {}, r.endpoint),
    el("td", { className: r.outcome === "ok" ? "state-online" : "error", title: r.error || "" }, r.outcome),
    el("td", {}, r.promptTokens + " → " + r.completionTokens),
    el("td", {}, r.timeToFirstTokenMs === null ? "–" : r.timeToFirstTokenMs.toFixed(0) + " ms"),
    el("td", {}, (r.durationMs / 1000).toFixed(2) + " s"),
    el("td", { className: "mono wrap" }, ...hops(r.route)),
    el("td", {}, String(r.reroutes)))), "no requests yet", 9);
}

async function refresh () {
  try {
    const [health, events] = await Promise.all([fetch("/health").then((r) => r.json()), fetch("/v1/strata/events").then((r) => r.json())]);
    renderHealth(health);
    renderEvents(events);
  } catch (err) {
    $("status").className = "pill bad";
    $("status").textContent = "gateway unreachable";
  }
}

let running = null;
async function generate () {
  const chat = $("chat").checked;
  const prompt = $("prompt").value;
  const body = { stream: true, max_tokens: Number($("maxTokens").value) || 32, temperature: Number($("temperature").value) || 0, stream_options: { include_usage: true } };
  if (chat) body.messages = [{ role: "user", content: prompt }]; else body.prompt = prompt;
  running = new AbortController();
  $("go").disabled = true; $("stop").disabled = false;
  $("output").textContent = ""; $("output").classList.remove("error"); $("genstats").textContent = "";
  const t0 = performance.now();
  let first = 0, usage = null, finish = null;
  try {
    const res = await fetch(chat ? "/v1/chat/completions" : "/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: running.signal });
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of event.split("\\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices[0];
          if (!choice) continue;
          const text = chat ? (choice.delta.content || "") : choice.text;
          if (text && !first) first = performance.now() - t0;
          $("output").textContent += text;
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
    const secs = (performance.now() - t0) / 1000;
    $("genstats").textContent = (usage ? usage.completion_tokens + " tokens · " + fmt(usage.completion_tokens / secs) + " tok/s · " : "") + "first token " + first.toFixed(0) + " ms · finish: " + finish;
  } catch (err) {
    if (err.name !== "AbortError") { $("output").classList.add("error"); $("output").textContent += "\\n" + err.message; }
  } finally {
    running = null; $("go").disabled = false; $("stop").disabled = true;
    refresh();
  }
}
$("go").addEventListener("click", generate);
$("stop").addEventListener("click", () => running && running.abort());
$("swatches").replaceChildren(...PALETTE.map((c, i) => el("span", {}, el("span", { className: "swatch", style: { background: c } }), i === 0 ? "none" : i === PALETTE.length - 1 ? i + "+" : String(i))));
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`
