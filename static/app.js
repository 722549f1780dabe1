// Shows which backend served this page and its assets, and fires bursts of
// requests to make the round-robin visible. No external resources.
"use strict";

// The backend that served a response names itself in X-Served-By; for the page
// itself (whose headers scripts cannot read) it also sends a Server-Timing entry.
function servedByOfDocument() {
  const nav = performance.getEntriesByType("navigation")[0];
  if (nav && nav.serverTiming) {
    const entry = nav.serverTiming.find((t) => t.name === "served-by");
    if (entry && entry.description) return entry.description;
  }
  return null;
}

function servedByOfResource(url) {
  const res = performance.getEntriesByName(new URL(url, location.href).href)[0];
  if (res && res.serverTiming) {
    const entry = res.serverTiming.find((t) => t.name === "served-by");
    if (entry && entry.description) return entry.description;
  }
  return null;
}

function addAssetRow(name, status, servedBy) {
  const tr = document.createElement("tr");
  for (const text of [name, status, servedBy || "(unknown)"]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  document.querySelector("#assets tbody").appendChild(tr);
}

function showAssets() {
  const doc = servedByOfDocument();
  document.getElementById("served-by").textContent = doc || "(unknown: no Server-Timing)";
  document.body.dataset.servedBy = doc || "";
  addAssetRow("page.html", "200", doc);
  const assets = [
    ["style.css", document.querySelector('link[rel="stylesheet"]').href],
    ["app.js", document.currentScript ? document.currentScript.src : "app.js"],
    ["logo.svg", document.getElementById("logo").src],
  ];
  let loaded = 0;
  for (const [name, url] of assets) {
    const by = servedByOfResource(url);
    if (by) loaded++;
    addAssetRow(name, by ? "200" : "?", by);
  }
  document.body.dataset.assetsNamed = String(loaded);
}

async function burst() {
  const button = document.getElementById("burst");
  const n = Math.max(1, Math.min(1000, Number(document.getElementById("burst-size").value) || 40));
  button.disabled = true;
  const counts = new Map();
  let failed = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: n }, async () => {
    try {
      const r = await fetch("page.html", { cache: "no-store" });
      await r.arrayBuffer();
      const by = r.headers.get("X-Served-By") || "(unknown)";
      counts.set(by, (counts.get(by) || 0) + 1);
    } catch (e) {
      failed++;
    }
  }));
  const ms = Math.round(performance.now() - started);
  document.getElementById("burst-summary").textContent =
    `${n} requests in ${ms} ms, ${failed} failed, answered by ${counts.size} backends`;
  const bars = document.getElementById("bars");
  bars.replaceChildren();
  const max = Math.max(1, ...counts.values());
  for (const [name, count] of [...counts.entries()].sort()) {
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.textContent = name;
    const track = document.createElement("div");
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(100 * count) / max}%`;
    track.appendChild(fill);
    const num = document.createElement("span");
    num.textContent = String(count);
    row.append(label, track, num);
    bars.appendChild(row);
  }
  button.disabled = false;
}

// One more request after the page and its three assets: with four backends, a
// load would otherwise take exactly one turn of the rotation and every reload
// would land on the same backend. With five, each reload moves on by one.
async function followUp() {
  try {
    const r = await fetch("page.html", { method: "HEAD", cache: "no-store" });
    const by = r.headers.get("X-Served-By") || "(unknown)";
    document.getElementById("next-by").textContent = by;
    document.body.dataset.nextBy = by;
  } catch (e) {
    document.getElementById("next-by").textContent = "(failed)";
  }
}

document.getElementById("burst").addEventListener("click", burst);
// The status page lives on the balancer's admin port (44445 unless changed).
const statusPort = new URLSearchParams(location.search).get("admin") || "44445";
document.getElementById("status-link").href = `${location.protocol}//${location.hostname}:${statusPort}/`;
window.addEventListener("load", () => {
  showAssets();
  followUp();
});
